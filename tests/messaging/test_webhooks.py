import hashlib
import hmac
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from contacts.models import Channel, OptOut
from contacts.phones import redact
from messaging.models import InboundMessage, Message, ProviderAccount, StatusEvent, WebhookEvent
from tests.conftest import phone
from tests.fakegateway import FakeGateway

pytestmark = pytest.mark.django_db
M = Message.Status
SECRET = "whsec_test"

Post = Callable[..., Any]


def signed(body: bytes, secret: str, ts: int) -> str:
    digest = hmac.new(secret.encode(), str(ts).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def make_account(name: str, **credentials: str) -> ProviderAccount:
    account = ProviderAccount(name=name, backend="bulksmsrates")
    account.set_credentials({"api_key": "k", "api_secret": "s", **credentials})
    account.save()
    return account


@pytest.fixture
def account() -> ProviderAccount:
    return make_account("brates", webhook_secret=SECRET)


@pytest.fixture
def post(client: Client, account: ProviderAccount) -> Post:
    """POST a signed webhook; keyword arguments override the body, headers or signing."""

    def send(
        payload: Any,
        *,
        account_name: str = account.name,
        secret: str = SECRET,
        ts: int | None = None,
        webhook_id: str = "wh_evt_1",
        body: bytes | None = None,
        content_type: str = "application/json",
        **headers: str,
    ) -> Any:
        raw = json.dumps(payload).encode() if body is None else body
        ts = int(time.time()) if ts is None else ts
        signing: dict[str, Any] = {
            "HTTP_X_WEBHOOK_SIGNATURE": signed(raw, secret, ts),
            "HTTP_X_WEBHOOK_TIMESTAMP": str(ts),
            "HTTP_X_WEBHOOK_ID": webhook_id,
        }
        url = reverse("messaging:bulksmsrates-webhook", args=[account_name])
        return client.post(url, raw, content_type=content_type, **{**signing, **headers})

    return send


def make_message(account: ProviderAccount, i: int = 0, **fields: Any) -> Message:
    values: dict[str, Any] = {"status": M.SENT, "sent_at": timezone.now(), **fields}
    return Message.objects.create(
        provider_account=account,
        phone=phone(i),
        body="hello",
        client_ref=Message.new_client_ref(),
        **values,
    )


def dlr(event: str, message_id: str = "msg-1", i: int = 0, **data: Any) -> dict[str, Any]:
    return {
        "id": f"evt-{event}-{message_id}",
        "event": event,
        "created_at": "2026-02-18T12:00:03Z",
        "data": {"message_id": message_id, "destination": phone(i), **data},
    }


def test_a_delivery_report_marks_the_sent_message_delivered(
    post: Post, account: ProviderAccount
) -> None:
    message = make_message(account, provider_message_id="msg-1")
    payload = dlr(
        "message.delivered", carrier_status="DELIVRD", delivered_at="2026-02-18T12:00:05Z"
    )
    response = post(payload)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    message.refresh_from_db()
    assert message.status == M.DELIVERED
    assert message.delivered_at == datetime(2026, 2, 18, 12, 0, 5, tzinfo=UTC)
    assert message.error_code == ""
    (event,) = StatusEvent.objects.filter(message=message)
    assert (event.status, event.event_id, event.raw) == (M.DELIVERED, payload["id"], payload)
    assert WebhookEvent.objects.get().event == "message.delivered"


def test_a_failure_report_keeps_the_carrier_status(post: Post, account: ProviderAccount) -> None:
    message = make_message(account, provider_message_id="msg-1")
    assert post(dlr("message.failed", carrier_status="UNDELIV")).status_code == 200
    message.refresh_from_db()
    assert (message.status, message.error_code) == (M.FAILED, "UNDELIV")
    assert message.error_message == "carrier status UNDELIV"


def test_a_failure_report_without_carrier_status_says_failed(
    post: Post, account: ProviderAccount
) -> None:
    message = make_message(account, provider_message_id="msg-1")
    post(dlr("message.failed"))
    message.refresh_from_db()
    assert (message.status, message.error_code) == (M.FAILED, "FAILED")


def test_an_expired_message_is_failed_as_expired(post: Post, account: ProviderAccount) -> None:
    message = make_message(account, provider_message_id="msg-1")
    post(dlr("message.expired", carrier_status="EXPIRED"))
    message.refresh_from_db()
    assert (message.status, message.error_code) == (M.FAILED, "EXPIRED")


def test_a_report_can_find_the_message_by_client_ref(post: Post, account: ProviderAccount) -> None:
    message = make_message(account, provider_message_id="other")
    post(dlr("message.delivered", "unknown-id", client_ref=message.client_ref))
    message.refresh_from_db()
    assert message.status == M.DELIVERED


def test_a_bulk_recipient_is_found_by_number_and_keeps_the_provider_id(
    post: Post, account: ProviderAccount
) -> None:
    make_message(account, 1, provider_batch_id="batch-1")
    older = make_message(account, provider_batch_id="batch-0")
    message = make_message(account, provider_batch_id="batch-1")
    response = post(dlr("message.sent", "per-recipient-1"), webhook_id="wh_1")
    assert response.status_code == 200
    message.refresh_from_db()
    assert (message.status, message.provider_message_id) == (M.SENT, "per-recipient-1")
    post(dlr("message.delivered", "per-recipient-1"), webhook_id="wh_2")
    message.refresh_from_db()
    older.refresh_from_db()
    assert message.status == M.DELIVERED
    assert (older.status, older.provider_message_id) == (M.SENT, "")
    assert StatusEvent.objects.filter(message=message).count() == 2


def test_a_stop_reply_suppresses_the_number(post: Post, account: ProviderAccount) -> None:
    payload = {"id": "evt-stop", "event": "opt_out", "data": {"destination": phone(3)}}
    assert post(payload).json()["status"] == "ok"
    entry = OptOut.objects.get()
    assert (entry.phone, entry.channel, entry.source) == (phone(3), Channel.SMS, "reply")
    # The provider passed on no words: the reply is kept (empty) as the opt-out's evidence.
    reply = InboundMessage.objects.get()
    assert (reply.action, reply.opt_out, reply.phone) == ("opt_out", entry, phone(3))
    assert reply.note == "opted out by reply, reported by brates"


def test_a_stop_reply_for_an_unusable_number_is_ignored(post: Post) -> None:
    response = post({"id": "evt-stop", "event": "opt_out", "data": {"phone": "12"}})
    assert response.status_code == 200
    assert response.json()["outcome"] == "ignored: unusable number"
    assert not OptOut.objects.exists()


def test_a_forged_signature_is_refused(post: Post, account: ProviderAccount) -> None:
    message = make_message(account, provider_message_id="msg-1")
    response = post(dlr("message.delivered"), HTTP_X_WEBHOOK_SIGNATURE="sha256=" + "0" * 64)
    assert response.status_code == 401
    message.refresh_from_db()
    assert message.status == M.SENT
    assert not WebhookEvent.objects.exists()


def test_a_signature_with_another_secret_is_refused(post: Post) -> None:
    assert post(dlr("message.delivered"), secret="whsec_other").status_code == 401


def test_a_signature_that_is_not_ascii_is_refused_not_crashed(post: Post) -> None:
    assert post(dlr("message.delivered"), HTTP_X_WEBHOOK_SIGNATURE="sha256=é").status_code == 401


@pytest.mark.parametrize("offset", [-400, 400])
def test_a_timestamp_more_than_five_minutes_away_is_stale(post: Post, offset: int) -> None:
    response = post(dlr("message.delivered"), ts=int(time.time()) + offset)
    assert response.status_code == 401
    assert response.json()["error"] == "stale timestamp"


def test_a_replayed_webhook_is_applied_once(post: Post, account: ProviderAccount) -> None:
    message = make_message(account, provider_message_id="msg-1")
    first = post(dlr("message.delivered"), webhook_id="wh_same")
    # The provider retries with the same X-Webhook-Id; the body is the same event.
    again = post(dlr("message.delivered"), webhook_id="wh_same")
    assert first.json()["status"] == "ok"
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert StatusEvent.objects.filter(message=message).count() == 1
    assert WebhookEvent.objects.count() == 1


def test_the_same_webhook_id_at_another_account_is_not_a_duplicate(
    post: Post, account: ProviderAccount
) -> None:
    other = make_account("brates-eu", webhook_secret=SECRET)
    post(dlr("message.delivered"), webhook_id="wh_same")
    response = post(dlr("message.delivered"), webhook_id="wh_same", account_name=other.name)
    assert response.json()["status"] == "ok"
    assert WebhookEvent.objects.count() == 2


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"', b"", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_refused(post: Post, body: bytes) -> None:
    assert post(None, body=body).status_code == 400
    assert not WebhookEvent.objects.exists()


def test_text_the_database_cannot_store_is_cleaned_not_refused(post: Post) -> None:
    """A verified event is answered 200 whatever is in its strings: refusing it would make
    the provider retry it and, after three tries, switch the account's webhook off."""
    response = post({"id": "e1", "event": "opt_out", "data": {"phone": "\x00"}})
    assert (response.status_code, response.json()["outcome"]) == (200, "ignored: unusable number")
    assert WebhookEvent.objects.get().raw["data"] == {"phone": ""}


def test_json_nested_deeper_than_any_event_is_refused(post: Post) -> None:
    assert post(None, body=b"[" * 100 + b"]" * 100).status_code == 400
    deep = b'{"a": ' * 40 + b"1" + b"}" * 40
    assert post(None, body=deep).status_code == 400
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/jsonx"]
)
def test_a_body_that_is_not_declared_json_is_refused(post: Post, content_type: str) -> None:
    assert post(dlr("message.delivered"), content_type=content_type).status_code == 400


