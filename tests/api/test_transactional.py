"""POST /api/v1/messages: one message to one number, sent by the engine that sends campaigns,
refused for opted-out and erased numbers, and sent once however often it is retried with
one Idempotency-Key."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import requests
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.utils import timezone

import messaging
from api.idempotency import request_hash
from api.messages import SendIn
from api.models import ApiToken, IdempotentRequest
from api.tasks import webhooks_tick
from campaigns.models import Campaign, MessageTemplate
from campaigns.sending import run_campaign
from contacts.erasure import erase
from contacts.models import Contact, Group, OptOut
from messaging import tasks, transactional
from messaging.inbound import Incoming, queue_reply, receive, send_due_replies
from messaging.models import Message, ProviderAccount, RateBucket
from tests.api.conftest import ApiClient
from tests.campaigns.test_engine import sending
from tests.conftest import phone
from tests.fakegateway import FakeGateway

pytestmark = pytest.mark.django_db
M = Message.Status
URL = "/api/v1/messages"
SECRET = "whsec_test"  # the fake gateway's webhook secret (tests.conftest)

Capture = Callable[..., AbstractContextManager[Any]]


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]


@pytest.fixture
def sender(marketer: User, api_client: Callable[..., ApiClient]) -> ApiClient:
    """A marketer's token that may only send."""
    return api_client(marketer, "messages:send")


@pytest.fixture
def post(sender: ApiClient, django_capture_on_commit_callbacks: Capture) -> Callable[..., Any]:
    """POST a send and let its commit happen as in production: the nudge queues the sender,
    which (django-q2 in sync mode) sends at once."""

    def send(body: dict[str, Any], client: ApiClient | None = None, **headers: str) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return (client or sender).post(URL, body, headers=headers)

    return send


def brates_sends(gateway: FakeGateway) -> list[dict[str, Any]]:
    return [r.json for r in gateway.requests if r.path == "/v1/sms/send"]


# Sending, as campaigns are sent.


def test_a_send_goes_out_to_the_gateway_and_its_delivery_report_is_recorded(
    post: Callable[..., Any],
    sender: ApiClient,
    make_account: Callable[..., ProviderAccount],
    gateway: FakeGateway,
    client: Client,
) -> None:
    account = make_account("bulksmsrates", bulk=False)

    answer = post({"to": "07911 200001", "body": "Your code is 4711"})

    assert answer.status_code == 202
    sent = answer.json()
    assert (sent["to"], sent["kind"], sent["status"]) == (phone(1), "transactional", "pending")
    assert (sent["provider"], sent["requested_by"], sent["campaign"]) == (
        "bulksmsrates",
        "mia",
        None,
    )
    (request,) = brates_sends(gateway)
    assert (request["to"], request["body"]) == (phone(1), "Your code is 4711")
    message = Message.objects.get(pk=sent["id"])
    assert message.status == M.SENT and message.is_transactional
    assert message.provider_message_id
    # The gateway's delivery report comes in through the account's own webhook.
    body, headers = gateway.dlr_request(message.provider_message_id, secret=SECRET)
    hook = client.post(
        f"/webhooks/bulksmsrates/{account.name}/", body, "application/json", headers=headers
    )
    assert hook.status_code == 200
    message.refresh_from_db()
    assert message.status == M.DELIVERED and message.delivered_at is not None


def test_the_answer_says_segments_encoding_and_cost(
    sender: ApiClient, simulator: ProviderAccount
) -> None:
    answer = sender.post(URL, {"to": phone(2), "body": "Ça coûte 5 €" * 10})

    assert answer.status_code == 202
    sent = answer.json()
    assert (sent["encoding"], sent["segments"]) == ("ucs2", 2)
    assert Decimal(sent["cost"]) == Decimal("0.06") and sent["currency"] == "GBP"
    assert "claim_token" not in sent and "lease_expires_at" not in sent


def test_a_template_is_rendered_with_the_variables_then_the_contact_s_fields(
    sender: ApiClient, locmem: ProviderAccount
) -> None:
    Contact.objects.create(phone=phone(3), first_name="Ada", attributes={"city": "Leeds"})
    template = MessageTemplate.objects.create(
        name="Shipped", body="Hi {{first_name}}, order {{order}} leaves {{city}} {{when|today}}"
    )

    by_name = sender.post(URL, {"to": phone(3), "template": "Shipped", "variables": {"order": 42}})
    by_id = sender.post(
        URL, {"to": phone(3), "template": template.pk, "variables": {"order": "7", "city": "York"}}
    )

    assert by_name.status_code == by_id.status_code == 202
    assert by_name.json()["body"] == "Hi Ada, order 42 leaves Leeds today"
    assert by_id.json()["body"] == "Hi Ada, order 7 leaves York today"
    assert by_id.json()["contact"] == Contact.objects.get().pk


