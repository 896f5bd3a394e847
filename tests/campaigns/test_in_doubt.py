"""Messages in doubt do not keep a campaign sending forever, and staff decide on them:
"Mark as sent" or "Send again", from the campaign page or the messages admin, one method."""

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from campaigns import tasks
from campaigns.models import Campaign
from campaigns.sending import run_campaign
from contacts.models import Contact, Group
from messaging import outbox
from messaging.models import Message, ProviderAccount
from tests.campaigns.test_send_flow import started_without_sending

S = Campaign.Status
M = Message.Status

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def doubtful(
    make_campaign: Callable[..., Campaign],
    make_contacts: Callable[..., list[Contact]],
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
) -> Campaign:
    """A sending campaign: 3 messages sent, 2 in doubt (a worker died mid-request)."""
    group = Group.objects.create(name="List")
    make_contacts(5, group)
    campaign = started_without_sending(make_campaign(locmem, group), marketer, approver)
    rows = campaign.messages.all().claim(5)
    Message.objects.filter(pk__in=[r.pk for r in rows[:3]]).mark_sent("", at=timezone.now())
    Message.objects.filter(pk__in=[r.pk for r in rows[3:]]).mark_in_doubt("LEASE_EXPIRED", "died")
    return campaign


def age_doubts(campaign: Campaign, seconds: float) -> None:
    """Make the rows in doubt as old as `seconds` (the test's stand-in for waiting)."""
    then = timezone.now() - timedelta(seconds=seconds)
    campaign.messages.filter(status=M.IN_DOUBT).update(updated_at=then)


def test_a_campaign_waits_for_recent_doubts_then_completes_with_them_counted(
    doubtful: Campaign, settings: Any
) -> None:
    settings.HERALD_IN_DOUBT_GIVE_UP_SECONDS = 3600
    tasks.tick()
    doubtful.refresh_from_db()
    assert doubtful.status == S.SENDING
    age_doubts(doubtful, 3601)
    tasks.tick()
    doubtful.refresh_from_db()
    assert doubtful.status == S.COMPLETED
    assert doubtful.final_counts[M.IN_DOUBT] == 2 and doubtful.final_counts[M.SENT] == 3


def test_staff_mark_doubts_as_sent_from_the_campaign_page(
    doubtful: Campaign, marketer: User
) -> None:
    client = Client()
    client.force_login(marketer)
    page = client.get(f"/campaigns/{doubtful.pk}/").content.decode()
    assert "2 messages may or may not have reached the provider" in page
    assert "Mark as sent" in page and "Send again" in page
    answer = client.post(f"/campaigns/{doubtful.pk}/in-doubt/mark_sent/", follow=True)
    assert "2 messages marked as sent." in answer.content.decode()
    assert doubtful.messages.status_counts()[M.SENT] == 5
    event = AuditEvent.objects.get(action=AuditEvent.Action.IN_DOUBT_DECIDED)
    assert event.actor == marketer
    assert event.detail == {"decision": "mark_sent", "messages": 2, "campaigns": [doubtful.pk]}
    tasks.tick()
    doubtful.refresh_from_db()
    assert doubtful.status == S.COMPLETED


def test_staff_send_doubts_again_and_they_go_out_once_more(
    doubtful: Campaign, marketer: User
) -> None:
    client = Client()
    client.force_login(marketer)
    refused = client.post(f"/campaigns/{doubtful.pk}/in-doubt/send_again/", follow=True)
    assert "Tick the box to confirm." in refused.content.decode()
    url = f"/campaigns/{doubtful.pk}/in-doubt/send_again/"
    answer = client.post(url, {"confirm": "yes"}, follow=True)
    assert "2 messages queued to be sent again." in answer.content.decode()
    tasks.tick()  # the wake-up sends them (tasks run inline in tests)
    doubtful.refresh_from_db()
    assert doubtful.status == S.COMPLETED
    assert doubtful.messages.status_counts()[M.SENT] == 5
    assert len(outbox) == 2


def test_who_may_not_decide_is_refused(doubtful: Campaign, approver: User) -> None:
    client = Client()
    client.force_login(approver)
    assert "Mark as sent" not in client.get(f"/campaigns/{doubtful.pk}/").content.decode()
    assert client.post(f"/campaigns/{doubtful.pk}/in-doubt/mark_sent/").status_code == 403
    assert doubtful.messages.status_counts()[M.IN_DOUBT] == 2


def test_the_messages_admin_sends_again_only_while_the_campaign_still_sends(
    doubtful: Campaign, admin_client: Client, settings: Any
) -> None:
    age_doubts(doubtful, settings.HERALD_IN_DOUBT_GIVE_UP_SECONDS + 1)
    tasks.tick()  # completes, with the two in doubt counted
    ids = list(doubtful.messages.filter(status=M.IN_DOUBT).values_list("pk", flat=True))
    form = {"action": "send_again", "_selected_action": ids}
    page = admin_client.post("/admin/messaging/message/", form, follow=True).content.decode()
    assert "0 of 2 messages in doubt queued to be sent again." in page
    assert "their campaign has finished" in page
    form["action"] = "mark_sent"
    page = admin_client.post("/admin/messaging/message/", form, follow=True).content.decode()
    assert "2 of 2 messages in doubt marked as sent." in page
    assert not doubtful.messages.filter(status=M.IN_DOUBT).exists()


def test_a_run_waits_for_a_retry_due_soon_instead_of_the_next_tick(
    doubtful: Campaign, settings: Any
) -> None:
    settings.HERALD_RETRY_WAIT_SECONDS = 5
    doubtful.messages.filter(status=M.IN_DOUBT).decide_in_doubt("send_again", by=None)
    doubtful.messages.filter(status=M.PENDING).update(
        next_attempt_at=timezone.now() + timedelta(seconds=1)
    )
    started = time.monotonic()
    run_campaign(doubtful)
    assert 0.9 < time.monotonic() - started < 5
    doubtful.refresh_from_db()
    assert doubtful.status == S.COMPLETED and len(outbox) == 2


def test_a_run_leaves_a_retry_due_later_to_the_tick(doubtful: Campaign, settings: Any) -> None:
    settings.HERALD_RETRY_WAIT_SECONDS = 5
    doubtful.messages.filter(status=M.IN_DOUBT).decide_in_doubt("send_again", by=None)
    doubtful.messages.filter(status=M.PENDING).update(
        next_attempt_at=timezone.now() + timedelta(seconds=30)
    )
    started = time.monotonic()
    run_campaign(doubtful)
    assert time.monotonic() - started < 2 and len(outbox) == 0