def test_json_with_a_charset_is_accepted(post: Post) -> None:
    response = post(dlr("message.delivered"), content_type="application/json; charset=utf-8")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "header", ["HTTP_X_WEBHOOK_SIGNATURE", "HTTP_X_WEBHOOK_TIMESTAMP", "HTTP_X_WEBHOOK_ID"]
)
def test_each_signing_header_is_required(
    client: Client, account: ProviderAccount, header: str
) -> None:
    body = json.dumps(dlr("message.delivered")).encode()
    ts = int(time.time())
    headers: dict[str, Any] = {
        "HTTP_X_WEBHOOK_SIGNATURE": signed(body, SECRET, ts),
        "HTTP_X_WEBHOOK_TIMESTAMP": str(ts),
        "HTTP_X_WEBHOOK_ID": "wh_1",
    }
    del headers[header]
    url = reverse("messaging:bulksmsrates-webhook", args=[account.name])
    assert client.post(url, body, content_type="application/json", **headers).status_code == 400


@pytest.mark.parametrize("ts", ["soon", "1708257603.5", " 1708257603", "-1"])
def test_a_timestamp_that_is_not_unix_seconds_is_refused(post: Post, ts: str) -> None:
    assert post(dlr("message.delivered"), HTTP_X_WEBHOOK_TIMESTAMP=ts).status_code == 400


