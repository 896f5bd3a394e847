"""A low balance at the gateway pauses that account's sending campaigns; a top-up lets them go.

BulkSMSRates's balance is read over HTTP from the fake gateway (GET /v1/billing/balance),
its balance.low webhook posted signed through the real URL.
"""

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from campaigns.balance import READ_EVERY, BalanceTooLow
from campaigns.models import Campaign
from campaigns.sending import run_campaign
from contacts.models import Contact, Group
from messaging.models import Message, ProviderAccount
from tests.conftest import GATEWAY_CREDENTIALS
from tests.fakegateway import FakeGateway

pytestmark = pytest.mark.django_db
S = Campaign.Status
M = Message.Status
SECRET = GATEWAY_CREDENTIALS["bulksmsrates"]["webhook_secret"]
#: What the fake gateway charges a segment, as our price list says it: 4p.
PRICE = Decimal("0.04000")


@pytest.fixture
def brates(make_account: Callable[..., ProviderAccount]) -> ProviderAccount:
    account = make_account("bulksmsrates", name="brates")
    ProviderAccount.objects.filter(pk=account.pk).update(price_per_segment=PRICE)
    account.refresh_from_db()
    return account


@pytest.fixture
def audience(make_contacts: Callable[..., list[Contact]]) -> Group:
    group = Group.objects.create(name="Newsletter")
    make_contacts(5, group)
    return group


def approved(campaign: Campaign, marketer: User, approver: User) -> Campaign:
    """Submitted and approved: scheduled to start at once, nothing sent yet."""
    campaign.submit(by=marketer)
    campaign.approve(by=approver)
    campaign.refresh_from_db()
    assert campaign.status == S.SCHEDULED
    return campaign


def sending(campaign: Campaign, marketer: User, approver: User) -> Campaign:
    """Approved and started, as a worker left it mid-send."""
    approved(campaign, marketer, approver)
    assert campaign.start()
    campaign.refresh_from_db()
    return campaign


def post_event(client: Client, gateway: FakeGateway, account: str, event: str, data: Any) -> Any:
    body, headers = gateway.event_request(event, data, secret=SECRET)
    url = reverse("messaging:bulksmsrates-webhook", args=[account])
    return client.post(url, body, content_type="application/json", headers=headers)


def sends_to_gateway(gateway: FakeGateway) -> int:
    return sum(1 for r in gateway.requests if r.path.startswith("/v1/sms/"))


def test_a_balance_low_webhook_pauses_only_that_accounts_sending_campaigns_with_the_reason(
    make_account: Callable[..., ProviderAccount],
    make_campaign: Callable[..., Campaign],
    brates: ProviderAccount,
    audience: Group,
    gateway: FakeGateway,
    marketer: User,
    approver: User,
    client: Client,
) -> None:
    other = make_account("bulksmsrates", name="brates-eu")
    mine = sending(make_campaign(brates, audience), marketer, approver)
    later = approved(make_campaign(brates, audience), marketer, approver)
    theirs = sending(make_campaign(other, audience), marketer, approver)
    gateway.bulk_balance = 321

    response = post_event(client, gateway, "brates", "balance.low", gateway.balance_low_data())

    assert response.status_code == 200
    assert response.json()["outcome"] == "balance low: 1 campaign(s) paused"
    for campaign in (mine, later, theirs):
        campaign.refresh_from_db()
    reason = "Balance low at brates (3.21 GBP left): top up, then resume."
    assert (mine.status, mine.pause_reason) == (S.PAUSED, reason)
    pause = mine.transitions.last()
    assert pause is not None and pause.by is None  # the engine's pause, not a person's
    assert (later.status, theirs.status) == (S.SCHEDULED, S.SENDING)
    brates.refresh_from_db()
    other.refresh_from_db()
    assert brates.balance_low_at is not None and brates.balance_low_reason == reason
    assert brates.balance_available == 321
    assert other.balance_low_at is None