def test_a_variable_with_no_value_is_refused_and_nothing_is_queued(
    sender: ApiClient, locmem: ProviderAccount
) -> None:
    answer = sender.post(URL, {"to": phone(4), "body": "Code {{code}} for {{first_name|you}}"})

    assert answer.status_code == 422
    error = error_of(answer)
    assert error["code"] == "invalid" and "{{code}}" in error["details"]["variables"][0]
    assert not Message.objects.exists()


def test_an_opted_out_or_erased_number_is_refused_and_nothing_is_queued(
    sender: ApiClient, locmem: ProviderAccount
) -> None:
    OptOut.objects.create(phone=phone(5), channel="sms")
    erase(phones=[phone(6)])

    opted_out = sender.post(URL, {"to": phone(5), "body": "Hello"})
    gone = sender.post(URL, {"to": phone(6), "body": "Hello"})
    other_channel = sender.post(
        URL, {"to": phone(5), "body": "Hi", "channel": "whatsapp", "whatsapp_template": "hello"}
    )

    assert (opted_out.status_code, error_of(opted_out)["code"]) == (422, "opted_out")
    assert (gone.status_code, error_of(gone)["code"]) == (422, "erased")
    assert phone(5) not in opted_out.json()["error"]["message"]
    # An opt-out is per channel: WhatsApp may still go.
    assert other_channel.status_code == 202
    assert Message.objects.count() == 1


def test_a_number_that_opts_out_after_it_was_queued_is_skipped_when_sending(
    sender: ApiClient, locmem: ProviderAccount
) -> None:
    queued = sender.post(URL, {"to": phone(7), "body": "Hello"}).json()
    OptOut.objects.create(phone=phone(7), channel="sms")

    transactional.send_due()

    message = Message.objects.get(pk=queued["id"])
    assert (message.status, message.skip_reason) == (M.SKIPPED, "opted_out")
    assert messaging.outbox == []


def test_whatsapp_sends_the_template_s_approved_id_with_its_parameters(
    post: Callable[..., Any], make_account: Callable[..., ProviderAccount], gateway: FakeGateway
) -> None:
    make_account("bulksmsrates", bulk=False)
    MessageTemplate.objects.create(
        name="Order shipped",
        channel="whatsapp",
        body="Hi {{first_name|there}}, {{order}} is on its way",
        whatsapp_template_id="order_shipped",
        whatsapp_parameters=["first_name|there", "order"],
    )

    answer = post({"to": phone(8), "template": "Order shipped", "variables": {"order": "ORD-1"}})

    assert answer.status_code == 202
    assert answer.json()["channel"] == "whatsapp"
    assert answer.json()["parameters"] == ["there", "ORD-1"]
    (request,) = [r.json for r in gateway.requests if r.path == "/v1/whatsapp/send"]
    assert request["template"]["name"] == "order_shipped"
    texts = [p["text"] for p in request["template"]["components"][0]["parameters"]]
    assert texts == ["there", "ORD-1"]
    assert Message.objects.get().status == M.SENT


def test_the_pace_is_shared_with_a_running_campaign(
    post: Callable[..., Any],
    make_account: Callable[..., ProviderAccount],
    gateway: FakeGateway,
    make_contacts: Callable[..., list[Contact]],
    make_campaign: Callable[..., Campaign],
    marketer: User,
    approver: User,
) -> None:
    # Five requests a second for the account, whoever sends: three transactional sends
    # and then a campaign's three sends, one after the other, all a fifth of a second apart.
    account = make_account("buzzbip", rate_limit=5)
    group = Group.objects.create(name="G")
    make_contacts(3, group, start=20)
    campaign = sending(make_campaign(account, group), marketer, approver)

    for i in range(3):
        assert post({"to": phone(30 + i), "body": f"Code {i}"}).status_code == 202
    run_campaign(campaign)

    sends = sorted(r.at for r in gateway.requests if r.path == "/api/sms/")
    assert len(sends) == 6
    assert Message.objects.filter(status=M.SENT).count() == 6
    gaps = [later - earlier for earlier, later in itertools.pairwise(sends)]
    # One bucket: the campaign's first send waited for the transactional ones' slots.
    assert min(gaps) >= 0.15, gaps
    assert RateBucket.objects.filter(provider_account=account).count() == 1