def test_an_unknown_account_is_not_found(post: Post) -> None:
    assert post(dlr("message.delivered"), account_name="nobody").status_code == 404


def test_an_account_of_another_backend_is_not_found(post: Post, locmem: ProviderAccount) -> None:
    assert post(dlr("message.delivered"), account_name=locmem.name).status_code == 404


def test_get_is_not_allowed(client: Client, account: ProviderAccount) -> None:
    url = reverse("messaging:bulksmsrates-webhook", args=[account.name])
    assert client.get(url).status_code == 405


def test_an_account_without_webhook_secret_refuses_everything(
    post: Post, caplog: pytest.LogCaptureFixture
) -> None:
    bare = make_account("bare")
    response = post(dlr("message.delivered"), account_name=bare.name, secret="")
    assert response.status_code == 401
    assert "bare" in caplog.text and "no webhook_secret" in caplog.text


def test_a_body_over_256_kb_is_too_large(post: Post) -> None:
    payload = dlr("message.delivered", padding="x" * 256 * 1024)
    assert post(payload).status_code == 413


def test_a_report_for_an_unknown_message_changes_nothing(
    post: Post, account: ProviderAccount
) -> None:
    message = make_message(account, provider_message_id="msg-1")
    response = post(dlr("message.delivered", "msg-elsewhere", i=9))
    assert response.json() == {"status": "ok", "outcome": "ignored: unknown message"}
    message.refresh_from_db()
    assert message.status == M.SENT
    assert not StatusEvent.objects.exists()
    assert WebhookEvent.objects.get().outcome == "ignored: unknown message"