def test_the_campaign_page_and_the_home_page_say_why(
    make_campaign: Callable[..., Campaign],
    brates: ProviderAccount,
    audience: Group,
    gateway: FakeGateway,
    marketer: User,
    approver: User,
    client: Client,
) -> None:
    campaign = sending(make_campaign(brates, audience), marketer, approver)
    gateway.bulk_balance = 0
    post_event(client, gateway, "brates", "balance.low", gateway.balance_low_data())
    client.force_login(marketer)

    home = client.get(reverse("dashboard:home")).content.decode()
    page = client.get(reverse("dashboard:campaign", args=[campaign.pk])).content.decode()

    reason = "Balance low at brates (0.00 GBP left): top up, then resume."
    assert "Balance low at brates</h2>" in home
    assert reason in home and "1 campaign paused for it" in home
    assert reason in page


def test_a_balance_below_the_next_campaigns_cost_pauses_it_before_anything_is_sent(
    make_campaign: Callable[..., Campaign],
    brates: ProviderAccount,
    audience: Group,
    gateway: FakeGateway,
    marketer: User,
    approver: User,
) -> None:
    campaign = approved(make_campaign(brates, audience), marketer, approver)
    assert campaign.estimate["cost"] == "0.20000"  # 5 messages of one segment at 4p
    gateway.bulk_balance = 19

    assert run_campaign(campaign) is False

    campaign.refresh_from_db()
    assert campaign.status == S.PAUSED
    assert campaign.pause_reason == "Balance low at brates (0.19 GBP left): top up, then resume."
    assert not campaign.messages.exists()
    assert sends_to_gateway(gateway) == 0
    brates.refresh_from_db()
    assert (brates.balance_available, brates.balance_low_at is not None) == (19, True)


def test_a_balance_that_covers_the_cost_lets_it_send_and_is_kept(
    make_campaign: Callable[..., Campaign],
    brates: ProviderAccount,
    audience: Group,
    gateway: FakeGateway,
    marketer: User,
    approver: User,
) -> None:
    campaign = approved(make_campaign(brates, audience), marketer, approver)
    gateway.bulk_balance = 20

    run_campaign(campaign)

    campaign.refresh_from_db()
    assert set(campaign.messages.values_list("status", flat=True)) == {M.SENT}
    brates.refresh_from_db()
    assert (brates.balance_available, brates.balance_low_at) == (20, None)
    assert brates.balance_checked_at is not None


def test_resume_is_refused_while_the_balance_is_low_and_works_after_a_top_up(
    make_campaign: Callable[..., Campaign],
    brates: ProviderAccount,
    audience: Group,
    gateway: FakeGateway,
    marketer: User,
    approver: User,
) -> None:
    campaign = approved(make_campaign(brates, audience), marketer, approver)
    gateway.bulk_balance = 10
    run_campaign(campaign)
    campaign.refresh_from_db()
    assert campaign.status == S.PAUSED

    with pytest.raises(BalanceTooLow) as refused:
        campaign.act("resume", marketer)
    assert str(refused.value) == (
        "The balance at brates is 0.10 GBP; this campaign needs 0.20 GBP to finish. "
        "Top up, then resume."
    )
    campaign.refresh_from_db()
    assert campaign.status == S.PAUSED

    gateway.bulk_top_up(500)
    campaign.act("resume", marketer)

    campaign.refresh_from_db()
    brates.refresh_from_db()
    assert (campaign.status, campaign.pause_reason) == (S.SENDING, "")
    assert (brates.balance_low_at, brates.balance_low_reason, brates.balance_available) == (
        None,
        "",
        510,
    )
    run_campaign(campaign)
    assert set(campaign.messages.values_list("status", flat=True)) == {M.SENT}
    assert sends_to_gateway(gateway) >= 1


