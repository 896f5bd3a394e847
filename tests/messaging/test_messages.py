import io
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from messaging.backends.base import StatusUpdate
from messaging.backends.console import ConsoleBackend
from messaging.dispatch import backoff_seconds, mark_expired_leases_in_doubt, poll_statuses
from messaging.models import Message, ProviderAccount, StatusEvent, WorkerHeartbeat
from tests.conftest import phone

pytestmark = pytest.mark.django_db
M = Message.Status


@pytest.fixture
def make_messages(locmem: ProviderAccount) -> Callable[..., list[Message]]:
    def make(count: int, account: ProviderAccount = locmem, **fields: object) -> list[Message]:
        return [
            Message.objects.create(
                provider_account=account,
                phone=phone(i),
                body="hello",
                client_ref=Message.new_client_ref(),
                **fields,
            )
            for i in range(count)
        ]

    return make


def test_claim_takes_each_due_row_once(make_messages: Callable[..., list[Message]]) -> None:
    make_messages(5)
    first = Message.objects.all().claim(3)
    second = Message.objects.all().claim(3)
    third = Message.objects.all().claim(3)
    assert len(first) == 3 and len(second) == 2 and third == []
    assert not {m.pk for m in first} & {m.pk for m in second}
    assert {m.status for m in first + second} == {M.SENDING}
    assert {m.attempts for m in first + second} == {1}


def test_claim_leaves_rows_that_are_not_due_yet(
    make_messages: Callable[..., list[Message]],
) -> None:
    make_messages(2, next_attempt_at=timezone.now() + timedelta(minutes=5))
    assert Message.objects.all().claim(10) == []


def test_a_row_whose_worker_vanished_is_in_doubt_not_resent(
    make_messages: Callable[..., list[Message]],
) -> None:
    make_messages(1)
    (claimed,) = Message.objects.all().claim(1)
    Message.objects.filter(pk=claimed.pk).update(lease_expires_at=timezone.now() - timedelta(1))
    assert mark_expired_leases_in_doubt() == 1
    claimed.refresh_from_db()
    assert (claimed.status, claimed.error_code) == (M.IN_DOUBT, "LEASE_EXPIRED")
    assert Message.objects.all().claim(1) == []


def test_a_status_report_is_applied_once_and_never_moves_backwards(
    make_messages: Callable[..., list[Message]],
) -> None:
    (message,) = make_messages(1, status=M.SENT, sent_at=timezone.now())
    delivered = StatusUpdate(message, M.DELIVERED, "evt-1", timezone.now(), raw={"a": 1})
    assert message.apply_status(delivered) is True
    assert message.apply_status(delivered) is False  # replayed report
    late_failure = StatusUpdate(message, M.FAILED, "evt-2", timezone.now())
    assert message.apply_status(late_failure) is False
    message.refresh_from_db()
    assert message.status == M.DELIVERED and message.delivered_at is not None
    assert StatusEvent.objects.filter(message=message).count() == 2


def test_polling_the_simulator_delivers_and_fails_by_its_seeded_rates(
    simulator: ProviderAccount, make_messages: Callable[..., list[Message]]
) -> None:
    simulator.options["failure_rate"] = 0.5
    simulator.save()
    make_messages(40, account=simulator, status=M.SENT, sent_at=timezone.now())
    assert poll_statuses() == 40
    counts = Message.objects.all().status_counts()
    assert counts[M.DELIVERED] + counts[M.FAILED] == 40
    assert 5 < counts[M.FAILED] < 35
    assert poll_statuses() == 0


def test_the_simulator_withholds_reports_until_the_delivery_delay_passed(
    simulator: ProviderAccount, make_messages: Callable[..., list[Message]]
) -> None:
    simulator.options["delivery_delay"] = 3600
    simulator.save()
    make_messages(10, account=simulator, status=M.SENT, sent_at=timezone.now())
    assert poll_statuses() < 10
    Message.objects.update(sent_at=timezone.now() - timedelta(hours=2))
    poll_statuses()
    assert Message.objects.filter(status=M.SENT).count() == 0


def test_backoff_grows_and_honours_retry_after() -> None:
    assert 15 <= backoff_seconds(1) <= 30
    assert 240 <= backoff_seconds(5) <= 480
    assert backoff_seconds(50) <= 3600
    assert backoff_seconds(1, retry_after=120) == 120