def test_an_unknown_event_type_is_ignored(post: Post) -> None:
    response = post({"id": "e", "event": "sms.exploded", "data": {"balance": 3}})
    assert response.json()["outcome"] == "ignored: unknown event type"


DELIVERED_MSG_1 = {"event": "message.delivered", "data": {"message_id": "msg-1"}}


@pytest.mark.parametrize(
    "payload",
    [
        {"event": "message.delivered", "data": [1, 2]},
        {"event": "message.delivered", "data": None},
        {"event": "message.delivered"},
        {"event": ["message.delivered"], "data": {}},
        {"id": 7, "event": "message.delivered", "data": {"message_id": 12345}},
        {"event": "message.delivered", "data": {"message_id": None, "destination": 447911200000}},
        {**DELIVERED_MSG_1, "created_at": "yesterday"},
        {**DELIVERED_MSG_1, "created_at": "0001-01-01T00:00:00+05:00"},
        {**DELIVERED_MSG_1, "created_at": "2026-02-30T00:00:00Z"},
        {**DELIVERED_MSG_1, "data": {"message_id": "msg-1", "delivered_at": 17}},
        {"event": "message.failed", "data": {"message_id": "msg-1", "carrier_status": ["X"]}},
        {"event": "message.failed", "data": {"message_id": "msg-1", "carrier_status": "X" * 99}},
        {"event": "opt_out", "data": {"destination": {"number": "+447911200000"}}},
        {"id": "x" * 500, "event": "x" * 500, "data": {"message_id": "x" * 500, "client_ref": 3}},
    ],
)
def test_garbage_from_the_provider_is_answered_200_never_500(
    post: Post, account: ProviderAccount, payload: dict[str, Any]
) -> None:
    make_message(account, provider_message_id="msg-1")
    response = post(payload)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_a_report_with_an_unreadable_time_is_dated_now(
    post: Post, account: ProviderAccount
) -> None:
    message = make_message(account, provider_message_id="msg-1")
    before = timezone.now()
    data = {"message_id": "msg-1", "delivered_at": "soon"}
    post({"id": "e1", "event": "message.delivered", "created_at": "yesterday", "data": data})
    message.refresh_from_db()
    assert message.status == M.DELIVERED
    assert message.delivered_at is not None and message.delivered_at >= before


def test_a_report_for_a_delivered_message_does_not_change_it(
    post: Post, account: ProviderAccount
) -> None:
    delivered_at = datetime(2026, 1, 1, tzinfo=UTC)
    message = make_message(
        account, provider_message_id="msg-1", status=M.DELIVERED, delivered_at=delivered_at
    )
    post(dlr("message.failed", carrier_status="UNDELIV"), webhook_id="wh_1")
    post(dlr("message.delivered"), webhook_id="wh_2")
    message.refresh_from_db()
    assert (message.status, message.delivered_at, message.error_code) == (
        M.DELIVERED,
        delivered_at,
        "",
    )


def test_a_message_of_another_account_is_never_touched(
    post: Post, account: ProviderAccount
) -> None:
    other = make_account("brates-eu", webhook_secret=SECRET)
    theirs = make_message(other, provider_message_id="msg-1", provider_batch_id="b")
    response = post(dlr("message.delivered"))
    assert response.json()["outcome"] == "ignored: unknown message"
    theirs.refresh_from_db()
    assert theirs.status == M.SENT
    assert not StatusEvent.objects.exists()


# Replays: the signature covers the timestamp and body, not X-Webhook-Id.


def test_a_signed_request_replayed_under_a_new_webhook_id_is_not_applied_again(
    post: Post, account: ProviderAccount
) -> None:
    ts = int(time.time())
    stop = {"id": "evt-stop", "event": "opt_out", "data": {"destination": phone(3)}}
    assert post(stop, ts=ts, webhook_id="wh_1").json()["status"] == "ok"
    OptOut.objects.all().delete()  # the person opted back in (staff removed the entry)

    replay = post(stop, ts=ts, webhook_id="wh_forged")

    assert (replay.status_code, replay.json()) == (200, {"status": "duplicate"})
    assert not OptOut.objects.exists()
    assert WebhookEvent.objects.count() == 1


