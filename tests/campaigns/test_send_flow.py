"""The whole path, django-q2 in sync mode: submit -> approve -> send -> deliver -> complete."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

import messaging
from campaigns import tasks
from campaigns.models import Campaign
from campaigns.sending import dispatch_batch, materialise
from contacts.models import Contact, Group, OptOut, Tag
from messaging import tasks as messaging_tasks
from messaging.models import Message, ProviderAccount, StatusEvent
from tests.conftest import phone, reschedule

S = Campaign.Status
M = Message.Status

# Transactional, so on_commit wake-ups run; serialized_rollback restores the roles
# and schedule the data migrations made.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def approve(campaign: Campaign, marketer: User, approver: User) -> Campaign:
    """Submit and approve; in sync mode the approval's wake-up runs the send at once."""
    campaign.submit(by=marketer)
    campaign.approve(by=approver)
    campaign.refresh_from_db()
    return campaign


def started_without_sending(campaign: Campaign, marketer: User, approver: User) -> Campaign:
    """Approved, started and materialised, with no batch sent yet."""
    campaign.scheduled_at = timezone.now() + timedelta(hours=1)
    campaign.save()
    approve(campaign, marketer, approver)
    reschedule(campaign, timezone.now())
    assert campaign.start()
    materialise(campaign)
    return campaign