def test_a_passing_failure_is_retried_by_the_minute_tick(
    post: Callable[..., Any], make_account: Callable[..., ProviderAccount], gateway: FakeGateway
) -> None:
    make_account("bulksmsrates", bulk=False)
    # Every try within the request fails (the backend tries five times itself).
    gateway.inject("/v1/sms/send", "status", status=503, times=5)

    queued = post({"to": phone(9), "body": "Hello"}).json()
    message = Message.objects.get(pk=queued["id"])
    assert (message.status, message.attempts) == (M.PENDING, 1)
    assert message.next_attempt_at > timezone.now()

    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    tasks.inbound_tick()

    message.refresh_from_db()
    assert (message.status, message.attempts) == (M.SENT, 2)
    assert len(brates_sends(gateway)) == 6


def test_an_account_refusal_keeps_the_message_for_later(
    post: Callable[..., Any],
    make_account: Callable[..., ProviderAccount],
    gateway: FakeGateway,
    settings: Any,
) -> None:
    settings.HERALD_RETRY_WAIT_SECONDS = 60
    account = make_account("bulksmsrates", bulk=False)
    account.set_credentials({"api_key": "wrong", "api_secret": "wrong"})
    account.save()

    queued = post({"to": phone(10), "body": "Hello"}).json()

    # Not the message's fault: not counted as an attempt, tried again after a wait.
    message = Message.objects.get(pk=queued["id"])
    assert (message.status, message.attempts) == (M.PENDING, 0)
    assert message.error_code
    assert message.next_attempt_at > timezone.now()
    assert Message.objects.filter(status=M.PENDING).count() == 1


def test_the_reply_sender_and_the_transactional_sender_take_only_their_own(
    sender: ApiClient, locmem: ProviderAccount
) -> None:
    outcome = receive(locmem, Incoming(channel="sms", phone=phone(11), body="Where is it?"))
    reply = queue_reply(outcome.inbound, "On its way")
    queued = sender.post(URL, {"to": phone(12), "body": "Your code"}).json()

    assert send_due_replies() == 1
    assert Message.objects.get(pk=queued["id"]).status == M.PENDING
    assert transactional.send_due() == 1
    assert transactional.send_due() == 0
    assert {m.pk: m.status for m in Message.objects.all()} == {
        reply.pk: M.SENT,
        queued["id"]: M.SENT,
    }


# The account.


def test_the_account_may_be_left_out_only_when_one_can_send_the_channel(
    sender: ApiClient, db: Any
) -> None:
    none = sender.post(URL, {"to": phone(13), "body": "Hi"})
    ProviderAccount.objects.create(name="sms-only", backend="bwatmesaj")
    one = sender.post(URL, {"to": phone(13), "body": "Hi"})
    whatsapp = sender.post(
        URL, {"to": phone(13), "body": "Hi", "channel": "whatsapp", "whatsapp_template": "t"}
    )
    ProviderAccount.objects.create(name="mem", backend="locmem")
    several = sender.post(URL, {"to": phone(13), "body": "Hi"})
    named = sender.post(URL, {"to": phone(13), "body": "Hi", "provider": "mem"})
    ProviderAccount.objects.filter(name="mem").update(is_active=False)
    disabled = sender.post(URL, {"to": phone(13), "body": "Hi", "provider": "mem"})

    assert none.status_code == 422 and "provider" in error_of(none)["details"]
    assert (one.status_code, one.json()["provider"]) == (202, "sms-only")
    assert whatsapp.status_code == 422 and "whatsapp" in error_of(whatsapp)["message"]
    assert several.status_code == 422
    assert (
        error_of(several)["message"]
        == "Several accounts send sms messages: name one (mem, sms-only)."
    )
    assert (named.status_code, named.json()["provider"]) == (202, "mem")
    assert disabled.status_code == 422 and "provider" in error_of(disabled)["details"]