def test_a_replay_of_a_report_without_an_event_id_is_recognised_by_its_signed_bytes(
    post: Post, account: ProviderAccount
) -> None:
    message = make_message(account, provider_message_id="msg-1")
    report = {"event": "message.delivered", "data": {"message_id": "msg-1"}}  # no "id"
    ts = int(time.time())
    post(report, ts=ts, webhook_id="wh_1")

    replay = post(report, ts=ts, webhook_id="wh_2")

    assert replay.json() == {"status": "duplicate"}
    assert StatusEvent.objects.filter(message=message).count() == 1
    (record,) = WebhookEvent.objects.all()
    body = json.dumps(report).encode()
    assert record.request_hash == hashlib.sha256(f"{ts}.".encode() + body).hexdigest()
    assert record.event_id == ""


def test_the_same_event_signed_again_under_a_new_webhook_id_is_a_duplicate(
    post: Post, account: ProviderAccount
) -> None:
    """Signed afresh (a new timestamp) and sent under a new id: the body's event id is kept."""
    make_message(account, provider_message_id="msg-1")
    now = int(time.time())
    post(dlr("message.delivered"), ts=now - 60, webhook_id="wh_1")

    again = post(dlr("message.delivered"), ts=now, webhook_id="wh_2")

    assert again.json() == {"status": "duplicate"}
    assert WebhookEvent.objects.get().event_id == "evt-message.delivered-msg-1"


def test_a_duplicate_is_logged_with_the_key_it_was_recognised_by(
    post: Post, account: ProviderAccount, caplog: pytest.LogCaptureFixture
) -> None:
    ts = int(time.time())
    post(dlr("message.delivered"), ts=ts, webhook_id="wh_1")
    post(dlr("message.delivered"), ts=ts, webhook_id="wh_1")
    post(dlr("message.delivered"), ts=ts, webhook_id="wh_2")
    post(dlr("message.delivered"), ts=ts + 1, webhook_id="wh_3")
    post({"event": "opt_out", "data": {"phone": phone(3)}}, ts=ts, webhook_id="wh_4")
    post({"event": "opt_out", "data": {"phone": phone(3)}}, ts=ts, webhook_id="wh_5")
    webhook_lines = [r for r in caplog.records if r.name == "messaging.webhooks.base"]
    assert [r.getMessage().rsplit(": ", 1)[1] for r in webhook_lines][1:] == [
        "duplicate (same webhook id)",
        "duplicate (same event id)",
        "duplicate (same event id)",
        f"opted out by reply, reported by brates {redact(phone(3))}",
        "duplicate (same signed request)",
    ]


def test_events_with_different_ids_in_one_second_are_each_applied(
    post: Post, account: ProviderAccount
) -> None:
    first = make_message(account, provider_message_id="msg-1")
    second = make_message(account, 1, provider_message_id="msg-2")
    ts = int(time.time())
    post(dlr("message.delivered", "msg-1"), ts=ts, webhook_id="wh_1")
    post(dlr("message.delivered", "msg-2", i=1), ts=ts, webhook_id="wh_2")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (M.DELIVERED, M.DELIVERED)
    assert WebhookEvent.objects.count() == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # roles survive the flush
def test_a_replay_racing_the_original_is_refused_by_the_database(
    gateway: FakeGateway, live_server: Any
) -> None:
    """Both copies are in flight at once: the database's unique key, not a lookup, decides."""
    account = make_account("brates", webhook_secret=SECRET)
    message = make_message(account, provider_message_id="msg-race")
    body, headers = gateway.dlr_request("msg-race", secret=SECRET)
    url = f"{live_server.url}/webhooks/bulksmsrates/{account.name}/"
    copies = [{**headers, "X-Webhook-Id": webhook_id} for webhook_id in ("wh_a", "wh_b")]
    with ThreadPoolExecutor(2) as pool:
        with transaction.atomic():
            # Holding the message makes the first copy wait inside its transaction, with
            # its record written but not committed, until both are in flight.
            Message.objects.select_for_update().get(pk=message.pk)
            answers = [pool.submit(requests.post, url, body, headers=h) for h in copies]
            wait_until_waiting_on_locks(2)
        statuses = sorted(answer.result(timeout=30).json()["status"] for answer in answers)
    assert statuses == ["duplicate", "ok"]
    assert WebhookEvent.objects.count() == 1
    assert StatusEvent.objects.filter(message=message).count() == 1
    message.refresh_from_db()
    assert message.status == M.DELIVERED


