"""The frequency cap: contacts messaged enough lately are skipped, counted and built alike.

Earlier messages are real rows of other campaigns whose age is moved back with update();
only campaign messages that went or are about to go count (not failed, skipped or
cancelled ones, nor test sends), and only within the cap's rolling days.
"""

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from campaigns.audience import AudienceRule
from campaigns.frequency import Cap, house_cap, may_override
from campaigns.models import Campaign, FrequencyCap
from campaigns.preview import estimate
from campaigns.sending import materialise
from contacts.models import Contact, Group, OptOut
from messaging.models import Message, ProviderAccount

pytestmark = pytest.mark.django_db

M = Message.Status
#: Each contact's earlier messages: (status, days ago, a test send).
HISTORIES: dict[str, list[tuple[str, float, bool]]] = {
    "never messaged": [],
    "twice this week": [(M.SENT, 1, False), (M.DELIVERED, 6.9, False)],
    "once now, once pending": [(M.DELIVERED, 2, False), (M.PENDING, 0, False)],
    "once in doubt, once sending": [(M.IN_DOUBT, 3, False), (M.SENDING, 0, False)],
    "once this week, once long ago": [(M.DELIVERED, 1, False), (M.DELIVERED, 7.1, False)],
    "once, then failed": [(M.DELIVERED, 1, False), (M.FAILED, 1, False)],
    "once, then skipped": [(M.SENT, 1, False), (M.SKIPPED, 1, False)],
    "once, then cancelled": [(M.SENT, 1, False), (M.CANCELLED, 1, False)],
    "once, then a test": [(M.SENT, 1, False), (M.DELIVERED, 1, True)],
    "opted out, twice this week": [(M.SENT, 1, False), (M.SENT, 2, False)],
}
#: Over a cap of 2 messages in 7 days.
OVER_TWO_IN_SEVEN = {"twice this week", "once now, once pending", "once in doubt, once sending"}


@pytest.fixture
def earlier(locmem: ProviderAccount, marketer: User) -> Group:
    """A group of contacts with the histories above, from two other campaigns."""
    group = Group.objects.create(name="Everyone")
    others = [
        Campaign.objects.create(name=n, provider_account=locmem, body="Hi", created_by=marketer)
        for n in ("autumn", "winter")
    ]
    now = timezone.now()
    for i, (name, history) in enumerate(HISTORIES.items()):
        contact = Contact.objects.create(phone=f"+4474001234{i:02d}", first_name=name)
        contact.groups.add(group)
        for j, (status, days_ago, is_test) in enumerate(history):
            message = Message.objects.create(
                campaign=others[j % 2],
                contact=contact,
                provider_account=locmem,
                phone=contact.phone,
                body="Hi",
                client_ref=Message.new_client_ref(),
                status=status,
                is_test=is_test,
            )
            ago = now - timedelta(days=days_ago)
            Message.objects.filter(pk=message.pk).update(created_at=ago)
    OptOut.objects.create(phone="+447400123409", channel="sms")
    return group


def campaign_for(group: Group, account: ProviderAccount, by: User, **cap: Any) -> Campaign:
    campaign = Campaign.objects.create(
        name="Spring", provider_account=account, body="Hi {{first_name}}", created_by=by, **cap
    )
    campaign.groups.add(group)
    return campaign


def counted_and_built(
    campaign: Campaign, marketer: User, approver: User
) -> tuple[dict[str, int], dict[str, int]]:
    """The counting form's skips, then the build's stats, of the campaign approved meanwhile."""
    counted = AudienceRule(campaign).count()
    campaign.submit(by=marketer)
    with transaction.atomic():  # keep the approval's wake-up from running the send
        campaign.approve(by=approver)
        assert campaign.start()
        stats = materialise(campaign)
    return {"queued": counted.queued, **counted.skipped}, stats


def capped(campaign: Campaign) -> set[str]:
    skipped = campaign.messages.filter(skip_reason=Message.SkipReason.FREQUENCY_CAP)
    return set(skipped.values_list("contact__first_name", flat=True))


