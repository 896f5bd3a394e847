"""The queued webhook door (HERALD_WEBHOOK_APPLY=queued, production's default).

The view checks the signature and the three dedupe keys, records the event with one
INSERT and answers; a worker applies what waits (messaging.webhooks.queue). The rest of
the suite posts webhooks with the door inline, so they read the effect at once; here the
same events go through the queue: recorded, not applied, then applied by the worker's
function, the minute tick, the CLI, and (PostgreSQL) gunicorn with a real qcluster.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule

from contacts.models import Channel, Contact, OptOut
from messaging import counts, tasks
from messaging.models import (
    InboundMessage,
    Message,
    MessageCount,
    ProviderAccount,
    TaskLease,
    WebhookEvent,
)
from messaging.privacy import purge_events
from messaging.webhooks import queue
from messaging.webhooks.bulksmsrates import BulkSMSRatesWebhookView, sign
from tests.conftest import phone

SECRET = "whsec_queue"
URL = "/webhooks/bulksmsrates/brates/"
M = Message.Status


@pytest.fixture(autouse=True)
def queued(settings: Any) -> None:
    settings.HERALD_WEBHOOK_APPLY = "queued"
    settings.HERALD_WEBHOOK_LINGER_SECONDS = 0
    queue._nudged_at = float("-inf")


@pytest.fixture
def account(db: Any) -> ProviderAccount:
    account = ProviderAccount(name="brates", backend=ProviderAccount.Backend.BULKSMSRATES)
    account.set_credentials({"api_key": "k", "api_secret": "s", "webhook_secret": SECRET})
    account.save()
    return account


def signed(payload: dict[str, Any], webhook_id: str = "") -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    ts = str(int(time.time()))
    return body, {
        "Content-Type": "application/json",
        "X-Webhook-Signature": sign(SECRET, ts, body),
        "X-Webhook-Timestamp": ts,
        "X-Webhook-Id": webhook_id or f"wh_{uuid.uuid4().hex}",
    }


def post(client: Client, payload: dict[str, Any], webhook_id: str = "") -> Any:
    body, headers = signed(payload, webhook_id)
    meta: dict[str, Any] = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    meta.pop("HTTP_CONTENT_TYPE")
    return client.post(URL, body, content_type="application/json", **meta)


def dlr(message_id: str, event: str = "message.delivered") -> dict[str, Any]:
    return {
        "id": f"evt-{event}-{message_id}",
        "event": event,
        "created_at": "2026-02-18T12:00:03Z",
        "data": {"message_id": message_id, "carrier_status": "DELIVRD"},
    }


def reply(text: str, sender: str, message_id: str, event_id: str = "") -> dict[str, Any]:
    return {
        "id": event_id or f"evt-{uuid.uuid4().hex}",
        "event": "whatsapp.message",
        "created_at": "2026-02-18T12:00:03Z",
        "data": {"from": sender, "message_id": message_id, "text": text},
    }


def sent_message(account: ProviderAccount, i: int, provider_id: str) -> Message:
    return Message.objects.create(
        provider_account=account,
        phone=phone(i),
        body="hello",
        client_ref=Message.new_client_ref(),
        provider_message_id=provider_id,
        status=M.SENT,
        sent_at=timezone.now(),
    )


@pytest.mark.django_db
def test_an_event_is_recorded_answered_and_applied_later(
    client: Client, account: ProviderAccount
) -> None:
    message = sent_message(account, 0, "msg-1")
    answer = post(client, dlr("msg-1"))
    assert (answer.status_code, answer.json()) == (200, {"status": "ok", "outcome": "queued"})
    event = WebhookEvent.objects.get()
    assert (event.applied_at, event.outcome, event.event) == (None, "", "message.delivered")
    message.refresh_from_db()
    assert message.status == M.SENT  # not yet: no worker has run

    assert queue.apply_pending() == 1
    message.refresh_from_db()
    event.refresh_from_db()
    assert message.status == M.DELIVERED
    assert event.outcome == f"message {message.client_ref} delivered"
    assert event.applied_at is not None
    assert queue.apply_pending() == 0  # applied once


@pytest.mark.django_db
def test_a_batch_of_reports_appends_the_campaigns_counts_once(
    client: Client, account: ProviderAccount, make_campaign: Any
) -> None:
    campaign = make_campaign(account)
    messages = [sent_message(account, i, f"msg-{i}") for i in range(5)]
    Message.objects.filter(pk__in=[m.pk for m in messages]).update(campaign=campaign)
    counts.recount([campaign.pk])
    for i in range(5):
        post(client, dlr(f"msg-{i}"))
    rows_before = MessageCount.objects.filter(campaign=campaign).count()
    assert queue.apply_pending() == 5
    added = MessageCount.objects.filter(campaign=campaign).count() - rows_before
    # status:sent -1, status:delivered +1, the day's delivered, the minute's delivered.
    assert added == 4
    assert counts.status_counts([campaign.pk])[campaign.pk]["delivered"] == 5


@pytest.mark.django_db
def test_copies_are_refused_at_the_door_and_a_reply_is_stored_once(
    client: Client, account: ProviderAccount
) -> None:
    Contact.objects.create(phone=phone(3))
    first = reply("Arrêt", phone(3), "wamid.1", event_id="evt-1")
    assert post(client, first, webhook_id="wh_1").json()["outcome"] == "queued"
    # The provider's retry (same webhook id), and the same event under a new webhook id.
    assert post(client, first, webhook_id="wh_1").json() == {"status": "duplicate"}
    assert post(client, first, webhook_id="wh_2").json() == {"status": "duplicate"}
    # The same WhatsApp message in a new event: recorded, found at apply time.
    again = reply("Arrêt", phone(3), "wamid.1", event_id="evt-2")
    assert post(client, again, webhook_id="wh_3").json()["outcome"] == "queued"
    assert WebhookEvent.objects.pending().count() == 2

    assert queue.apply_pending() == 2
    stored = InboundMessage.objects.get()
    assert (stored.channel, stored.action) == (Channel.WHATSAPP, "opt_out")
    assert OptOut.objects.filter(phone=phone(3), channel=Channel.WHATSAPP).count() == 1
    outcomes = list(WebhookEvent.objects.order_by("pk").values_list("outcome", flat=True))
    assert outcomes == [f"reply {stored.pk}: opt_out", f"reply {stored.pk} already stored"]


@pytest.mark.django_db
def test_a_bad_signature_records_nothing(client: Client, account: ProviderAccount) -> None:
    body, headers = signed(dlr("msg-1"))
    answer = client.post(
        URL,
        body,
        content_type="application/json",
        HTTP_X_WEBHOOK_SIGNATURE="sha256=" + "0" * 64,
        HTTP_X_WEBHOOK_TIMESTAMP=headers["X-Webhook-Timestamp"],
        HTTP_X_WEBHOOK_ID=headers["X-Webhook-Id"],
    )
    assert answer.status_code == 401
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_recording_nudges_a_worker_once_a_second_and_the_tick_applies_the_rest(
    client: Client, account: ProviderAccount, django_capture_on_commit_callbacks: Any
) -> None:
    """Tasks run inline in the tests: the nudge's task applies at once. A second event
    within the second is not nudged again (the lingering applier would find it); here no
    applier lingers, so it waits for the minute tick."""
    first, second = sent_message(account, 0, "msg-1"), sent_message(account, 1, "msg-2")
    with django_capture_on_commit_callbacks(execute=True):
        post(client, dlr("msg-1"))
    with django_capture_on_commit_callbacks(execute=True):
        post(client, dlr("msg-2"))
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (M.DELIVERED, M.SENT)
    assert WebhookEvent.objects.pending().count() == 1

    tasks.inbound_tick()
    second.refresh_from_db()
    assert second.status == M.DELIVERED
    assert not WebhookEvent.objects.pending().exists()


@pytest.mark.django_db
def test_an_event_that_fails_is_retried_then_kept_with_its_error(
    client: Client,
    account: ProviderAccount,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A fault injected into the provider's applier for one event: the others in its batch
    are applied, it is retried by later runs, and given up after MAX_ATTEMPTS."""
    real_apply = BulkSMSRatesWebhookView.apply

    def apply(self: Any, account: ProviderAccount, webhook_id: str, payload: Any) -> str:
        if webhook_id == "wh_bad":
            Contact.objects.create(phone=phone(8))  # undone with its savepoint
            raise ValueError(f"broken for {phone(8)}")
        return real_apply(self, account, webhook_id, payload)

    monkeypatch.setattr(BulkSMSRatesWebhookView, "apply", apply)
    messages = [sent_message(account, i, f"msg-{i}") for i in range(3)]
    post(client, dlr("msg-0"))
    post(client, dlr("msg-1"), webhook_id="wh_bad")
    post(client, dlr("msg-2"))

    assert queue.apply_pending() == 2
    statuses = [Message.objects.get(pk=m.pk).status for m in messages]
    assert statuses == [M.DELIVERED, M.SENT, M.DELIVERED]
    bad = WebhookEvent.objects.get(webhook_id="wh_bad")
    assert (bad.applied_at, bad.attempts) == (None, 1)
    assert bad.outcome == "error: ValueError; tried 1 times, will retry"
    assert not Contact.objects.filter(phone=phone(8)).exists()
    assert phone(8) not in caplog.text and phone(8)[1:] not in caplog.text

    for _ in range(queue.MAX_ATTEMPTS - 1):
        assert queue.apply_pending() == 0
    bad.refresh_from_db()
    assert bad.attempts == queue.MAX_ATTEMPTS
    assert bad.applied_at is not None
    assert bad.outcome == f"failed after {queue.MAX_ATTEMPTS} tries: ValueError"
    assert not WebhookEvent.objects.pending().exists()


