"""The campaign page's changing parts: the live JSON redraws status, actions and history;
quiet hours are explained; skips by reason, actual cost and a delivery rate of "—"."""

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from campaigns import tasks
from campaigns.models import Campaign
from campaigns.presenters import money
from contacts.models import Contact, Group
from messaging.models import Message, ProviderAccount
from tests.conftest import phone

S = Campaign.Status
M = Message.Status


@pytest.fixture
def campaign(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
) -> Campaign:
    group = Group.objects.create(name="Customers")
    make_contacts(2, group)
    return make_campaign(simulator, group)


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def add(campaign: Campaign, status: str, count: int = 1, **fields: Any) -> None:
    start = Message.objects.count()
    for i in range(count):
        Message.objects.create(
            campaign=campaign,
            provider_account=campaign.provider_account,
            phone=phone(start + i),
            body="Hi",
            client_ref=Message.new_client_ref(),
            status=status,
            **fields,
        )


def live(client: Client, campaign: Campaign) -> dict[str, Any]:
    url = reverse("dashboard:campaign_progress", args=(campaign.pk,))
    data: dict[str, Any] = client.get(url, {"with": "page"}).json()
    return data


def test_the_live_json_carries_the_new_status_its_actions_and_history(
    campaign: Campaign, marketer: User, approver: User
) -> None:
    client = logged_in(marketer)
    campaign.submit(by=marketer)
    before = live(client, campaign)
    campaign.approve(by=approver)
    tasks.run_campaign(campaign.pk)  # what the worker woken by the approval does
    campaign.refresh_from_db()
    after = live(client, campaign)

    assert before["status"] == "pending_approval"
    assert (
        "pending approval" in before["status_html"] and "/action/cancel/" in before["status_html"]
    )
    assert after["status"] == campaign.status == S.COMPLETED
    assert ">completed</strong>" in after["status_html"]
    assert "scheduled</strong>" not in after["status_html"]
    assert "/action/" not in after["status_html"]  # nothing to pause or cancel any more
    assert "operation-duplicate" in after["status_html"]
    assert "approve" in after["history_html"] and "complete" in after["history_html"]
    # The plain poll of the home page carries no fragments.
    url = reverse("dashboard:campaign_progress", args=(campaign.pk,))
    assert "status_html" not in client.get(url).json()


def test_the_page_loads_its_live_script_and_says_where_to_poll(
    campaign: Campaign, marketer: User
) -> None:
    page = logged_in(marketer).get(reverse("dashboard:campaign", args=(campaign.pk,)))
    html = page.content.decode()
    assert 'src="/static/herald/campaign_live.js"' in html
    assert f'data-page-url="/campaigns/{campaign.pk}/progress/?with=page"' in html


def test_delivery_rate_is_a_dash_until_receipts_arrive(campaign: Campaign, marketer: User) -> None:
    client = logged_in(marketer)
    Campaign.objects.filter(pk=campaign.pk).update(status=S.SENDING, started_at=timezone.now())
    add(campaign, M.SENT, 3)
    assert "—<span" in live(client, campaign)["outcome_html"]

    cache.clear()  # the counts are shared for HERALD_LIVE_COUNTS_SECONDS
    add(campaign, M.DELIVERED)
    assert (
        "25.0% of the messages that reached the provider" in live(client, campaign)["outcome_html"]
    )


def test_skipped_recipients_are_shown_by_reason(campaign: Campaign, marketer: User) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(status=S.SENDING, started_at=timezone.now())
    add(campaign, M.SKIPPED, 2, skip_reason=Message.SkipReason.OPTED_OUT)
    add(campaign, M.SKIPPED, 1, skip_reason=Message.SkipReason.INVALID_NUMBER)

    outcome = live(logged_in(marketer), campaign)["outcome_html"]

    assert "<li>Opted out: 2</li>" in outcome and "<li>Invalid number: 1</li>" in outcome
    assert "Duplicate" not in outcome


def test_actual_cost_is_shown_beside_the_estimate(campaign: Campaign, marketer: User) -> None:
    campaign.submit(by=marketer)
    estimated = campaign.estimate["cost"]
    Campaign.objects.filter(pk=campaign.pk).update(status=S.SENDING, started_at=timezone.now())
    now = timezone.now()
    add(campaign, M.DELIVERED, 2, cost="0.03000", sent_at=now)
    add(campaign, M.PENDING, 1, cost="0.03000")  # not sent: not charged

    outcome = " ".join(live(logged_in(marketer), campaign)["outcome_html"].split())

    currency = campaign.provider_account.currency
    assert f"0.06 {currency} charged; estimated {money(estimated, currency)}" in outcome


def test_messages_held_by_quiet_hours_say_how_many_and_when_the_window_opens(
    campaign: Campaign, marketer: User
) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(
        status=S.SENDING, started_at=timezone.now(), window_start=time(9), window_end=time(17)
    )
    later = timezone.now() + timedelta(hours=6)
    add(campaign, M.PENDING, 3, next_attempt_at=later, time_zones="Asia/Tokyo")
    add(campaign, M.PENDING, 2, next_attempt_at=later, time_zones="America/New_York")
    add(campaign, M.PENDING, 1, next_attempt_at=later, error_code="TIMEOUT")  # a retry

    status = " ".join(live(logged_in(marketer), campaign)["status_html"].split())

    assert "5 messages held by quiet hours" in status
    assert "from 09:00 to 17:00 on each recipient's own clock" in status
    assert "3 in Asia/Tokyo: the window opens" in status and " JST" in status
    assert "2 in America/New_York: the window opens" in status
    assert " EST" in status or " EDT" in status


def test_nothing_is_said_of_quiet_hours_without_a_window(
    campaign: Campaign, marketer: User
) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(status=S.SENDING, started_at=timezone.now())
    add(campaign, M.PENDING, 2, next_attempt_at=datetime(2099, 1, 1, tzinfo=UTC))
    assert "quiet hours" not in live(logged_in(marketer), campaign)["status_html"]


def test_the_chart_is_drawn_again_for_a_page_that_still_shows_another_status(
    campaign: Campaign, marketer: User
) -> None:
    now = timezone.now()
    Campaign.objects.filter(pk=campaign.pk).update(
        status=S.COMPLETED, started_at=now - timedelta(minutes=5), completed_at=now
    )
    campaign.refresh_from_db()
    add(campaign, M.DELIVERED, 3, delivered_at=now - timedelta(minutes=1))
    client = logged_in(marketer)
    url = reverse("dashboard:campaign_progress", args=(campaign.pk,))

    stale = client.get(url, {"with": "page", "shown": "sending"}).json()
    current = client.get(url, {"with": "page", "shown": "completed"}).json()

    assert "3 delivered between" in stale["chart_html"]
    assert "Nothing delivered yet" not in stale["chart_html"]
    assert "chart_html" not in current  # the chart's scan only when the status moved
