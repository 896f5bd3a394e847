"""Replies through BulkSMSRates's signed webhook, fuzzed like delivery reports.

`whatsapp.message` and `opt_out` events go through the real URL (Django's test client,
and a live server for real sockets): whatever the data, no 500; nothing changes without
a valid signature; a reply is stored once however often it comes (same webhook id, same
event id, same message id under a new event id); bodies of any size and script are kept
safely, cut to HERALD_INBOUND_BODY_MAX_CHARS and marked so; numbers and bodies never
reach the logs. Each hypothesis example runs in a savepoint that is rolled back.
"""

import json
import logging
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from contacts.models import Channel, Contact, OptOut
from messaging.models import InboundMessage, Message, ProviderAccount, WebhookEvent
from tests.conftest import phone
from tests.security.test_fuzz_webhooks import changed_tables, rolled_back, sign, snapshot

SECRET = "whsec_inbound"
URL = "/webhooks/bulksmsrates/brates/"
MAX_BODY = 256 * 1024
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: What a verified reply may write: its record, the reply, an opt-out with its audit entry,
#: and a HELP answer queued as a Message.
MAY_CHANGE = {
    WebhookEvent._meta.label,
    InboundMessage._meta.label,
    OptOut._meta.label,
    AuditEvent._meta.label,
    Message._meta.label,
}
#: A sender whose number and words the log must never show, in any of its spellings.
SECRET_SENDER = phone(7)
SECRET_WORDS = "meet me at the old mill 4471"


@pytest.fixture
def world(db: Any) -> ProviderAccount:
    account = ProviderAccount(name="brates", backend=ProviderAccount.Backend.BULKSMSRATES)
    account.set_credentials({"api_key": "k", "api_secret": "s", "webhook_secret": SECRET})
    account.save()
    for i in range(4):
        Contact.objects.create(phone=phone(i), first_name=f"Name{i}")
    Contact.objects.create(phone=SECRET_SENDER, first_name="Quiet")
    Message.objects.create(
        provider_account=account,
        contact=Contact.objects.get(phone=phone(0)),
        phone=phone(0),
        body="Spring sale",
        client_ref="ref-1",
        status=Message.Status.SENT,
        sent_at=timezone.now(),
    )
    return account


def envelope(event: Any, data: Any, event_id: Any = None) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()) if event_id is None else event_id,
        "event": event,
        "created_at": "2026-02-18T12:00:03Z",
        "data": data,
    }