@pytest.mark.django_db
def test_one_run_does_not_retry_what_failed_in_it(
    client: Client, account: ProviderAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    def apply(self: Any, account: ProviderAccount, webhook_id: str, payload: Any) -> str:
        raise RuntimeError("down")

    monkeypatch.setattr(BulkSMSRatesWebhookView, "apply", apply)
    post(client, dlr("msg-0"))
    assert queue.apply_webhooks() == 0
    assert WebhookEvent.objects.get().attempts == 1


@pytest.mark.django_db
def test_only_one_applier_holds_the_lease_and_the_holder_finds_later_events(
    client: Client, account: ProviderAccount
) -> None:
    assert TaskLease.objects.take(queue.LEASE, "worker-a", 60)
    assert not TaskLease.objects.take(queue.LEASE, "worker-b", 60)
    assert TaskLease.objects.take(queue.LEASE, "worker-a", 60)  # renewed by its holder
    message = sent_message(account, 0, "msg-1")
    post(client, dlr("msg-1"))
    # Another worker's task, nudged by this event, leaves it to the holder.
    assert queue.apply_webhooks() == 0
    assert WebhookEvent.objects.pending().count() == 1
    # The holder lets go and looks once more (what apply_webhooks does after lingering).
    TaskLease.objects.release(queue.LEASE, "worker-a")
    assert queue.apply_webhooks() == 1
    message.refresh_from_db()
    assert message.status == M.DELIVERED
    assert TaskLease.objects.get(name=queue.LEASE).holder == ""


@pytest.mark.django_db
def test_a_lease_whose_holder_died_runs_out(account: ProviderAccount) -> None:
    assert TaskLease.objects.take(queue.LEASE, "dead", 60)
    TaskLease.objects.filter(name=queue.LEASE).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert TaskLease.objects.take(queue.LEASE, "alive", 60)
    TaskLease.objects.release(queue.LEASE, "dead")  # too late: not its lease any more
    assert TaskLease.objects.get(name=queue.LEASE).holder == "alive"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # roles survive the flush
def test_an_applier_lingers_for_events_recorded_while_it_runs(
    account: ProviderAccount, settings: Any
) -> None:
    """An event recorded while the applier lingers is applied by it, not left waiting."""
    settings.HERALD_WEBHOOK_LINGER_SECONDS = 1.5
    message = sent_message(account, 0, "msg-1")

    def record_later() -> None:
        time.sleep(0.5)
        try:
            assert post(Client(), dlr("msg-1")).json()["outcome"] == "queued"
        finally:
            connection.close()

    started = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        recorded = pool.submit(record_later)
        applied = queue.apply_webhooks()
        recorded.result(timeout=10)
    assert applied == 1
    # It found the event half a second in, then waited 1.5 s more for others.
    assert time.monotonic() - started >= 2.0
    message.refresh_from_db()
    assert message.status == M.DELIVERED


@pytest.mark.django_db
def test_the_cli_shows_what_waits_and_applies_it(client: Client, account: ProviderAccount) -> None:
    sent_message(account, 0, "msg-1")
    post(client, dlr("msg-1"))
    out = io.StringIO()
    call_command("provider", "events", stdout=out)
    assert out.getvalue().startswith("brates: 1 waiting, oldest ")
    out = io.StringIO()
    call_command("provider", "events", "--apply", "--json", stdout=out)
    assert json.loads(out.getvalue()) == {"waiting": [], "applied": 1}
    out = io.StringIO()
    call_command("provider", "events", stdout=out)
    assert out.getvalue() == "no webhook events waiting\n"


@pytest.mark.django_db
def test_retention_keeps_events_no_worker_has_applied(
    client: Client, account: ProviderAccount
) -> None:
    post(client, dlr("msg-1"))
    post(client, dlr("msg-2"))
    queue.apply_pending(limit=1)
    later = timezone.now() + timedelta(days=1)
    assert purge_events(later)["webhook events"] == 1
    assert WebhookEvent.objects.pending().count() == 1


@pytest.mark.django_db
def test_the_admin_filters_waiting_events(
    admin_client: Client, client: Client, account: ProviderAccount
) -> None:
    post(client, dlr("msg-1"), webhook_id="wh_waiting")
    post(client, dlr("msg-2"), webhook_id="wh_applied")
    WebhookEvent.objects.filter(webhook_id="wh_applied").update(applied_at=timezone.now())
    page = admin_client.get("/admin/messaging/webhookevent/?applied=no").content.decode()
    assert "wh_waiting" in page and "wh_applied" not in page


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # roles survive the flush
def test_two_workers_apply_each_event_once(account: ProviderAccount) -> None:
    """Claims skip the rows another worker holds: 400 events, two appliers at once, each
    event applied by exactly one of them."""
    for i in range(200):
        sent_message(account, i, f"msg-{i}")
    events = [
        WebhookEvent(
            provider_account=account,
            webhook_id=f"wh_{n}",
            event_id=f"evt-{n}",
            request_hash=f"{n:064d}",
            event=payload["event"],
            raw=payload,
        )
        for n, payload in enumerate(
            [dlr(f"msg-{i}") for i in range(200)]
            + [reply("hi", phone(i % 50), f"wamid.{i % 100}") for i in range(200)]
        )
    ]
    WebhookEvent.objects.bulk_create(events)

    def run() -> int:
        try:
            return queue.apply_pending()
        finally:
            connection.close()

    with ThreadPoolExecutor(2) as pool:
        counts = [f.result(timeout=120) for f in [pool.submit(run) for _ in range(2)]]
    assert sum(counts) == 400
    assert all(counts), counts  # both took part
    assert not WebhookEvent.objects.pending().exists()
    assert InboundMessage.objects.count() == 100
    outcomes = Counter(
        o.split(":")[0].split(" ")[0]
        for o in WebhookEvent.objects.values_list("outcome", flat=True)
    )
    assert outcomes == {"message": 200, "reply": 200}
    assert Message.objects.filter(status=M.DELIVERED).count() == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_gunicorn_records_and_a_qcluster_applies(
    account: ProviderAccount, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Production's processes: gunicorn answers signed webhooks from four clients at once,
    a qcluster applies them when nudged; every reply is stored once, every report applied,
    with nothing left waiting, well before the minute tick."""
    from tests.campaigns.test_chaos import Cluster
    from tests.config.test_production_multicluster import Web, collect_static, production_env

    monkeypatch.setattr(Conf, "SYNC", False)
    # Only the nudges may apply them, not the minute tick.
    Schedule.objects.filter(func="messaging.tasks.inbound_tick").delete()
    for i in range(100):
        sent_message(account, i, f"msg-{i}")
        Contact.objects.create(phone=phone(i))
    payloads = [dlr(f"msg-{i}") for i in range(100)] + [
        reply(text, phone(i), f"wamid.{i}") for i, text in enumerate(["ok", "STOP"] * 50)
    ]
    # Copies: the same event again, and the same WhatsApp message under a new event.
    payloads += payloads[100:110] + [reply("ok", phone(0), "wamid.0") for _ in range(5)]
    static_root = tmp_path / "static"
    env = production_env(static_root, HERALD_WEBHOOK_LINGER_SECONDS="2", Q_WORKERS="1")
    collect_static(static_root, env)
    web = Web(env, tmp_path)
    cluster = Cluster("applier", env, tmp_path)
    try:
        cluster.start()
        web.wait_until_up()

        def send(payload: dict[str, Any]) -> str:
            body, headers = signed(payload)
            answer = requests.post(
                f"{web.url}/webhooks/bulksmsrates/{account.name}/",
                body,
                headers=headers,
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            return str(answer.json().get("outcome", answer.json()["status"]))

        with ThreadPoolExecutor(4) as pool:
            answers = Counter(pool.map(send, payloads))
        assert answers == {"queued": 205, "duplicate": 10}
        deadline = time.monotonic() + 30
        while WebhookEvent.objects.pending().exists():
            assert time.monotonic() < deadline, cluster.log_tail() + web.log_tail()
            assert cluster.running, cluster.log_tail()
            time.sleep(0.2)
    finally:
        cluster.kill()
        web.stop()
    assert Message.objects.filter(status=M.DELIVERED).count() == 100
    assert InboundMessage.objects.count() == 100
    assert OptOut.objects.filter(channel=Channel.WHATSAPP).count() == 50
    assert WebhookEvent.objects.filter(outcome__contains="already stored").count() == 5
    assert not WebhookEvent.objects.filter(outcome__startswith="error").exists()