# Bad input: 4xx in the one shape, nothing queued.


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": "12", "body": "Hi"}, "to"),
        ({"to": phone(14)}, "body"),
        ({"to": phone(14), "body": "Hi", "template": "Shipped"}, "body"),
        ({"to": phone(14), "template": "No such"}, "template"),
        ({"to": phone(14), "body": "Hi", "channel": "whatsapp"}, "whatsapp_template"),
        ({"to": phone(14), "body": "Hi", "whatsapp_template": "t"}, "whatsapp_template"),
        ({"to": phone(14), "body": "x" * 1601}, "body"),
        ({"to": phone(14), "body": "   "}, "body"),
        ({"to": phone(14), "body": "Hi", "sender": "A" * 21}, "sender"),
        ({"to": phone(14), "body": "Hi", "provider": "nope"}, "provider"),
    ],
)
def test_bad_input_is_refused_with_422_naming_the_field(
    sender: ApiClient, locmem: ProviderAccount, body: dict[str, Any], field: str
) -> None:
    MessageTemplate.objects.create(name="Shipped", body="Shipped")

    answer = sender.post(URL, body)

    assert answer.status_code == 422
    assert field in error_of(answer)["details"]
    assert not Message.objects.exists()


def test_malformed_requests_are_422_in_the_error_shape(
    sender: ApiClient, locmem: ProviderAccount
) -> None:
    unknown_field = sender.post(URL, {"to": phone(15), "body": "Hi", "colour": "red"})
    nul = sender.post(URL, {"to": phone(15), "body": "Hi\x00"})
    bearer = {"Authorization": f"Bearer {sender.token}"}
    not_json = sender.client.post(URL, "{", content_type="application/json", headers=bearer)

    for answer in (unknown_field, nul, not_json):
        assert 400 <= answer.status_code < 500
        error_of(answer)
    assert not Message.objects.exists()


# Who may send.


def test_sending_needs_the_messages_send_scope_and_the_send_permission(
    api_client: Callable[..., ApiClient],
    marketer: User,
    approver: User,
    locmem: ProviderAccount,
) -> None:
    body = {"to": phone(16), "body": "Hi"}
    without_scope = api_client(marketer, "campaigns:read", "campaigns:write").post(URL, body)
    approver_token = api_client(approver).post(URL, body)
    marketer_token = api_client(marketer, "messages:send").post(URL, body)

    assert (without_scope.status_code, error_of(without_scope)["code"]) == (403, "forbidden")
    assert approver_token.status_code == 403
    assert "messaging.send_transactional" in error_of(approver_token)["message"]
    assert marketer_token.status_code == 202
    assert Message.objects.count() == 1


# Idempotency-Key.


def test_a_retry_with_the_same_key_returns_the_first_message_and_sends_once(
    post: Callable[..., Any], locmem: ProviderAccount
) -> None:
    body = {"to": phone(17), "body": "Your code is 1234"}

    first = post(body, **{"Idempotency-Key": "order-17"})
    # The same request, written otherwise (a default spelt out, another order of keys).
    again = post(
        {"variables": {}, "body": "Your code is 1234", "to": phone(17)},
        **{"Idempotency-Key": "order-17"},
    )

    assert first.status_code == again.status_code == 202
    assert "Idempotent-Replayed" not in first
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == M.SENT  # as it is now
    assert Message.objects.count() == 1
    assert len(messaging.outbox) == 1
    assert IdempotentRequest.objects.get().message_id == first.json()["id"]


def test_the_same_key_with_another_request_is_a_409_conflict(
    sender: ApiClient, locmem: ProviderAccount
) -> None:
    key = {"Idempotency-Key": "order-18"}
    first = sender.post(URL, {"to": phone(18), "body": "Code 1"}, headers=key)

    other = sender.post(URL, {"to": phone(18), "body": "Code 2"}, headers=key)

    assert first.status_code == 202
    assert (other.status_code, error_of(other)["code"]) == (409, "conflict")
    assert Message.objects.count() == 1


def test_a_retry_gets_its_message_even_when_the_number_opted_out_since(
    sender: ApiClient, locmem: ProviderAccount
) -> None:
    key = {"Idempotency-Key": "order-20"}
    first = sender.post(URL, {"to": phone(20), "body": "Hi"}, headers=key)
    OptOut.objects.create(phone=phone(20), channel="sms")

    again = sender.post(URL, {"to": phone(20), "body": "Hi"}, headers=key)

    assert (first.status_code, again.status_code) == (202, 202)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]


