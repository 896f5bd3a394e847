"""The gateways' side of two-way messaging, over real HTTP against the fake gateway.

Bwatmesaj replies polled from its SMS list (cursor, page budget, faults), BulkSMSRates's
open WhatsApp conversations, free-text WhatsApp replies, its balance and its webhook
endpoints, and `manage.py provider webhooks`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from django.core.management import CommandError, call_command
from django.utils import timezone

from contacts.models import Channel
from messaging.backends.base import Balance
from messaging.backends.bulksmsrates import WEBHOOK_EVENTS, BulkSMSRatesBackend
from messaging.backends.bwatmesaj import BwatmesajBackend, is_inbound
from messaging.dispatch import send_claimed
from messaging.exceptions import AccountError, RecipientError, RetryableError
from messaging.http import REQUEST_RETRY
from messaging.inbound import Incoming, poll_account
from messaging.models import InboundMessage, Message, ProviderAccount
from messaging.webhooks.bulksmsrates import sign
from tests.conftest import phone
from tests.fakegateway import BULK_WEBHOOK_EVENTS, WHATSAPP_NUMBER, FakeGateway

pytestmark = pytest.mark.django_db
MakeAccount = Callable[..., ProviderAccount]
BULK_HEADERS = {"X-API-Key": "bsms_test_key", "X-API-Secret": "sk_test_secret"}
PUBLIC_URL = "https://herald.example.com"
ENDPOINT = f"{PUBLIC_URL}/webhooks/bulksmsrates/bulksmsrates/"
WRITES = ("POST", "PATCH", "DELETE")


def bwat(account: ProviderAccount) -> BwatmesajBackend:
    backend = account.get_backend()
    assert isinstance(backend, BwatmesajBackend)
    return backend


def bulk(account: ProviderAccount) -> BulkSMSRatesBackend:
    backend = account.get_backend()
    assert isinstance(backend, BulkSMSRatesBackend)
    return backend


def list_reads(gateway: FakeGateway) -> int:
    return sum(1 for r in gateway.requests if r.path.split("?")[0] == "/api/v3/sms")


# Bwatmesaj: replies polled from the SMS list


def test_only_inbound_entries_of_the_sms_list_become_replies(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bwatmesaj")
    sent = requests.post(
        f"{gateway.url}/api/v3/sms/send",
        json={"recipient": phone(1)[1:], "sender_id": "Herald", "type": "plain", "message": "Hi"},
        headers={"Authorization": "Bearer 13|testtoken", "Accept": "application/json"},
        timeout=5,
    )
    assert sent.status_code == 200
    uid = gateway.bwat_inbound(phone(1), "Stop please")
    found, cursor = bwat(account).fetch_inbound({}, page_budget=3)
    (reply,) = found
    assert reply == Incoming(
        channel=Channel.SMS,
        phone=phone(1),
        body="Stop please",
        provider_message_id=uid,
        to="447900000200",
        received_at=gateway.messages[uid].created_at,
    )
    assert set(cursor) == {"mark", "uids_at_mark"}


@pytest.mark.parametrize(
    ("entry", "inbound"),
    [
        ({"direction": "inbound"}, True),
        ({"direction": "Incoming"}, True),
        ({"message_direction": "received"}, True),
        ({"type": "inbound"}, True),
        ({"direction": "MO"}, True),
        ({"direction": "outbound"}, False),
        ({"type": "plain"}, False),
        ({}, False),  # says nothing: taken for one of ours, never a reply
    ],
)
def test_a_list_entry_is_inbound_only_when_a_direction_field_says_so(
    entry: dict[str, Any], inbound: bool
) -> None:
    assert is_inbound({"uid": "u1", "from": "447911200000", **entry}) is inbound


def test_nothing_is_fetched_twice_across_runs_even_within_one_second(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    backend = bwat(make_account("bwatmesaj"))
    moment = timezone.now().replace(microsecond=0)
    first = [gateway.bwat_inbound(phone(i), f"reply {i}", at=moment) for i in range(3)]
    found, cursor = backend.fetch_inbound({}, page_budget=5)
    assert [i.provider_message_id for i in found] == first[::-1]  # newest first
    assert backend.fetch_inbound(cursor, page_budget=5)[0] == []
    # Arriving in the mark's own second: new, though no later than the mark.
    late = gateway.bwat_inbound(phone(9), "me too", at=moment)
    found, cursor = backend.fetch_inbound(cursor, page_budget=5)
    assert [i.provider_message_id for i in found] == [late]
    assert backend.fetch_inbound(cursor, page_budget=5)[0] == []


def test_a_walk_stops_at_the_mark_without_reading_older_pages(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    backend = bwat(make_account("bwatmesaj"))
    start = timezone.now() - timedelta(hours=2)
    for i in range(60):
        gateway.bwat_inbound(phone(i), "old", at=start + timedelta(seconds=i))
    _, cursor = backend.fetch_inbound({}, page_budget=10)
    before = list_reads(gateway)
    new = gateway.bwat_inbound(phone(99), "new")
    found, _ = backend.fetch_inbound(cursor, page_budget=10)
    assert [i.provider_message_id for i in found] == [new]
    assert list_reads(gateway) - before == 1


def test_a_backlog_is_caught_up_over_several_runs_within_the_page_budget(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    backend = bwat(make_account("bwatmesaj"))
    start = timezone.now() - timedelta(hours=3)
    clock = iter(start + timedelta(seconds=i) for i in range(1000))
    expected = {gateway.bwat_inbound(phone(i), f"r{i}", at=next(clock)) for i in range(70)}
    fetched: list[str] = []
    cursor: dict[str, Any] = {}
    resumed = 0
    for run in range(10):
        before = list_reads(gateway)
        found, cursor = backend.fetch_inbound(json.loads(json.dumps(cursor)), page_budget=1)
        assert list_reads(gateway) - before == 1
        fetched += [i.provider_message_id for i in found]
        resumed += "resume_page" in cursor
        if run < 3:  # replies keep arriving while the backlog is walked
            expected |= {gateway.bwat_inbound(phone(200 + run), "new", at=next(clock))}
        if "resume_page" not in cursor and run >= 3:
            break
    found, cursor = backend.fetch_inbound(cursor, page_budget=5)
    fetched += [i.provider_message_id for i in found]
    assert resumed >= 2
    assert set(fetched) == expected  # nothing skipped ...
    assert backend.fetch_inbound(cursor, page_budget=5)[0] == []  # ... and then nothing again


def test_the_first_poll_goes_back_only_the_lookback(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    backend = bwat(make_account("bwatmesaj", inbound_lookback_days=1))
    gateway.bwat_inbound(phone(1), "last week", at=timezone.now() - timedelta(days=3))
    recent = gateway.bwat_inbound(phone(2), "today", at=timezone.now() - timedelta(hours=1))
    found, _ = backend.fetch_inbound({}, page_budget=5)
    assert [i.provider_message_id for i in found] == [recent]


def test_polled_replies_are_stored_once_across_runs(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bwatmesaj")
    for i in range(30):
        gateway.bwat_inbound(phone(i), f"Question {i}?")
    assert poll_account(account, page_budget=1) == 25
    # The cursor kept on the account resumes at page 2; a reply arriving meanwhile
    # pushes one already stored onto it, and that one is not stored again.
    gateway.bwat_inbound(phone(50), "Another?")
    account.refresh_from_db()
    assert poll_account(account, page_budget=1) == 5
    account.refresh_from_db()
    assert poll_account(account, page_budget=1) == 1
    account.refresh_from_db()
    assert poll_account(account, page_budget=1) == 0
    assert InboundMessage.objects.filter(provider_account=account).count() == 31
    ids = InboundMessage.objects.values_list("provider_message_id", flat=True)
    assert len(set(ids)) == 31


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"fault": "status", "status": 503}, RetryableError),
        ({"fault": "status", "status": 500}, RetryableError),
        ({"fault": "status", "status": 429, "headers": {"Retry-After": "0"}}, RetryableError),
        ({"fault": "drop", "times": 1}, RetryableError),
        ({"fault": "status", "status": 401, "times": 1}, AccountError),
    ],
)
def test_a_failed_read_raises_and_the_old_cursor_loses_nothing(
    make_account: MakeAccount,
    gateway: FakeGateway,
    fault: dict[str, Any],
    error: type[Exception],
) -> None:
    backend = bwat(make_account("bwatmesaj"))
    uid = gateway.bwat_inbound(phone(1), "STOP")
    _, cursor = backend.fetch_inbound({}, page_budget=2)
    newer = gateway.bwat_inbound(phone(2), "Arrêt")
    # A lookup is asked again within the request (REQUEST_RETRY) before it gives up.
    gateway.inject("/api/v3/sms", **{"times": REQUEST_RETRY.attempts, **fault})
    with pytest.raises(error):
        backend.fetch_inbound(cursor, page_budget=2)
    found, _ = backend.fetch_inbound(cursor, page_budget=2)
    assert [i.provider_message_id for i in found] == [newer]
    assert uid != newer


def test_a_429_that_clears_within_the_request_is_waited_out(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    backend = bwat(make_account("bwatmesaj"))
    uid = gateway.bwat_inbound(phone(1), "STOP")
    gateway.inject("/api/v3/sms", "status", status=429, headers={"Retry-After": "0"})
    found, _ = backend.fetch_inbound({}, page_budget=2)
    assert [i.provider_message_id for i in found] == [uid]


def test_a_refused_token_is_an_account_error(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    backend = bwat(make_account("bwatmesaj"))
    gateway.bwat_tokens.clear()
    with pytest.raises(AccountError, match="Unauthenticated"):
        backend.fetch_inbound({}, page_budget=2)


def test_a_cursor_that_is_not_ours_starts_afresh(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    backend = bwat(make_account("bwatmesaj"))
    uid = gateway.bwat_inbound(phone(1), "hi")
    found, _ = backend.fetch_inbound({"mark": "yesterday", "resume_page": "x"}, page_budget=2)
    assert [i.provider_message_id for i in found] == [uid]


def test_only_bwatmesaj_is_polled(make_account: MakeAccount) -> None:
    assert bwat(make_account("bwatmesaj")).supports_inbound_polling
    assert not bulk(make_account("bulksmsrates")).supports_inbound_polling
    with pytest.raises(NotImplementedError):
        make_account("buzzbip").get_backend().fetch_inbound({}, 1)


# BulkSMSRates: conversations, free text, balance, signed events


def test_open_conversations_are_those_written_in_within_24_hours(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    backend = bulk(make_account("bulksmsrates"))
    assert backend.open_conversations() == set()
    gateway.whatsapp_inbound(phone(1), "Hi")
    gateway.whatsapp_inbound(phone(2), "Old", at=datetime.now(UTC) - timedelta(hours=25))
    assert backend.open_conversations() == {phone(1)}
    gateway.close_conversation(phone(1))
    assert backend.open_conversations() == set()
    assert make_account("buzzbip").get_backend().open_conversations() is None


def test_open_conversations_follow_the_cursor_across_pages(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    backend = bulk(make_account("bulksmsrates"))
    numbers = {phone(i) for i in range(501)}
    for number in numbers:
        gateway.whatsapp_inbound(number, "Hi")
    assert backend.open_conversations() == numbers
    assert gateway.count("bulksmsrates", "/v1/whatsapp/conversations") == 2


def send_reply(account: ProviderAccount, to: str, body: str, **fields: Any) -> Message:
    message = Message.objects.create(
        provider_account=account,
        channel=Channel.WHATSAPP,
        phone=to,
        sender=account.sender,
        body=body,
        client_ref=Message.new_client_ref(),
        **fields,
    )
    send_claimed(Message.objects.filter(pk=message.pk).claim(1))
    message.refresh_from_db()
    return message


def test_a_campaign_whatsapp_message_still_needs_its_template(
    make_account: MakeAccount, make_campaign: Callable[..., Any], gateway: FakeGateway
) -> None:
    account = make_account("bulksmsrates")
    gateway.whatsapp_inbound(phone(6), "Hi")
    message = Message.objects.create(
        provider_account=account,
        campaign=make_campaign(account),
        channel=Channel.WHATSAPP,
        phone=phone(6),
        body="Spring sale",
        client_ref=Message.new_client_ref(),
    )
    error = send_claimed(Message.objects.filter(pk=message.pk).claim(1))
    assert isinstance(error, AccountError) and error.code == "NO_TEMPLATE"
    message.refresh_from_db()
    assert message.status == Message.Status.PENDING  # the campaign pauses; nothing fails
    assert gateway.count("bulksmsrates", "/v1/whatsapp/send") == 0


def test_a_whatsapp_reply_inside_the_window_goes_as_free_text(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bulksmsrates")
    gateway.whatsapp_inbound(phone(3), "Is the shop open on Sunday?")
    message = send_reply(account, phone(3), "Yes, 10 to 4.")
    assert message.status == Message.Status.SENT
    (request,) = [r for r in gateway.requests if r.path == "/v1/whatsapp/send"]
    assert request.json == {"to": phone(3), "type": "text", "text": {"body": "Yes, 10 to 4."}}
    sent = gateway.messages[message.provider_message_id]
    assert (sent.channel, sent.body) == ("whatsapp", "Yes, 10 to 4.")


def test_a_whatsapp_reply_outside_the_window_fails_saying_to_use_a_template(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bulksmsrates")
    gateway.whatsapp_inbound(phone(4), "Hi", at=datetime.now(UTC) - timedelta(hours=30))
    message = send_reply(account, phone(4), "Hello again")
    assert message.status == Message.Status.FAILED
    assert message.error_code == "OUTSIDE_CONVERSATION_WINDOW"
    assert "approved template" in message.error_message
    assert not gateway.messages


def test_the_window_refusal_is_a_recipient_error(make_account: MakeAccount) -> None:
    backend = bulk(make_account("bulksmsrates"))
    message = Message(phone=phone(5), channel=Channel.WHATSAPP, body="Hi", client_ref="r")
    (result,) = backend.send_messages_singly(message)
    assert isinstance(result.error, RecipientError)
    assert result.error.code == "OUTSIDE_CONVERSATION_WINDOW"


def test_balance_reads_the_wallet_and_follows_a_top_up(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    backend = bulk(make_account("bulksmsrates"))
    gateway.bulk_balance = 120
    balance = backend.balance()
    assert balance == Balance(available=120, currency="GBP", low_threshold=500)
    assert balance is not None and balance.is_low
    assert gateway.bulk_top_up(5_000) == 5_120
    topped_up = backend.balance()
    assert topped_up is not None and topped_up.available == 5_120 and not topped_up.is_low
    assert make_account("bwatmesaj").get_backend().balance() is None


def test_balance_with_wrong_keys_is_an_account_error(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bulksmsrates")
    account.set_credentials({"api_key": "bsms_test_key", "api_secret": "wrong"})
    account.save()
    with pytest.raises(AccountError, match="UNAUTHORIZED"):
        bulk(account).balance()


@pytest.mark.parametrize(
    ("event", "data"),
    [
        ("opt_out", {"from": phone(1), "to": "Herald", "message_id": "m1", "text": "STOP"}),
        ("campaign.completed", {"campaign_id": "c-1", "status": "completed"}),
        ("campaign.failed", {"campaign_id": "c-1", "status": "failed", "error": "x"}),
    ],
)
def test_any_event_is_signed_in_the_dlr_envelope(
    gateway: FakeGateway, event: str, data: dict[str, Any]
) -> None:
    body, headers = gateway.event_request(event, data, secret="whsec_x", timestamp=1708257603)
    assert headers["X-Webhook-Signature"] == sign("whsec_x", "1708257603", body)
    payload = json.loads(body)
    assert set(payload) == {"id", "event", "created_at", "data"}
    assert (payload["event"], payload["data"], payload["created_at"]) == (
        event,
        data,
        "2024-02-18T12:00:03Z",
    )


def test_whatsapp_inbound_and_balance_low_events_carry_the_documented_fields(
    gateway: FakeGateway,
) -> None:
    data = gateway.whatsapp_inbound(phone(1), "¿Abren el domingo? 🙂")
    assert {k: data[k] for k in ("from", "to", "text")} == {
        "from": phone(1),
        "to": WHATSAPP_NUMBER,
        "text": "¿Abren el domingo? 🙂",
    }
    assert data["message_id"].startswith("wamid.")
    gateway.bulk_balance = 300
    assert gateway.balance_low_data() == {
        "balance": 300,
        "available": 300,
        "currency": "GBP",
        "low_balance_threshold": 500,
    }
    body, _ = gateway.event_request("whatsapp.message", data, secret="s")
    assert json.loads(body)["data"]["text"] == "¿Abren el domingo? 🙂"


# BulkSMSRates: webhook endpoints at the fake


def test_the_fake_refuses_bad_webhooks_in_the_providers_error_shape(gateway: FakeGateway) -> None:
    url = f"{gateway.url}/v1/settings/webhooks"
    bad = requests.post(
        url, json={"url": "ftp://x", "events": ["sms.sent"]}, headers=BULK_HEADERS, timeout=5
    )
    assert bad.status_code == 400
    error = bad.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert set(error["details"]) == {"url", "events"}
    good = {"url": ENDPOINT, "events": ["dlr"]}
    created = requests.post(url, json=good, headers=BULK_HEADERS, timeout=5)
    assert created.status_code == 201 and created.json()["data"]["secret"].startswith("whsec_")
    again = requests.post(url, json=good, headers=BULK_HEADERS, timeout=5)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "CONFLICT")
    missing = requests.patch(f"{url}/wh_nope", json={}, headers=BULK_HEADERS, timeout=5)
    assert missing.status_code == 404
    listed = requests.get(url, headers=BULK_HEADERS, timeout=5).json()
    assert "secret" not in listed["data"][0] and listed["pagination"]["total"] == 1


def test_the_backend_lists_creates_updates_and_deletes_webhooks(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    backend = bulk(make_account("bulksmsrates"))
    assert backend.webhooks() == []
    webhook, secret = backend.register_webhook(ENDPOINT, ["dlr", "opt_out"])
    assert secret == gateway.bulk_webhooks[webhook.id].secret
    assert backend.webhooks() == [webhook]
    updated = backend.update_webhook(webhook.id, events=WEBHOOK_EVENTS, active=False)
    assert (updated.events, updated.active) == (WEBHOOK_EVENTS, False)
    backend.delete_webhook(webhook.id)
    assert backend.webhooks() == [] and gateway.bulk_webhooks == {}
    with pytest.raises(RecipientError, match="VALIDATION_ERROR"):
        backend.register_webhook("not a url", ["dlr"])


# manage.py provider webhooks


def webhooks(*args: str) -> str:
    out = io.StringIO()
    call_command("provider", "webhooks", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def writes(gateway: FakeGateway) -> int:
    return gateway.count("bulksmsrates", "/v1/settings/webhooks", methods=WRITES)


def test_webhooks_registers_every_event_and_stores_the_secret_unprinted(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bulksmsrates")
    output = webhooks("bulksmsrates", "--public-url", PUBLIC_URL + "/")
    (registered,) = gateway.bulk_webhooks.values()
    assert (registered.url, registered.active) == (ENDPOINT, True)
    assert tuple(registered.events) == WEBHOOK_EVENTS == BULK_WEBHOOK_EVENTS
    account.refresh_from_db()
    assert account.credentials["webhook_secret"] == registered.secret
    assert account.credentials["api_key"] == "bsms_test_key"  # the others are kept
    assert output.startswith(f"created {ENDPOINT}")
    assert registered.secret not in output


def test_webhooks_run_twice_changes_nothing(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bulksmsrates")
    webhooks("bulksmsrates", "--public-url", PUBLIC_URL)
    account.refresh_from_db()
    stored = account.credentials
    before = writes(gateway)
    output = webhooks("bulksmsrates", "--public-url", PUBLIC_URL)
    assert output.startswith(f"unchanged: {ENDPOINT}")
    assert writes(gateway) == before == 1
    account.refresh_from_db()
    assert account.credentials == stored


def test_webhooks_updates_an_endpoint_missing_events_or_switched_off(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bulksmsrates")  # holds webhook_secret "whsec_test"
    webhook, _ = bulk(account).register_webhook(ENDPOINT, ["dlr"])
    gateway.bulk_webhooks[webhook.id].active = False  # e.g. after three failed deliveries
    output = webhooks("bulksmsrates", "--public-url", PUBLIC_URL)
    assert output.startswith(f"updated {ENDPOINT} ({webhook.id})")
    assert tuple(gateway.bulk_webhooks[webhook.id].events) == WEBHOOK_EVENTS
    assert gateway.bulk_webhooks[webhook.id].active
    patches = gateway.count("bulksmsrates", "/v1/settings/webhooks/", methods=["PATCH"])
    assert patches == 1
    account.refresh_from_db()
    assert account.credentials["webhook_secret"] == "whsec_test"
    assert webhooks("bulksmsrates", "--public-url", PUBLIC_URL).startswith("unchanged")


def test_webhooks_recreates_an_endpoint_whose_secret_we_do_not_hold(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bulksmsrates")
    old, _ = bulk(account).register_webhook(ENDPOINT, list(WEBHOOK_EVENTS))
    account.set_credentials({"api_key": "bsms_test_key", "api_secret": "sk_test_secret"})
    account.save()
    output = webhooks("bulksmsrates", "--public-url", PUBLIC_URL)
    assert output.startswith("recreated") and "deleted and made again" in output
    (new,) = gateway.bulk_webhooks.values()
    assert new.id != old.id
    account.refresh_from_db()
    assert account.credentials["webhook_secret"] == new.secret
    assert new.secret not in output


def test_webhooks_is_for_bulksmsrates_accounts_only(make_account: MakeAccount) -> None:
    make_account("bwatmesaj")
    with pytest.raises(CommandError, match="only BulkSMSRates accounts register webhooks"):
        webhooks("bwatmesaj", "--public-url", PUBLIC_URL)


@pytest.mark.parametrize(
    "url", ["herald.example.com", "ftp://herald.example.com", "/webhooks", "https://h.com/?a=1"]
)
def test_webhooks_wants_an_absolute_http_url(
    make_account: MakeAccount, gateway: FakeGateway, url: str
) -> None:
    make_account("bulksmsrates")
    with pytest.raises(CommandError, match="--public-url"):
        webhooks("bulksmsrates", "--public-url", url)
    assert gateway.count("bulksmsrates") == 0


def test_webhooks_reports_the_providers_refusal(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bulksmsrates")
    account.set_credentials({"api_key": "bsms_test_key", "api_secret": "wrong"})
    account.save()
    with pytest.raises(CommandError, match="bulksmsrates: UNAUTHORIZED"):
        webhooks("bulksmsrates", "--public-url", PUBLIC_URL)
    gateway.inject("/v1/settings/webhooks", "status", status=503, times=10)
    account.set_credentials({"api_key": "bsms_test_key", "api_secret": "sk_test_secret"})
    account.save()
    with pytest.raises(CommandError, match="SERVICE_UNAVAILABLE"):
        webhooks("bulksmsrates", "--public-url", PUBLIC_URL)


def test_webhooks_of_an_unknown_account_is_an_error() -> None:
    with pytest.raises(CommandError, match="no provider account named 'ghost'"):
        webhooks("ghost", "--public-url", PUBLIC_URL)