def test_a_campaigns_own_cap_skips_those_messaged_enough_lately_counted_as_built(
    earlier: Group, locmem: ProviderAccount, marketer: User, approver: User
) -> None:
    campaign = campaign_for(
        earlier, locmem, marketer, frequency_cap=FrequencyCap.OWN, cap_messages=2, cap_days=7
    )

    counted, stats = counted_and_built(campaign, marketer, approver)

    assert counted["frequency_cap"] == stats["frequency_cap"] == 3
    assert counted["opted_out"] == stats["opted_out"] == 1  # opted out comes first
    assert counted["queued"] == stats["queued"] == len(HISTORIES) - 4
    assert capped(campaign) == OVER_TWO_IN_SEVEN


def test_the_house_cap_applies_unless_a_campaign_has_none(
    earlier: Group,
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
    settings: Any,
) -> None:
    settings.HERALD_FREQUENCY_CAP_MESSAGES = 2
    settings.HERALD_FREQUENCY_CAP_DAYS = 7
    housed = campaign_for(earlier, locmem, marketer)
    uncapped = campaign_for(earlier, locmem, marketer, frequency_cap=FrequencyCap.OFF)

    assert housed.effective_cap() == Cap(2, 7)
    assert uncapped.effective_cap() is None
    counted, stats = counted_and_built(housed, marketer, approver)
    assert counted["frequency_cap"] == stats["frequency_cap"] == 3
    assert capped(housed) == OVER_TWO_IN_SEVEN
    counted, stats = counted_and_built(uncapped, marketer, approver)
    assert counted["frequency_cap"] == stats["frequency_cap"] == 0
    assert counted["queued"] == stats["queued"] == len(HISTORIES) - 1


def test_a_longer_window_and_a_cap_of_one_reach_further_back(
    earlier: Group, locmem: ProviderAccount, marketer: User, approver: User
) -> None:
    campaign = campaign_for(
        earlier, locmem, marketer, frequency_cap=FrequencyCap.OWN, cap_messages=1, cap_days=30
    )

    counted, stats = counted_and_built(campaign, marketer, approver)

    # Everyone with a message that counts, but the opted-out (skipped as that).
    expected = set(HISTORIES) - {"never messaged", "opted out, twice this week"}
    assert capped(campaign) == expected
    assert counted["frequency_cap"] == stats["frequency_cap"] == len(expected)


def test_the_house_cap_is_off_by_default_and_at_zero(settings: Any) -> None:
    assert house_cap() is None
    settings.HERALD_FREQUENCY_CAP_MESSAGES = 3
    assert house_cap() == Cap(3, 7)
    settings.HERALD_FREQUENCY_CAP_DAYS = 0
    assert house_cap() is None


def test_the_preview_counts_the_capped_and_shows_none_of_them_as_samples(
    earlier: Group, locmem: ProviderAccount, marketer: User
) -> None:
    campaign = campaign_for(
        earlier, locmem, marketer, frequency_cap=FrequencyCap.OWN, cap_messages=2, cap_days=7
    )

    figures = estimate(campaign, samples=len(HISTORIES))

    assert figures.skipped["frequency_cap"] == 3
    assert figures.queued == len(HISTORIES) - 4
    assert {s.contact for s in figures.samples}.isdisjoint(OVER_TWO_IN_SEVEN)
    assert len(figures.samples) == figures.queued


def test_only_approvers_may_override_the_house_cap(marketer: User, approver: User) -> None:
    assert may_override(approver)
    assert not may_override(marketer)
    assert not may_override(None)


def test_changing_the_cap_after_approval_holds_the_campaign(
    earlier: Group, locmem: ProviderAccount, marketer: User, approver: User
) -> None:
    campaign = campaign_for(
        earlier, locmem, marketer, frequency_cap=FrequencyCap.OWN, cap_messages=2, cap_days=7
    )
    campaign.submit(by=marketer)
    with transaction.atomic():
        campaign.approve(by=approver)
    Campaign.objects.filter(pk=campaign.pk).update(frequency_cap=FrequencyCap.OFF)

    with transaction.atomic():
        assert campaign.start()
        materialise(campaign)

    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PENDING_APPROVAL
    assert campaign.messages.count() == 0
    assert campaign.estimate["skipped"]["frequency_cap"] == 0
