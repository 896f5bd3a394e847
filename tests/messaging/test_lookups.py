"""Lookups at the provider (sends in doubt, delivery statuses) stand alone: one that fails
is retried or left for the next round, and the others go on; a round has a time budget."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from contacts.models import Channel
from messaging.dispatch import LOOKUP_RETRY, LookupRound, poll_statuses, reconcile_in_doubt
from messaging.http import REQUEST_RETRY
from messaging.models import Message, ProviderAccount
from tests.conftest import phone
from tests.fakegateway import FakeGateway
from tests.messaging.test_backends import send

M = Message.Status
MakeAccount = Callable[..., ProviderAccount]


@pytest.fixture(autouse=True)
def _no_grace(settings: Any) -> None:
    settings.HERALD_RECONCILE_AFTER_SECONDS = 0


def in_doubt(account: ProviderAccount, count: int, gateway: FakeGateway) -> list[Message]:
    """`count` single sends the provider accepted but whose answers were lost (each time
    the send was asked again by its client_ref, too)."""
    gateway.inject("/v1/sms/send", "drop", times=count * REQUEST_RETRY.attempts)
    rows, _ = send(account, count, body="Hi {i}")
    assert {m.status for m in rows} == {M.IN_DOUBT}
    return rows


def test_a_failed_lookup_is_asked_again_and_the_others_are_settled(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bulksmsrates", bulk=False)
    in_doubt(account, 5, gateway)
    gateway.inject(f"/v1/reports/messages?destination=%2B{phone(2)[1:]}", "drop_before")
    gateway.inject("/v1/reports/messages", "status", status=429, headers={"Retry-After": "0"})
    assert reconcile_in_doubt() == {"sent": 5, "resend": 0}
    assert {r.fault for r in gateway.requests if r.method == "GET"} >= {"drop_before", "status"}
    assert len(gateway.messages) == 5  # nothing sent twice


def test_a_lookup_that_keeps_failing_is_left_for_the_next_round(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bulksmsrates", bulk=False)
    rows = in_doubt(account, 4, gateway)
    stuck = f"/v1/reports/messages?destination=%2B{phone(1)[1:]}"
    gateway.inject(stuck, "drop_before", times=LOOKUP_RETRY.attempts)
    assert reconcile_in_doubt() == {"sent": 3, "resend": 0}
    left = Message.objects.get(pk=rows[1].pk)
    assert left.status == M.IN_DOUBT and left.status_checked_at is not None
    assert reconcile_in_doubt() == {"sent": 1, "resend": 0}


def test_a_round_stops_at_its_time_budget_and_the_next_starts_with_the_rest(
    make_account: MakeAccount, gateway: FakeGateway, settings: Any
) -> None:
    account = make_account("bulksmsrates", bulk=False)
    in_doubt(account, 3, gateway)
    settings.HERALD_LOOKUP_ROUND_SECONDS = 0
    assert reconcile_in_doubt() == {"sent": 0, "resend": 0}
    settings.HERALD_LOOKUP_ROUND_SECONDS = 30
    assert reconcile_in_doubt() == {"sent": 3, "resend": 0}


def test_a_round_waits_no_less_than_the_providers_retry_after(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bulksmsrates", bulk=False)
    rows = in_doubt(account, 1, gateway)
    lookups = LookupRound(seconds=0.5)
    gateway.inject(
        "/v1/reports/messages", "status", status=429, times=5, headers={"Retry-After": "2"}
    )
    # Retry-After 2 s does not fit in a 0.5 s round: left for the next one, not asked early.
    assert lookups.ask(account, "sends in doubt", account.get_backend().find_sent, rows) is None
    assert lookups.failed == 1


def test_one_failed_status_lookup_does_not_stop_the_others(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bwatmesaj", status_poll_after=0)
    rows, _ = send(account, 3, body="Same")
    for row in rows:
        gateway.set_status(row.provider_message_id, "delivered")
    lookup = f"/api/v3/sms/{rows[0].provider_message_id}"
    gateway.inject(lookup, "drop_before", times=LOOKUP_RETRY.attempts)
    assert poll_statuses() == 2
    assert Message.objects.get(pk=rows[0].pk).status == M.SENT
    assert poll_statuses() == 1


def test_a_send_in_doubt_past_the_give_up_time_is_not_resent_by_a_lookup(
    make_account: MakeAccount, gateway: FakeGateway, settings: Any
) -> None:
    gateway.inject("/v1/sms/send", "drop_before", times=REQUEST_RETRY.attempts)
    rows, _ = send(make_account("bulksmsrates", bulk=False), 1)
    Message.objects.update(updated_at=timezone.now() - timedelta(hours=2))
    settings.HERALD_IN_DOUBT_GIVE_UP_SECONDS = 3600
    assert reconcile_in_doubt() == {"sent": 0, "resend": 0}
    assert Message.objects.get(pk=rows[0].pk).status == M.IN_DOUBT


def test_a_send_the_history_cannot_match_waits_for_staff_behind_those_it_can(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("buzzbip")
    gateway.inject("/api/whatsapp/", "drop")
    gateway.inject("/api/sms/", "drop")
    whatsapp, _ = send(account, channel=Channel.WHATSAPP, template_id="welcome_1", to=phone(7))
    sms, _ = send(account, body="Hi")
    assert {whatsapp[0].status, sms[0].status} == {M.IN_DOUBT}
    assert reconcile_in_doubt() == {"sent": 1, "resend": 0}
    left = Message.objects.get(pk=whatsapp[0].pk)
    assert left.status == M.IN_DOUBT and left.status_checked_at is not None