def encode(payload: Any) -> bytes:
    """JSON as a provider may send it: UTF-8, or ASCII escapes where UTF-8 cannot carry it."""
    try:
        return json.dumps(payload, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate: only an escape can carry it
        return json.dumps(payload).encode()


def signed_headers(body: bytes, webhook_id: str = "", secret: str = SECRET) -> dict[str, Any]:
    ts = str(int(time.time()))
    return {
        "HTTP_X_WEBHOOK_SIGNATURE": sign(secret, ts, body),
        "HTTP_X_WEBHOOK_TIMESTAMP": ts,
        "HTTP_X_WEBHOOK_ID": webhook_id or f"wh_{uuid.uuid4().hex}",
    }


def post(client: Client, payload: Any = None, *, body: bytes | None = None, **headers: Any) -> Any:
    raw = encode(payload) if body is None else body
    signing = signed_headers(raw, headers.pop("webhook_id", ""), headers.pop("secret", SECRET))
    return client.post(URL, raw, content_type="application/json", **{**signing, **headers})


def reply(text: Any, sender: Any = None, message_id: Any = None, **data: Any) -> dict[str, Any]:
    """A whatsapp.message event's data, as our reading of the docs expects it."""
    return {
        "from": phone(1) if sender is None else sender,
        "to": "+447700900123",
        "message_id": message_id or f"wamid.{uuid.uuid4().hex}",
        "text": text,
        **data,
    }


# Strategies.

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
senders = st.sampled_from(
    [phone(0), phone(1), phone(2), phone(0)[1:], "07911200003", "12", "+0", "", "Herald", "x" * 64]
)
message_ids = st.sampled_from(["wamid.1", "wamid.2", "", " ", "m" * 150, "m" * 151, "m\x00"])
any_text = st.text(max_size=300) | st.text(st.characters(codec="utf-8"), min_size=1, max_size=50)
words = st.sampled_from(
    ["STOP", "Stop!", " stop please", "Arrêt", "退订", "START", "HELP", "don't stop", "🙂", ""]
)
times = st.sampled_from(["2026-02-18T12:00:03Z", "0001-01-01T00:00:00+05:00", "soon", ""])


@st.composite
def inbound_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """whatsapp.message / opt_out events shaped like the provider's, any field garbage."""
    text = draw(words | any_text | json_values | st.builds(lambda t: {"body": t}, any_text))
    data: dict[str, Any] = {
        "from": draw(senders | json_values),
        "to": draw(st.sampled_from(["+447700900123", "Herald", ""]) | json_values),
        "message_id": draw(message_ids | json_values),
        draw(st.sampled_from(["text", "body"])): text,
        "received_at": draw(times | json_values),
        "destination": draw(senders | json_values),
    }
    keep = draw(st.sets(st.sampled_from(sorted(data))))
    payload = envelope(
        draw(st.sampled_from(["whatsapp.message", "opt_out"]) | json_values),
        {k: v for k, v in data.items() if k in keep},
        event_id=draw(st.sampled_from(["evt-1", "evt-2", "e" * 151]) | json_values),
    )
    if draw(st.integers(0, 9)) == 0:
        payload["data"] = draw(json_values)
    return payload


# Any shape of data: never a 500, and a verified event changes only what a reply may.


@FUZZ
@given(payloads=st.lists(inbound_payloads(), min_size=1, max_size=3))
@example(payloads=[envelope("whatsapp.message", reply("STOP", phone(2)))] * 2)
@example(payloads=[envelope("opt_out", {"from": phone(3), "text": "HELP"})])
def test_any_signed_reply_is_answered_without_a_500_and_changes_only_what_a_reply_may(
    world: ProviderAccount, payloads: list[dict[str, Any]]
) -> None:
    client = Client()

    def check() -> None:
        for payload in payloads:
            before = snapshot()
            response = post(client, payload)
            after = snapshot()
            assert response.status_code in (200, 400), response.content[:200]
            changed = changed_tables(before, after)
            if response.status_code == 400:  # JSON no database can store (NUL, surrogates)
                assert changed == set()
                continue
            assert response.json()["status"] in ("ok", "duplicate")
            assert changed <= MAY_CHANGE
            for model in (WebhookEvent, InboundMessage, Message):
                assert_only_appended(before, after, model, at_most=1)
            assert len(after[OptOut._meta.label]) - len(before[OptOut._meta.label]) <= 2

    rolled_back(check)


# No valid signature, no change.

DEFECTS = ("wrong secret", "body changed", "stale", "no signature", "another account")


@FUZZ
@given(payload=inbound_payloads(), defect=st.sampled_from(DEFECTS))
@example(payload=envelope("opt_out", {"from": phone(2), "text": "STOP"}), defect="wrong secret")
@example(payload=envelope("whatsapp.message", reply("STOP", phone(2))), defect="body changed")
def test_a_reply_without_a_valid_signature_is_refused_and_changes_nothing(
    world: ProviderAccount, payload: dict[str, Any], defect: str
) -> None:
    client = Client()
    body = encode(payload)
    headers = signed_headers(body)
    if defect == "wrong secret":
        headers = signed_headers(body, secret="whsec_guess")
    elif defect == "body changed":
        headers = signed_headers(body + b" ")
    elif defect == "stale":
        ts = str(int(time.time()) - 301)
        headers["HTTP_X_WEBHOOK_TIMESTAMP"] = ts
        headers["HTTP_X_WEBHOOK_SIGNATURE"] = sign(SECRET, ts, body)
    elif defect == "no signature":
        del headers["HTTP_X_WEBHOOK_SIGNATURE"]
    url = "/webhooks/bulksmsrates/brates-eu/" if defect == "another account" else URL

    def check() -> None:
        before = snapshot()
        response = client.post(url, body, content_type="application/json", **headers)
        assert 400 <= response.status_code < 500
        assert changed_tables(before, snapshot()) == set()

    rolled_back(check)


# Stored once, however often it comes.


def test_a_reply_retried_under_the_same_webhook_id_is_stored_once(
    world: ProviderAccount, client: Client
) -> None:
    payload = envelope("whatsapp.message", reply("STOP"))
    assert post(client, payload, webhook_id="wh_1").json()["status"] == "ok"
    assert post(client, payload, webhook_id="wh_1").json() == {"status": "duplicate"}
    assert InboundMessage.objects.count() == 1
    assert OptOut.objects.count() == 1


def test_the_same_event_signed_again_under_a_new_webhook_id_is_stored_once(
    world: ProviderAccount, client: Client
) -> None:
    payload = envelope("opt_out", {"from": phone(2), "text": "Stop", "message_id": "sms-9"})
    post(client, payload, webhook_id="wh_1")
    assert post(client, payload, webhook_id="wh_2").json() == {"status": "duplicate"}
    assert InboundMessage.objects.count() == 1
    assert OptOut.objects.filter(phone=phone(2)).count() == 1


def test_the_same_message_under_a_new_event_id_is_recognised_by_its_message_id(
    world: ProviderAccount, client: Client
) -> None:
    data = reply("HELP", phone(2), message_id="wamid.same")
    first = post(client, envelope("whatsapp.message", data))
    again = post(client, envelope("whatsapp.message", {**data, "text": "HELP!"}))
    first_id = InboundMessage.objects.get().pk
    assert first.json()["outcome"] == f"reply {first_id}: help"
    assert again.json() == {"status": "ok", "outcome": f"reply {first_id} already stored"}
    assert Message.objects.filter(in_reply_to__isnull=False).count() == 1  # one HELP answer
    assert WebhookEvent.objects.count() == 2


@FUZZ
@given(
    sends=st.lists(
        st.tuples(
            st.sampled_from(["wamid.a", "wamid.b", "wamid.c"]),
            st.sampled_from(["evt-1", "evt-2", "evt-3", "evt-4"]),
            st.sampled_from(["wh-1", "wh-2", "wh-3"]),
            st.sampled_from(["STOP", "hello", "HELP", "START"]),
            st.sampled_from(["whatsapp.message", "opt_out"]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_however_replies_are_repeated_each_message_id_is_stored_once(
    world: ProviderAccount, sends: list[tuple[str, str, str, str, str]]
) -> None:
    client = Client()

    def check() -> None:
        seen: set[str] = set()
        for message_id, event_id, webhook_id, text, event in sends:
            data = reply(text, phone(2), message_id=message_id)
            answer = post(client, envelope(event, data, event_id), webhook_id=webhook_id)
            assert answer.status_code == 200
            if answer.json()["status"] == "ok":
                seen.add(message_id)
        stored = list(InboundMessage.objects.values_list("provider_message_id", flat=True))
        assert sorted(stored) == sorted(seen)
        assert len(set(stored)) == len(stored)
        assert OptOut.objects.filter(phone=phone(2)).count() <= len(Channel.values)

    rolled_back(check)


# Bodies of any size and script.


@pytest.mark.parametrize(
    "text",
    [
        "Merci 🙂👍🏽 — 👨‍👩‍👧‍👦",
        "مرحبا، أرجو التوقف",  # RTL
        "שלום\u200f עצור",
        "请不要再发了\uff0c谢谢",  # a full-width comma
        "ストップ",
        "e\u0301\u0301\u0301 zalgo",
        "\u202eevil override\u202c",
        "tab\tand\nnew\r\nlines",
        "\ufeffBOM first",
        "\U0001d54a\U0001d565\U0001d560\U0001d561",  # double-struck letters
    ],
)
def test_a_body_in_any_script_is_stored_as_written(
    world: ProviderAccount, client: Client, text: str
) -> None:
    response = post(client, envelope("whatsapp.message", reply(text)))
    assert response.status_code == 200
    stored = InboundMessage.objects.get()
    assert (stored.body, stored.body_truncated) == (text, False)


@pytest.mark.parametrize(
    ("text", "kept"),
    [("a\x00b", "ab"), ("\x00", ""), ("bad \ud800 half", "bad \ufffd half"), ("\udfff", "\ufffd")],
)
def test_a_body_no_database_can_store_is_cleaned_and_kept(
    world: ProviderAccount, client: Client, text: str, kept: str
) -> None:
    """NUL goes and a lone surrogate becomes U+FFFD (messaging.webhooks.base.storable_json):
    a verified event is never refused for its text, or the provider would switch the
    account's webhook off after three tries."""
    response = post(client, envelope("whatsapp.message", reply(text)))
    assert response.status_code == 200
    assert InboundMessage.objects.get().body == kept
    assert WebhookEvent.objects.count() == 1


def test_a_body_over_256_kb_is_refused_as_too_large(world: ProviderAccount, client: Client) -> None:
    text = "x" * (300 * 1024)
    response = post(client, envelope("whatsapp.message", reply(text)))
    assert response.status_code == 413
    assert not InboundMessage.objects.exists()


def test_a_long_body_is_stored_cut_to_the_limit_and_marked_so(
    world: ProviderAccount, client: Client
) -> None:
    limit = django_settings.HERALD_INBOUND_BODY_MAX_CHARS
    text = "".join(chr(0x4E00 + i % 500) for i in range(10_000))  # CJK: 3 bytes each
    response = post(client, envelope("whatsapp.message", reply(text)))
    assert response.status_code == 200
    stored = InboundMessage.objects.get()
    assert (stored.body, stored.body_truncated) == (text[:limit], True)
    assert len(stored.body) == limit < 10_000


@FUZZ
@given(text=st.text(max_size=6000) | st.text(st.characters(codec="utf-8"), max_size=60))
@example(text="🙂" * 5000)
@example(text="\x00" * 10)
def test_any_text_is_stored_exactly_up_to_the_limit_made_storable(
    world: ProviderAccount, text: str
) -> None:
    client = Client()

    def check() -> None:
        response = post(client, envelope("whatsapp.message", reply(text, phone(3))))
        assert response.status_code == 200
        stored = InboundMessage.objects.filter(phone=phone(3)).first()
        assert stored is not None
        kept = "".join(
            "\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text.replace("\x00", "")
        )
        limit = django_settings.HERALD_INBOUND_BODY_MAX_CHARS
        assert (stored.body, stored.body_truncated) == (kept[:limit], len(kept) > limit)

    rolled_back(check)


# Nothing personal in the logs.


def test_numbers_and_bodies_never_reach_the_logs(
    world: ProviderAccount, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    spellings = [SECRET_SENDER, SECRET_SENDER[1:], "0" + SECRET_SENDER[3:]]
    for sender in spellings:
        for event in ("whatsapp.message", "opt_out"):
            for text in (SECRET_WORDS, "STOP " + SECRET_WORDS, "HELP", "please stop texting me"):
                data = reply(text, sender, destination=sender)
                assert post(client, envelope(event, data)).status_code == 200
    payload = envelope("whatsapp.message", reply(SECRET_WORDS, SECRET_SENDER, "wamid.dup"))
    post(client, payload, webhook_id="wh_dup")
    post(client, payload, webhook_id="wh_dup")  # the duplicate's log line too
    post(client, payload, secret="whsec_guess")  # and a refusal's

    assert InboundMessage.objects.filter(phone=SECRET_SENDER).exists()
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in [*spellings, SECRET_SENDER[-9:], SECRET_WORDS, "texting me"]:
        assert secret not in logged
    outcomes = " ".join(WebhookEvent.objects.values_list("outcome", flat=True))
    assert SECRET_SENDER not in outcomes and SECRET_WORDS not in outcomes


@FUZZ
@given(text=st.text(min_size=12, max_size=200).filter(lambda t: t.strip() == t and t.isprintable()))
def test_no_body_of_any_kind_is_logged(
    world: ProviderAccount, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    client = Client()
    caplog.set_level(logging.DEBUG)
    caplog.clear()

    # A mark no log line of ours has: a random text may otherwise be a piece of one
    # ("ted out by r" of "opted out by reply").
    body = "¤" + text

    def check() -> None:
        for event in ("whatsapp.message", "opt_out"):
            post(client, envelope(event, reply(body, SECRET_SENDER)))
        assert body not in caplog.text and "¤" not in caplog.text

    rolled_back(check)


# The same over real sockets, concurrently: a reply racing its own retry is stored once.


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_copies_of_one_reply_arriving_at_once_over_http_are_stored_once(
    world: ProviderAccount, live_server: Any
) -> None:
    data = reply("STOP", phone(2), message_id="wamid.race")
    bodies = [encode(envelope("whatsapp.message", data)) for _ in range(6)]

    def send(body: bytes) -> int:
        headers = {
            key[5:].replace("_", "-").title(): value for key, value in signed_headers(body).items()
        }
        headers["Content-Type"] = "application/json"
        return requests.post(
            live_server.url + URL, data=body, headers=headers, timeout=30
        ).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(send, bodies))

    assert Counter(statuses) == Counter({200: 6})
    assert InboundMessage.objects.filter(provider_message_id="wamid.race").count() == 1
    assert OptOut.objects.filter(phone=phone(2)).count() == 1


def assert_only_appended(
    before: dict[str, list[Any]], after: dict[str, list[Any]], model: Any, at_most: int
) -> None:
    old, new = before[model._meta.label], after[model._meta.label]
    assert new[: len(old)] == old, f"{model.__name__} rows changed or deleted"
    assert len(new) - len(old) <= at_most, model.__name__