def test_console_backend_writes_each_message(
    make_messages: Callable[..., list[Message]], locmem: ProviderAccount
) -> None:
    stream = io.StringIO()
    messages = make_messages(2)
    results = ConsoleBackend(locmem, stream=stream).send_messages(messages)
    assert [r.provider_message_id for r in results] == [f"console-{m.client_ref}" for m in messages]
    assert stream.getvalue().count("hello") == 2


def test_credentials_are_encrypted_at_rest() -> None:
    account = ProviderAccount(name="bulk", backend="simulator")
    account.set_credentials({"api_key": "bsms_live_abc", "api_secret": "sk_live_xyz"})
    account.save()
    with connection.cursor() as cursor:
        cursor.execute("SELECT encrypted_credentials FROM messaging_provideraccount")
        (stored,) = cursor.fetchone()
    assert "sk_live_xyz" not in stored and "api_secret" not in stored
    assert ProviderAccount.objects.get().credentials["api_secret"] == "sk_live_xyz"


def test_admin_never_shows_stored_credentials_back(admin_client: Client) -> None:
    account = ProviderAccount(name="bulk", backend="simulator")
    account.set_credentials({"api_secret": "sk_live_xyz"})
    account.save()
    page = admin_client.get(f"/admin/messaging/provideraccount/{account.pk}/change/")
    assert page.status_code == 200
    assert "sk_live_xyz" not in page.content.decode()
    assert account.encrypted_credentials not in page.content.decode()


def test_admin_keeps_credentials_when_the_field_is_left_empty(admin_client: Client) -> None:
    account = ProviderAccount(name="bulk", backend="bulksmsrates")
    account.set_credentials({"api_secret": "sk_live_xyz"})
    account.save()
    form = {
        "name": "bulk",
        "backend": "bulksmsrates",
        "rate_limit": "5",
        "price_per_segment": "0.01",
        "currency": "GBP",
        "options": "{}",
        "is_active": "on",
        "new_credentials": "",
    }
    url = f"/admin/messaging/provideraccount/{account.pk}/change/"
    assert admin_client.post(url, form).status_code == 302
    assert ProviderAccount.objects.get().credentials == {"api_secret": "sk_live_xyz"}
    form["new_credentials"] = '{"api_secret": "rotated", "api_key": "bsms_live_k"}'
    assert admin_client.post(url, form).status_code == 302
    assert ProviderAccount.objects.get().credentials == {
        "api_secret": "rotated",
        "api_key": "bsms_live_k",
    }
    form["new_credentials"] = '{"api_key": null}'
    assert admin_client.post(url, form).status_code == 302
    assert ProviderAccount.objects.get().credentials == {"api_secret": "rotated"}
    form["new_credentials"] = "not json"
    assert "Not valid JSON" in admin_client.post(url, form).content.decode()
    form["new_credentials"] = '{"apisecret": "typo"}'
    page = admin_client.post(url, form).content.decode()
    assert "Unknown credential apisecret for bulksmsrates" in page
    assert "typo" not in page


def test_admin_refuses_a_sender_the_provider_cannot_use(admin_client: Client) -> None:
    form = {
        "name": "bwat",
        "backend": "bwatmesaj",
        "sender": "Herald Shop",
        "rate_limit": "5",
        "price_per_segment": "0.01",
        "currency": "GBP",
        "options": "{}",
        "is_active": "on",
        "new_credentials": '{"api_token": "13|x"}',
    }
    page = admin_client.post("/admin/messaging/provideraccount/add/", form).content.decode()
    assert "at most 11 letters and digits" in page
    assert not ProviderAccount.objects.exists()
    form["sender"] = "HeraldShop"
    assert admin_client.post("/admin/messaging/provideraccount/add/", form).status_code == 302


def test_heartbeat_summary_reports_never_ok_and_stale() -> None:
    assert WorkerHeartbeat.objects.summary()["status"] == "never_seen"
    WorkerHeartbeat.objects.beat()
    assert WorkerHeartbeat.objects.summary()["status"] == "ok"
    WorkerHeartbeat.objects.update(seen_at=timezone.now() - timedelta(hours=1))
    assert WorkerHeartbeat.objects.summary()["status"] == "stale"