def test_demo_flow_sends_every_message_once_and_completes(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    newsletter = Group.objects.create(name="Newsletter")
    contacts = make_contacts(5, newsletter)
    campaign = make_campaign(simulator, newsletter, body="Hi {{first_name|there}}, sale today!")

    campaign = approve(campaign, marketer, approver)
    assert campaign.status == S.COMPLETED
    rows = list(
        campaign.messages.order_by("phone").values_list("phone", "body", "status", "sender")
    )
    assert rows == [
        (c.phone, f"Hi {c.first_name}, sale today!", M.SENT, "Herald") for c in contacts
    ]

    tasks.tick()  # the worker's minute tick polls the simulator for delivery reports

    messaging_tasks.poll_statuses()
    assert set(campaign.messages.values_list("status", flat=True)) == {M.DELIVERED}
    assert StatusEvent.objects.filter(message__campaign=campaign).count() == 5
    assert [t.action for t in campaign.transitions.all()] == [
        "submit",
        "approve",
        "start",
        "complete",
    ]
    assert campaign.audience_stats | {"after": 0} == {
        "after": 0,
        "audience": 5,
        "queued": 5,
        "opted_out": 0,
        "erased": 0,
        "invalid_number": 0,
        "duplicate": 0,
        "frequency_cap": 0,
        "no_send_window": 0,
    }


def test_a_contact_reached_through_two_groups_and_a_tag_gets_one_message(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    first, second = Group.objects.create(name="A"), Group.objects.create(name="B")
    vip = Tag.objects.create(name="vip")
    shared = make_contacts(3, first, second)
    shared[0].tags.add(vip)
    make_contacts(2, first, start=10)
    campaign = make_campaign(locmem, first, second)
    campaign.tags.add(vip)

    approve(campaign, marketer, approver)

    sent_to = sorted(m.phone for m in messaging.outbox)
    assert sent_to == sorted({phone(i) for i in (0, 1, 2, 10, 11)})
    assert campaign.messages.count() == 5


def test_opted_out_numbers_are_skipped_and_never_sent(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    group = Group.objects.create(name="G")
    make_contacts(4, group)
    OptOut.objects.create(phone=phone(1), channel="sms")
    OptOut.objects.create(phone=phone(2), channel="whatsapp")  # another channel: still sent
    campaign = approve(make_campaign(locmem, group), marketer, approver)

    assert sorted(m.phone for m in messaging.outbox) == [phone(0), phone(2), phone(3)]
    skipped = campaign.messages.get(status=M.SKIPPED)
    assert (skipped.phone, skipped.skip_reason) == (phone(1), Message.SkipReason.OPTED_OUT)
    assert campaign.audience_stats["opted_out"] == 1
    assert campaign.status == S.COMPLETED


def test_an_opt_out_arriving_after_the_audience_was_built_still_wins(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    group = Group.objects.create(name="G")
    make_contacts(2, group)
    campaign = started_without_sending(make_campaign(locmem, group), marketer, approver)

    OptOut.objects.create(phone=phone(0), channel="sms")
    dispatch_batch(campaign)

    assert [m.phone for m in messaging.outbox] == [phone(1)]
    assert campaign.messages.get(phone=phone(0)).status == M.SKIPPED


def test_running_the_campaign_task_again_sends_nothing_twice(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    group = Group.objects.create(name="G")
    make_contacts(3, group)
    campaign = approve(make_campaign(locmem, group), marketer, approver)
    Campaign.objects.filter(pk=campaign.pk).update(status=S.SENDING, materialised_at=None)

    tasks.run_campaign(campaign.pk)  # a repeated wake-up after a crash mid-way
    tasks.tick()
    messaging_tasks.poll_statuses()

    assert len(messaging.outbox) == 3
    assert campaign.messages.count() == 3
    assert Campaign.objects.get(pk=campaign.pk).status == S.COMPLETED


def test_an_account_error_pauses_the_campaign_and_marks_nothing_failed(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    simulator.options["account_error"] = "Insufficient balance"
    simulator.save()
    group = Group.objects.create(name="G")
    make_contacts(3, group)
    campaign = approve(make_campaign(simulator, group), marketer, approver)

    assert campaign.status == S.PAUSED
    assert "Insufficient balance" in campaign.pause_reason
    assert campaign.messages.all().status_counts()[M.PENDING] == 3
    assert set(campaign.messages.values_list("attempts", flat=True)) == {0}

    simulator.options.pop("account_error")
    simulator.save()
    campaign.resume(by=marketer)
    campaign.refresh_from_db()
    assert campaign.status == S.COMPLETED
    assert campaign.messages.all().status_counts()[M.SENT] == 3


def test_busy_gateway_backs_off_and_a_later_tick_finishes_the_job(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
    settings: Any,
) -> None:
    # Half the attempts are refused; with 40 tries none of 20 messages runs out (2**-40).
    settings.HERALD_MAX_SEND_ATTEMPTS = 40
    simulator.options["busy_rate"] = 0.5
    simulator.save()
    group = Group.objects.create(name="G")
    make_contacts(20, group)
    campaign = approve(make_campaign(simulator, group), marketer, approver)
    retrying = campaign.messages.filter(status=M.PENDING)
    assert campaign.status == S.SENDING and retrying.exists()
    assert all(m.next_attempt_at > timezone.now() for m in retrying)

    for _ in range(40):  # time passes: make the retries due, as the minute tick would find them
        Message.objects.filter(status=M.PENDING).update(next_attempt_at=timezone.now())
        tasks.tick()
        messaging_tasks.poll_statuses()

    campaign.refresh_from_db()
    assert campaign.status == S.COMPLETED
    counts = campaign.messages.all().status_counts()
    assert counts[M.SENT] + counts[M.DELIVERED] == 20
    assert campaign.messages.filter(attempts__gt=1).exists()


def test_a_message_still_refused_after_the_last_attempt_fails_with_the_reason(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
    settings: Any,
) -> None:
    settings.HERALD_MAX_SEND_ATTEMPTS = 3
    simulator.options["busy_rate"] = 1.0
    simulator.save()
    group = Group.objects.create(name="G")
    make_contacts(2, group)
    campaign = approve(make_campaign(simulator, group), marketer, approver)
    for _ in range(5):
        Message.objects.filter(status=M.PENDING).update(next_attempt_at=timezone.now())
        tasks.tick()
        messaging_tasks.poll_statuses()

    assert Campaign.objects.get(pk=campaign.pk).status == S.COMPLETED
    assert set(campaign.messages.values_list("status", "attempts", "error_code")) == {
        (M.FAILED, 3, "RATE_LIMITED")
    }


def test_rejected_recipients_fail_with_the_provider_code(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    simulator: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    simulator.options["reject_rate"] = 1.0
    simulator.save()
    group = Group.objects.create(name="G")
    make_contacts(2, group)
    campaign = approve(make_campaign(simulator, group), marketer, approver)
    assert campaign.status == S.COMPLETED
    assert set(campaign.messages.values_list("status", "error_code")) == {
        (M.FAILED, "INVALID_PHONE_NUMBER")
    }


def test_a_scheduled_campaign_waits_for_its_time(
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
    campaign = approve(campaign, marketer, approver)
    tasks.tick()
    messaging_tasks.poll_statuses()
    assert Campaign.objects.get(pk=campaign.pk).status == S.SCHEDULED
    assert messaging.outbox == []

    reschedule(campaign, timezone.now())
    tasks.tick()
    messaging_tasks.poll_statuses()
    assert Campaign.objects.get(pk=campaign.pk).status == S.COMPLETED
    assert len(messaging.outbox) == 2


def test_pause_stops_dispatch_within_one_batch(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
    settings: Any,
) -> None:
    settings.HERALD_DISPATCH_BATCH_SIZE = 2
    group = Group.objects.create(name="G")
    make_contacts(6, group)
    campaign = started_without_sending(make_campaign(locmem, group), marketer, approver)
    assert dispatch_batch(campaign)
    campaign.pause(by=marketer, reason="Typo spotted")
    assert not dispatch_batch(campaign)
    assert len(messaging.outbox) == 2

    campaign.resume(by=marketer)
    assert len(messaging.outbox) == 6
    assert len({m.phone for m in messaging.outbox}) == 6
