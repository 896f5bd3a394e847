"""The engine's campaign side: building the audience, send windows, estimates and brakes."""

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.preview import estimate
from campaigns.sending import dispatch_batch, materialise, run_campaign
from contacts.models import Contact, Group, OptOut
from messaging import counts
from messaging.models import Message, ProviderAccount
from tests.conftest import reschedule

pytestmark = pytest.mark.django_db
M = Message.Status
S = Campaign.Status


def sending(campaign: Campaign, marketer: User, approver: User, **fields: Any) -> Campaign:
    """Approved and started, not materialised: what a worker finds on its first run."""
    Campaign.objects.filter(pk=campaign.pk).update(**fields)
    campaign.refresh_from_db()
    campaign.submit(by=marketer)
    Campaign.objects.filter(pk=campaign.pk).update(
        status=S.SENDING, approved_by=approver, started_at=timezone.now()
    )
    campaign.refresh_from_db()
    return campaign


def test_materialise_counts_every_reason_to_skip(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    group = Group.objects.create(name="G")
    contacts = make_contacts(4, group)
    OptOut.objects.create(phone=contacts[0].phone)
    # A number that slipped in unvalidated (e.g. an old raw SQL load).
    bad = Contact.objects.create(phone="0791120", first_name="Bad")
    bad.groups.add(group)
    campaign = sending(make_campaign(locmem, group), marketer, approver)
    stats = materialise(campaign)
    assert {k: v for k, v in stats.items() if k != "after"} == {
        "audience": 5,
        "queued": 3,
        "opted_out": 1,
        "erased": 0,
        "invalid_number": 1,
        "duplicate": 0,
        "frequency_cap": 0,
        "no_send_window": 0,
    }
    reasons = dict(campaign.messages.values_list("phone", "skip_reason"))
    assert reasons[contacts[0].phone] == Message.SkipReason.OPTED_OUT
    assert reasons["0791120"] == Message.SkipReason.INVALID_NUMBER
    body = campaign.messages.get(phone=contacts[1].phone)
    assert (body.body, body.encoding, body.segments) == ("Hi Name1", "gsm7", 1)


def test_materialise_resumes_from_its_mark_after_a_crash(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("campaigns.sending.MATERIALISE_CHUNK", 3)
    group = Group.objects.create(name="G")
    contacts = make_contacts(8, group)
    campaign = sending(make_campaign(locmem, group), marketer, approver)
    materialise(campaign)
    # The state a worker killed after the first chunk leaves: three rows and the mark.
    mark = contacts[2].pk
    campaign.messages.filter(contact_id__gt=mark).delete()
    counts.recount([campaign.pk])  # the kept counts of the first chunk alone
    Campaign.objects.filter(pk=campaign.pk).update(
        materialised_at=None,
        audience_stats={"after": mark, "audience": 3, "queued": 3, "opted_out": 0},
    )
    campaign.refresh_from_db()
    stats = materialise(campaign)
    assert stats["audience"] == stats["queued"] == 8
    assert sorted(campaign.messages.values_list("contact_id", flat=True)) == [
        c.pk for c in contacts
    ]
    # Done is done: another run adds nothing.
    materialise(campaign)
    assert campaign.messages.count() == 8


def test_each_recipient_waits_for_the_window_in_its_own_zones(
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    group = Group.objects.create(name="G")
    london = Contact.objects.create(phone="+447911200001")
    new_york = Contact.objects.create(phone="+12125550123")
    tokyo_by_choice = Contact.objects.create(phone="+447911200002", timezone="Asia/Tokyo")
    for contact in (london, new_york, tokyo_by_choice):
        contact.groups.add(group)
    start = datetime(2030, 1, 15, 12, 0, tzinfo=UTC)  # 12:00 London, 07:00 New York
    campaign = sending(
        make_campaign(locmem, group, body="Hello"),
        marketer,
        approver,
        scheduled_at=start,
        window_start=time(9, 0),
        window_end=time(17, 0),
    )
    materialise(campaign)
    due = dict(campaign.messages.values_list("phone", "next_attempt_at"))
    assert due[london.phone] == start
    assert due[new_york.phone] == datetime(2030, 1, 15, 14, 0, tzinfo=UTC)  # 09:00 EST
    assert due[tokyo_by_choice.phone] == datetime(2030, 1, 16, 0, 0, tzinfo=UTC)  # 09:00 JST


def test_zones_that_never_share_the_window_are_skipped_with_the_reason(
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    group = Group.objects.create(name="G")
    # A Russian mobile is in all of Russia's zones: a one-hour window never fits them all.
    russia = Contact.objects.create(phone="+79123456789")
    russia.groups.add(group)
    campaign = sending(
        make_campaign(locmem, group, body="Hello"),
        marketer,
        approver,
        window_start=time(9, 0),
        window_end=time(10, 0),
    )
    stats = materialise(campaign)
    assert stats["no_send_window"] == 1 and stats["queued"] == 0
    row = campaign.messages.get()
    assert (row.status, row.skip_reason) == (M.SKIPPED, Message.SkipReason.NO_SEND_WINDOW)


def test_a_message_whose_window_closed_since_it_became_due_waits_again(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    group = Group.objects.create(name="G")
    make_contacts(2, group)
    local = timezone.now().astimezone(ZoneInfo("Europe/London"))
    opens = (local + timedelta(hours=2)).replace(second=0, microsecond=0)
    campaign = sending(
        make_campaign(locmem, group),
        marketer,
        approver,
        window_start=opens.time(),
        window_end=(opens + timedelta(hours=1)).time(),
    )
    materialise(campaign)
    # Due now (as if they were due before the window closed): the send must hold them back.
    campaign.messages.update(next_attempt_at=timezone.now())
    assert dispatch_batch(campaign)
    assert not dispatch_batch(campaign)
    rows = list(campaign.messages.all())
    assert {m.status for m in rows} == {M.PENDING}
    assert {m.attempts for m in rows} == {0}
    assert {m.next_attempt_at for m in rows} == {opens.astimezone(UTC)}


def test_estimate_counts_the_audience_segments_and_cost_and_shows_ucs2(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
) -> None:
    group = Group.objects.create(name="G")
    contacts = make_contacts(5, group)
    Contact.objects.filter(pk=contacts[1].pk).update(first_name="")
    OptOut.objects.create(phone=contacts[0].phone)
    long_name = "x" * 95
    Contact.objects.filter(pk=contacts[2].pk).update(first_name=long_name)
    campaign = make_campaign(simulator, group, body="Hi {{first_name|friend}}, “sale”")
    result = estimate(campaign)
    assert (result.audience, result.opted_out, result.sendable) == (5, 1, 4)
    # UCS-2 (curly quotes): 70 units in one message, else 67 a part: 106 units need 2.
    assert result.segments == 1 + 2 + 1 + 1
    assert result.cost == Decimal("0.03000") * 5
    assert result.ucs2_messages == 4 and result.ucs2_characters == ["“", "”"]
    assert [s.body for s in result.samples][:1] == ["Hi friend, “sale”"]


def test_the_failure_brake_pauses_a_campaign_that_keeps_failing(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
    settings: Any,
) -> None:
    settings.HERALD_DISPATCH_BATCH_SIZE = 10
    simulator.options = {**simulator.options, "reject_rate": 1.0}
    simulator.save()
    group = Group.objects.create(name="G")
    make_contacts(40, group)
    campaign = sending(
        make_campaign(simulator, group), marketer, approver, brake_failure_rate=0.5, brake_window=10
    )
    run_campaign(campaign)
    campaign.refresh_from_db()
    assert campaign.status == S.PAUSED
    assert campaign.pause_reason.startswith("Safety brake: 100% of the last 10 sends failed")
    assert campaign.messages.filter(status=M.FAILED).count() == 10
    assert campaign.messages.filter(status=M.PENDING).count() == 30


def test_failures_below_the_threshold_do_not_brake(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
    settings: Any,
) -> None:
    settings.HERALD_DISPATCH_BATCH_SIZE = 10
    simulator.options = {**simulator.options, "reject_rate": 0.2}
    simulator.save()
    group = Group.objects.create(name="G")
    make_contacts(60, group)
    # Over 40 sends a 20% failure rate passes half only with odds of about one in a million.
    campaign = sending(
        make_campaign(simulator, group), marketer, approver, brake_failure_rate=0.5, brake_window=40
    )
    run_campaign(campaign)
    campaign.refresh_from_db()
    assert campaign.status == S.COMPLETED
    assert 0 < campaign.messages.filter(status=M.FAILED).count() < 30


def test_completion_stores_the_final_counts_and_cost(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    group = Group.objects.create(name="G")
    contacts = make_contacts(3, group)
    OptOut.objects.create(phone=contacts[0].phone)
    campaign = sending(make_campaign(simulator, group), marketer, approver)
    run_campaign(campaign)
    campaign.refresh_from_db()
    assert campaign.status == S.COMPLETED
    assert campaign.final_counts["sent"] == 2 and campaign.final_counts["skipped"] == 1
    assert campaign.final_cost == Decimal("0.06000")
    assert campaign.estimate["sendable"] == 2


def test_a_schedule_missed_while_down_starts_once(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    group = Group.objects.create(name="G")
    make_contacts(2, group)
    campaign = make_campaign(locmem, group)
    campaign.scheduled_at = timezone.now() + timedelta(hours=1)
    campaign.save()
    campaign.submit(by=marketer)
    campaign.approve(by=approver)
    # The machine was down when it was due; two workers wake up to it at once.
    reschedule(campaign, timezone.now() - timedelta(days=1))
    first = Campaign.objects.get(pk=campaign.pk)
    second = Campaign.objects.get(pk=campaign.pk)
    run_campaign(first)
    run_campaign(second)
    assert campaign.transitions.filter(action="start").count() == 1
    assert campaign.messages.filter(status=M.SENT).count() == 2


def test_an_unknown_variable_is_refused_when_saving(
    make_campaign: Callable[..., Campaign], locmem: ProviderAccount
) -> None:
    from django.core.exceptions import ValidationError

    Contact.objects.create(phone="+447911200001", attributes={"tier": "gold"})
    campaign = make_campaign(locmem, body="Hi {{first_name}}, {{tier}} member")
    campaign.full_clean()
    campaign.body = "Hi {{frist_name}}"
    with pytest.raises(ValidationError, match=r"No contact has \{\{frist_name\}\}"):
        campaign.full_clean()