def test_a_refused_request_does_not_use_up_its_key(
    sender: ApiClient, locmem: ProviderAccount
) -> None:
    key = {"Idempotency-Key": "order-19"}
    OptOut.objects.create(phone=phone(19), channel="sms")
    refused = sender.post(URL, {"to": phone(19), "body": "Hi"}, headers=key)
    OptOut.objects.all().delete()

    accepted = sender.post(URL, {"to": phone(19), "body": "Hi"}, headers=key)

    assert (refused.status_code, accepted.status_code) == (422, 202)
    assert "Idempotent-Replayed" not in accepted


def test_keys_are_each_user_s_own_and_kept_for_a_day(
    api_client: Callable[..., ApiClient],
    marketer: User,
    make_user: Callable[..., User],
    locmem: ProviderAccount,
) -> None:
    other = api_client(make_user("otto", "Marketers"), "messages:send")
    mine = api_client(marketer, "messages:send")
    key = {"Idempotency-Key": "k-20"}
    body = {"to": phone(20), "body": "Hi"}

    first = mine.post(URL, body, headers=key)
    theirs = other.post(URL, body, headers=key)
    IdempotentRequest.objects.update(created_at=timezone.now() - timedelta(hours=25))
    after_a_day = mine.post(URL, body, headers=key)

    assert theirs.json()["id"] != first.json()["id"]
    assert after_a_day.status_code == 202 and "Idempotent-Replayed" not in after_a_day
    assert after_a_day.json()["id"] not in (first.json()["id"], theirs.json()["id"])
    # The API's minute tick forgets theirs, a day old; mine was made afresh.
    webhooks_tick()
    assert list(IdempotentRequest.objects.values_list("message_id", flat=True)) == [
        after_a_day.json()["id"]
    ]


@pytest.mark.parametrize("key", ["", "  ", "k" * 256, "line\nbreak"])
def test_an_unusable_key_is_refused(sender: ApiClient, locmem: ProviderAccount, key: str) -> None:
    answer = sender.client.post(
        URL,
        {"to": phone(21), "body": "Hi"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {sender.token}", "Idempotency-Key": key},
    )

    assert answer.status_code in (400, 422)
    error_of(answer)
    assert not Message.objects.exists()


# Two requests with one key at once (PostgreSQL: the unique constraint decides).


@pytest.fixture
def live_sender(live_server: Any, marketer: User) -> Iterator[Callable[..., requests.Response]]:
    _token, text = ApiToken.objects.issue(marketer, "race", ["messages:send"])

    def send(body: dict[str, Any], key: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {text}", "Idempotency-Key": key}
        return requests.post(f"{live_server.url}{URL}", json=body, headers=headers, timeout=30)

    yield send


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_request_racing_another_with_its_key_waits_and_answers_with_its_message(
    live_sender: Callable[..., requests.Response], marketer: User, locmem: ProviderAccount
) -> None:
    from tests.messaging.test_webhooks import wait_until_waiting_on_locks

    body = {"to": phone(22), "body": "Code 5"}
    digest = request_hash(SendIn.model_validate(body).model_dump(mode="json"))
    with ThreadPoolExecutor(1) as pool:
        with transaction.atomic():
            # The other request: its message and key written, not committed yet.
            first = transactional.queue(transactional.Outgoing(to=body["to"], body="Code 5"))
            IdempotentRequest.objects.create(
                user=marketer, key="race-1", request_hash=digest, message=first
            )
            answer = pool.submit(live_sender, body, "race-1")
            wait_until_waiting_on_locks(1)
        second = answer.result(timeout=30)

    assert second.status_code == 202, second.text
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.json()["id"] == first.pk
    assert Message.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_requests_at_once_with_one_key_make_one_message(
    live_sender: Callable[..., requests.Response], locmem: ProviderAccount
) -> None:
    start = threading.Barrier(2)

    def racer(key: str) -> requests.Response:
        start.wait(timeout=10)
        return live_sender({"to": phone(23), "body": "Code 6"}, key)

    for key in ("together-1", "together-2", "together-3"):
        with ThreadPoolExecutor(2) as pool:
            answers = [a.result(timeout=30) for a in [pool.submit(racer, key) for _ in range(2)]]
        assert [a.status_code for a in answers] == [202, 202]
        assert answers[0].json()["id"] == answers[1].json()["id"]
        assert sorted(a.headers.get("Idempotent-Replayed", "") for a in answers) == ["", "true"]
    assert Message.objects.count() == 3
    assert len(messaging.outbox) == 3