def test_resume_after_a_webhook_reads_the_balance_again_even_if_just_read(
    make_campaign: Callable[..., Campaign],
    brates: ProviderAccount,
    audience: Group,
    gateway: FakeGateway,
    marketer: User,
    approver: User,
    client: Client,
) -> None:
    campaign = sending(make_campaign(brates, audience), marketer, approver)
    gateway.bulk_balance = 100
    post_event(client, gateway, "brates", "balance.low", gateway.balance_low_data())
    reads = balance_reads(gateway)

    campaign.act("resume", marketer)  # 1.00 GBP covers the 0.20 GBP left

    assert balance_reads(gateway) == reads + 1
    campaign.refresh_from_db()
    assert campaign.status == S.SENDING
    brates.refresh_from_db()
    assert brates.balance_low_at is None


def test_the_dashboard_says_why_a_resume_was_refused(
    make_campaign: Callable[..., Campaign],
    brates: ProviderAccount,
    audience: Group,
    gateway: FakeGateway,
    marketer: User,
    approver: User,
    client: Client,
) -> None:
    campaign = approved(make_campaign(brates, audience), marketer, approver)
    gateway.bulk_balance = 5
    run_campaign(campaign)
    client.force_login(marketer)

    url = reverse("dashboard:campaign_action", args=[campaign.pk, "resume"])
    page = client.post(url, follow=True).content.decode()

    assert "The balance at brates is 0.05 GBP; this campaign needs 0.20 GBP" in page
    campaign.refresh_from_db()
    assert campaign.status == S.PAUSED


def test_the_balance_is_read_at_most_once_in_a_while_per_account(
    make_campaign: Callable[..., Campaign],
    brates: ProviderAccount,
    audience: Group,
    gateway: FakeGateway,
    marketer: User,
    approver: User,
) -> None:
    first = approved(make_campaign(brates, audience), marketer, approver)
    second = approved(make_campaign(brates, audience), marketer, approver)
    run_campaign(first)
    run_campaign(second)
    run_campaign(first)
    assert balance_reads(gateway) == 1

    ProviderAccount.objects.filter(pk=brates.pk).update(
        balance_checked_at=timezone.now() - READ_EVERY - timedelta(seconds=1)
    )
    third = approved(make_campaign(brates, audience), marketer, approver)
    run_campaign(third)
    assert balance_reads(gateway) == 2


def test_a_campaign_starting_on_an_account_just_read_too_low_is_paused_without_a_read(
    make_campaign: Callable[..., Campaign],
    brates: ProviderAccount,
    audience: Group,
    gateway: FakeGateway,
    marketer: User,
    approver: User,
) -> None:
    first = approved(make_campaign(brates, audience), marketer, approver)
    second = approved(make_campaign(brates, audience), marketer, approver)
    gateway.bulk_balance = 10
    run_campaign(first)
    gateway.bulk_top_up(1000)  # not read yet: the last read is recent

    run_campaign(second)

    second.refresh_from_db()
    assert second.status == S.PAUSED
    assert second.pause_reason.startswith("Balance low at brates")
    assert balance_reads(gateway) == 1


def test_an_account_that_cannot_tell_its_balance_sends_as_before(
    make_campaign: Callable[..., Campaign],
    audience: Group,
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    campaign = approved(make_campaign(simulator, audience), marketer, approver)
    run_campaign(campaign)
    campaign.refresh_from_db()
    assert campaign.status in (S.SENDING, S.COMPLETED)
    assert campaign.messages.filter(status=M.PENDING).count() == 0


def balance_reads(gateway: FakeGateway) -> int:
    return sum(1 for r in gateway.requests if r.path.startswith("/v1/billing/balance"))


def test_the_admin_shows_the_balance_read_only(
    brates: ProviderAccount, admin_client: Client, gateway: FakeGateway
) -> None:
    gateway.bulk_balance = 42
    post_event(admin_client, gateway, "brates", "balance.low", gateway.balance_low_data())
    url = reverse("admin:messaging_provideraccount_change", args=[brates.pk])

    page = admin_client.get(url).content.decode()

    assert "Balance low at brates (0.42 GBP left): top up, then resume." in page
    assert 'name="balance_low_reason"' not in page and 'name="balance_available"' not in page
    listing = admin_client.get(reverse("admin:messaging_provideraccount_changelist"))
    assert "Balance low" in listing.content.decode()  # the column