def wait_until_waiting_on_locks(backends: int, seconds: float = 15) -> None:
    """Until that many other sessions of this database wait on a lock."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            # Inside a transaction the activity view is read once, unless told to read again.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0] >= backends:
                return
        time.sleep(0.05)
    raise AssertionError(f"{backends} requests never waited on a lock together")


def test_an_inbound_whatsapp_message_is_kept_once_and_acted_on(post: Post) -> None:
    data = {"from": phone(3), "to": "+447911000001", "message_id": "wamid.1", "text": "Arrêt"}
    first = post({"id": "evt-w1", "event": "whatsapp.message", "data": data})
    assert first.json()["outcome"].endswith(": opt_out")
    reply = InboundMessage.objects.get()
    assert (reply.channel, reply.phone, reply.to, reply.body) == (
        "whatsapp",
        phone(3),
        "+447911000001",
        "Arrêt",
    )
    assert OptOut.objects.get().channel == Channel.WHATSAPP
    # The same message in a new event (a new id, a new signature): not stored twice.
    again = post({"id": "evt-w2", "event": "whatsapp.message", "data": data}, webhook_id="wh_2")
    assert again.json()["outcome"] == f"reply {reply.pk} already stored"
    assert InboundMessage.objects.count() == 1


def test_a_meta_style_text_object_and_a_body_field_are_both_read(post: Post) -> None:
    post(
        {
            "id": "evt-w1",
            "event": "whatsapp.message",
            "data": {"from": phone(3), "message_id": "m1", "text": {"body": "HELP"}},
        }
    )
    post(
        {"id": "evt-w2", "event": "whatsapp.message", "data": {"from": phone(4), "body": "hi"}},
        webhook_id="wh_2",
    )
    assert list(InboundMessage.objects.order_by("pk").values_list("body", "action")) == [
        ("HELP", "help"),
        ("hi", "none"),
    ]
    # With no message_id the event's id is the dedupe key.
    assert InboundMessage.objects.get(body="hi").provider_message_id == "evt-w2"


def test_an_inbound_event_without_a_sender_is_ignored(post: Post) -> None:
    response = post({"id": "e", "event": "whatsapp.message", "data": {"text": "hi"}})
    assert response.json()["outcome"] == "ignored: no sender"
    assert not InboundMessage.objects.exists()


def test_a_finished_batch_says_how_many_messages_still_await_reports(
    post: Post, account: ProviderAccount
) -> None:
    make_message(account, provider_message_id="", provider_batch_id="batch-7")
    response = post({"id": "e", "event": "campaign.completed", "data": {"batch_id": "batch-7"}})
    assert (
        response.json()["outcome"]
        == "campaign.completed for batch batch-7: 1 messages await reports"
    )
    failed = post({"id": "f", "event": "campaign.failed", "data": {}}, webhook_id="wh_2")
    assert failed.json()["outcome"] == "campaign.failed: no batch id"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # roles survive the flush
def test_one_reply_in_two_events_at_once_is_stored_once(
    gateway: FakeGateway, live_server: Any
) -> None:
    """Two events (new ids, new signatures) carry the same WhatsApp message at the same
    moment: the reply's own unique key decides, and the loser answers 200 "already stored"."""
    account = make_account("brates", webhook_secret=SECRET)
    url = f"{live_server.url}/webhooks/bulksmsrates/{account.name}/"
    data = {"from": phone(3), "message_id": "wamid.race", "text": "STOP"}
    requests_ = [
        gateway.event_request("whatsapp.message", data, secret=SECRET, event_id=f"evt-{n}")
        for n in (1, 2)
    ]
    with ThreadPoolExecutor(2) as pool:
        with transaction.atomic():
            # An uncommitted copy of the key makes both requests wait on it together.
            InboundMessage.objects.create(
                provider_account=account, provider_message_id="wamid.race", phone=phone(9)
            )
            answers = [pool.submit(requests.post, url, b, headers=h) for b, h in requests_]
            wait_until_waiting_on_locks(2)
            transaction.set_rollback(True)
        outcomes = sorted(a.result(timeout=30).json()["outcome"] for a in answers)
    reply = InboundMessage.objects.get()
    assert outcomes == [f"reply {reply.pk} already stored", f"reply {reply.pk}: opt_out"]
    assert OptOut.objects.count() == 1
    assert WebhookEvent.objects.count() == 2
