"""Hypothesis against the signed webhook endpoints: no 500s, no change without a valid signature.

Every example runs inside a savepoint that is rolled back, so each starts from the same
accounts and messages. The whole database (every model the app registry knows) is
compared before and after each request.
"""

import hashlib
import hmac
import http.client
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from audit.models import AuditEvent
from contacts.models import Channel, OptOut
from messaging.models import InboundMessage, Message, ProviderAccount, StatusEvent, WebhookEvent
from tests.conftest import phone

M = Message.Status
SECRETS = {"brates": "whsec_fuzz", "brates-eu": "whsec_other"}
ACCOUNTS = [*SECRETS, "bare", "mem", "nobody", "Brates", "brates%00", "x" * 300]
MAX_BODY = 256 * 1024
FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

Snapshot = dict[str, list[tuple[Any, ...]]]


def snapshot() -> Snapshot:
    """Every row of every table the app registry knows (many-to-many ones too), by key.

    Plain SQL: through the ORM, taking it twice per request would be most of the run.
    """
    tables = {}
    with connection.cursor() as cursor:
        for model in apps.get_models(include_auto_created=True):
            if not model._meta.managed or model._meta.proxy:
                continue
            table, key = model._meta.db_table, str(model._meta.pk.column)
            quote = connection.ops.quote_name
            cursor.execute(f"SELECT * FROM {quote(table)} ORDER BY {quote(key)}")  # noqa: S608
            tables[model._meta.label] = cursor.fetchall()
    return tables


def changed_tables(before: Snapshot, after: Snapshot) -> set[str]:
    return {label for label in before if before[label] != after[label]}


def write_summary(name: str, counts: Counter[str]) -> None:
    """The run's numbers, for the closing note: tests/artefacts/fuzz-<name>.json."""
    path = Path(__file__).parents[1] / "artefacts" / f"fuzz-{name}.json"
    path.parent.mkdir(exist_ok=True)
    summary = {"500s": 0, "crashes": 0, **counts}
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"\nfuzz-{name}: {json.dumps(summary, sort_keys=True)}")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature as the provider's documentation defines it (not our code's copy)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


@dataclass
class Hook:
    """One request to the webhook URL, headers as the WSGI environ names them."""

    account: str
    body: bytes
    method: str = "POST"
    headers: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"/webhooks/bulksmsrates/{self.account}/"

    def is_authentic(self) -> bool:
        """Would the provider's contract call this a valid, signed delivery?"""
        secret = SECRETS.get(self.account)
        ts = self.headers.get("HTTP_X_WEBHOOK_TIMESTAMP", "")
        return bool(
            secret
            and self.method == "POST"
            and ts.isascii()
            and ts.isdigit()
            and abs(time.time() - int(ts)) <= 300
            and self.headers.get("HTTP_X_WEBHOOK_ID")
            and self.headers.get("HTTP_X_WEBHOOK_SIGNATURE") == sign(secret, ts, self.body)
        )


# Strategies.

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)
# JSON that parses in Python but that a database may refuse or choke on.
NASTY_JSON = [
    b'{"event": "message.delivered", "data": {"message_id": NaN}}',
    b'{"event": "opt_out", "data": {"phone": Infinity}}',
    b'{"event": "message.sent", "created_at": 1e999, "data": {}}',
    b'{"event": "\\ud800", "data": {}}',
    b'{"event": "message.delivered", "data": {"message_id": "msg-1", "x": "\\udfff"}}',
    b'{"\\ud83d": 1, "event": "opt_out", "data": {"phone": "+447911200003"}}',
    b'{"event": "opt_out", "data": {"phone": "\\u0000"}}',
    b'{"event": "message.sent", "data": {"message_id": "msg-1"}, "event": "opt_out"}',
    b'{"event": "message.delivered", "data": {"message_id": ' + b"9" * 5000 + b"}}",
    b"[" * 50_000 + b"]" * 50_000,
    b'{"a":' * 40 + b"1" + b"}" * 40,
    '{"event": "opt_out", "data": {"phone": "+447911200003"}}'.encode("utf-16"),
    b"\xef\xbb\xbf{}",
]


def oversized() -> st.SearchStrategy[bytes]:
    sizes = st.sampled_from([MAX_BODY - 1, MAX_BODY, MAX_BODY + 1, 4 * MAX_BODY])
    return sizes.map(lambda n: b'{"p": "' + b"x" * max(n - 9, 0) + b'"}')


message_ids = st.sampled_from(["msg-1", "msg-2", "msg-eu", "per-recipient", "", "x" * 150])
phones = st.sampled_from([phone(0), phone(1), phone(3), "12", "+0", "", "+" + "9" * 40])
times = st.sampled_from(
    ["2026-02-18T12:00:03Z", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-14:00", "soon"]
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """Payloads shaped like the provider's, with any field swapped for garbage."""
    event = draw(
        st.sampled_from(
            [
                *("message.queued", "message.sent", "message.delivered", "message.failed"),
                *("message.expired", "opt_out", "balance.low", ""),
            ]
        )
        | json_values
    )
    data: dict[str, Any] = {
        "message_id": draw(message_ids | json_values),
        "client_ref": draw(st.sampled_from(["ref-1", "ref-eu", ""]) | json_values),
        "destination": draw(phones | json_values),
        "carrier_status": draw(st.sampled_from(["DELIVRD", "UNDELIV", "X" * 80]) | json_values),
        "delivered_at": draw(times | json_values),
    }
    keep = draw(st.sets(st.sampled_from(sorted(data))))
    payload: dict[str, Any] = {
        "id": draw(st.sampled_from(["evt-1", "evt-2", "e" * 151]) | json_values),
        "event": event,
        "created_at": draw(times | json_values),
        "data": {k: v for k, v in data.items() if k in keep},
    }
    if draw(st.booleans()):
        payload["data"] = draw(json_values)
    return payload


bodies = st.one_of(
    st.binary(max_size=400),
    json_values.map(lambda v: json.dumps(v).encode()),
    events().map(lambda v: json.dumps(v).encode()),
    st.sampled_from(NASTY_JSON),
    oversized(),
)
garbage_headers = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=60)
content_types = (
    st.sampled_from(
        [
            *("application/json", "application/json; charset=utf-8", "APPLICATION/JSON"),
            *("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x"),
            *("", "json"),
        ]
    )
    | garbage_headers
)


#: Events that change something when they come signed: a forgery of one must not.
CONSEQUENTIAL = [
    {"id": "e1", "event": "message.delivered", "data": {"message_id": "msg-1"}},
    {"id": "e2", "event": "message.failed", "data": {"message_id": "msg-2"}},
    {"id": "e3", "event": "message.sent", "data": {"message_id": "new", "destination": phone(0)}},
    {"id": "e4", "event": "opt_out", "data": {"destination": phone(3)}},
    {"id": "e5", "event": "message.expired", "data": {"client_ref": "ref-1"}},
]
#: One thing wrong with a request that would otherwise be a valid delivery.
DEFECTS = (
    "wrong secret",
    "empty secret",
    "body changed after signing",
    "signed another timestamp",
    "stale timestamp",
    "future timestamp",
    "garbage timestamp",
    "garbage signature",
    "signature in capitals",
    "signature without prefix",
    "signature repeated",
    "no signature",
    "no timestamp",
    "no webhook id",
    "unknown account",
    "account without a secret",
    "account of another backend",
    "another account's secret",
    "method not POST",
)


@st.composite
def forged_hooks(draw: st.DrawFn) -> Hook:
    """A valid delivery with at least one thing wrong with it, and noise besides."""
    consequential = st.sampled_from(CONSEQUENTIAL).map(lambda v: json.dumps(v).encode())
    body = draw(consequential | consequential | bodies)
    # Mostly one defect alone, so that no other refusal hides a missing check.
    defects = draw(
        st.sampled_from(DEFECTS).map(lambda d: {d})
        | st.sets(st.sampled_from(DEFECTS), min_size=1, max_size=3)
    )
    noisy = draw(st.integers(0, 3)) == 0
    now = int(time.time())
    ts = str(now)
    if "stale timestamp" in defects:
        ts = str(now - draw(st.integers(301, 10**9)))
    if "future timestamp" in defects:
        ts = str(now + draw(st.integers(301, 10**12)))
    signed_ts = str(now - 1) if "signed another timestamp" in defects else ts
    secret = SECRETS["brates"]
    if "wrong secret" in defects:
        secret = draw(st.sampled_from(["whsec_fuzz ", "WHSEC_FUZZ", "whsec_fuz"]) | st.text())
    secret = "" if "empty secret" in defects else secret
    signed_body = body + b" " if "body changed after signing" in defects else body
    signature = sign(secret, signed_ts, signed_body)
    if "garbage signature" in defects:
        signature = draw(st.sampled_from(["sha256=" + "0" * 64, "sha256=", "0"]) | garbage_headers)
    if "signature in capitals" in defects:
        signature = signature.upper()
    if "signature without prefix" in defects:
        signature = signature.removeprefix("sha256=")
    if "signature repeated" in defects:  # how a server hands Django a repeated header
        signature = signature + "," + signature
    headers = {
        "HTTP_X_WEBHOOK_SIGNATURE": signature,
        "HTTP_X_WEBHOOK_TIMESTAMP": draw(garbage_headers) if "garbage timestamp" in defects else ts,
        "HTTP_X_WEBHOOK_ID": draw(st.sampled_from(["wh-1", "wh-2", "w" * 151]) | garbage_headers)
        if noisy
        else "wh-1",
        "CONTENT_TYPE": draw(content_types) if noisy else "application/json",
    }
    for name, header in [
        ("no signature", "HTTP_X_WEBHOOK_SIGNATURE"),
        ("no timestamp", "HTTP_X_WEBHOOK_TIMESTAMP"),
        ("no webhook id", "HTTP_X_WEBHOOK_ID"),
    ]:
        if name in defects:
            del headers[header]
    noise = st.sampled_from(["HTTP_X_FORWARDED_FOR", "HTTP_COOKIE", "HTTP_AUTHORIZATION"])
    headers.update(draw(st.dictionaries(noise, garbage_headers, max_size=2)))
    account = "brates"
    if "unknown account" in defects:
        account = draw(st.sampled_from(["nobody", "Brates", "brates%00", "x" * 300, "brates-"]))
    for name, other in [
        ("account without a secret", "bare"),
        ("account of another backend", "mem"),
        ("another account's secret", "brates-eu"),
    ]:
        account = other if name in defects else account
    method = "POST"
    if "method not POST" in defects:
        method = draw(st.sampled_from(["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]))
    return Hook(account, body, method, headers)


@st.composite
def signed_hooks(draw: st.DrawFn) -> Hook:
    """A correctly signed delivery of any body (mostly provider-shaped JSON)."""
    body = draw(
        st.one_of(
            events().map(lambda v: json.dumps(v).encode()),
            events().map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
            json_values.map(lambda v: json.dumps(v).encode()),
            st.sampled_from(NASTY_JSON),
            st.binary(max_size=200),
        )
    )
    ts = str(int(time.time()))
    webhook_id = draw(
        st.sampled_from(["wh-1", "wh-2", "w" * 150, "wh\x00", "wh\ud800"]) | garbage_headers
    )
    headers = {
        "HTTP_X_WEBHOOK_SIGNATURE": sign(SECRETS["brates"], ts, body),
        "HTTP_X_WEBHOOK_TIMESTAMP": ts,
        "HTTP_X_WEBHOOK_ID": webhook_id or "wh-0",
        "CONTENT_TYPE": draw(
            st.sampled_from(["application/json", "application/json; charset=utf-8"])
        ),
    }
    return Hook("brates", body, "POST", headers)


# The world each example starts from.


def make_account(name: str, **credentials: str) -> ProviderAccount:
    account = ProviderAccount(name=name, backend=ProviderAccount.Backend.BULKSMSRATES)
    account.set_credentials({"api_key": "k", "api_secret": "s", **credentials})
    account.save()
    return account


def make_message(account: ProviderAccount, i: int, client_ref: str, **fields: Any) -> Message:
    values: dict[str, Any] = {"status": M.SENT, "sent_at": timezone.now(), **fields}
    return Message.objects.create(
        provider_account=account, phone=phone(i), body="hello", client_ref=client_ref, **values
    )


@pytest.fixture
def fuzz_world(db: Any) -> None:
    brates = make_account("brates", webhook_secret=SECRETS["brates"])
    eu = make_account("brates-eu", webhook_secret=SECRETS["brates-eu"])
    make_account("bare")
    ProviderAccount.objects.create(name="mem", backend=ProviderAccount.Backend.LOCMEM)
    make_message(brates, 0, "ref-1", provider_message_id="msg-1")
    make_message(brates, 1, "ref-2", provider_message_id="msg-2", status=M.IN_DOUBT)
    make_message(brates, 2, "ref-3", provider_message_id="msg-3", status=M.DELIVERED)
    make_message(brates, 0, "ref-4", provider_batch_id="batch-1")
    make_message(eu, 0, "ref-eu", provider_message_id="msg-eu", provider_batch_id="batch-eu")
    OptOut.objects.create(phone=phone(1), channel=Channel.SMS)


# Session-scoped: pytest-django runs the live-server (transactional) tests after the rest,
# so a module-scoped counter would be torn down and restarted between them.
@pytest.fixture(scope="session")
def fuzz_counts() -> Iterator[Counter[str]]:
    counts: Counter[str] = Counter()
    yield counts
    write_summary("webhooks", counts)


def rolled_back(check: Callable[[], None]) -> None:
    """Run `check` in a savepoint that is always rolled back."""
    with transaction.atomic():
        try:
            check()
        finally:
            transaction.set_rollback(True)


def send(client: Client, hook: Hook, counts: Counter[str]) -> Any:
    counts["cases"] += 1
    try:
        response = client.generic(
            hook.method, hook.path, hook.body, hook.headers.get("CONTENT_TYPE", ""), **hook.headers
        )
    except Exception:
        counts["500s"] += 1
        raise
    if response.status_code >= 500:
        counts["500s"] += 1
    elif response.status_code >= 400:
        counts["rejected_4xx"] += 1
    return response


# The fuzz tests.


@FUZZ
@given(hook=forged_hooks())
def test_a_request_without_a_valid_signature_is_refused_and_changes_nothing(
    fuzz_world: None, fuzz_counts: Counter[str], hook: Hook
) -> None:
    if hook.is_authentic():
        return  # vanishingly rare; the signed test covers these
    client = Client()

    def check() -> None:
        before = snapshot()
        response = send(client, hook, fuzz_counts)
        assert 400 <= response.status_code < 500, response.content[:200]
        assert changed_tables(before, snapshot()) == set()

    rolled_back(check)


#: What a verified event may write, and nothing else.
MAY_CHANGE = {
    WebhookEvent._meta.label,
    StatusEvent._meta.label,
    Message._meta.label,  # reports; a HELP reply's answer is a new row
    OptOut._meta.label,  # opt_out events and STOP replies (STOPALL: one per channel)
    InboundMessage._meta.label,  # replies: whatsapp.message, opt_out
    AuditEvent._meta.label,  # an opt-out (or back in) by reply is audited
    # balance.low: the account's balance state, and its sending campaigns paused
    ProviderAccount._meta.label,
    "campaigns.Campaign",
    "campaigns.CampaignTransition",
}
MESSAGE_REPORT_FIELDS = {
    "status",
    "updated_at",
    "delivered_at",
    "error_code",
    "error_message",
    "provider_message_id",
}


@FUZZ
@given(hooks=st.lists(signed_hooks(), min_size=1, max_size=3))
@example(hooks=[Hook("brates", b, "POST", {}) for b in NASTY_JSON[:8]])
def test_a_validly_signed_request_never_crashes_and_changes_only_what_it_reports(
    fuzz_world: None, fuzz_counts: Counter[str], hooks: list[Hook]
) -> None:
    client = Client()

    def check() -> None:
        for hook in hooks:
            if not hook.headers:  # an @example: sign it now, with a fresh timestamp
                hook.headers = signed_headers(hook.body)
            before = snapshot()
            response = send(client, hook, fuzz_counts)
            after = snapshot()
            assert response.status_code in (200, 400, 413), response.content[:200]
            if response.status_code != 200:
                assert changed_tables(before, after) == set()
                continue
            answer = response.json()
            assert answer["status"] in ("ok", "duplicate")
            assert changed_tables(before, after) <= MAY_CHANGE
            assert_only_appended(before, after, WebhookEvent, at_most=1)
            assert_only_appended(before, after, StatusEvent, at_most=1)
            assert_only_appended(before, after, OptOut, at_most=len(Channel.values))
            assert_only_appended(before, after, InboundMessage, at_most=1)
            if answer["status"] == "duplicate":
                assert changed_tables(before, after) == set()
            else:
                fuzz_counts["applied"] += 1
                assert (
                    len(after[WebhookEvent._meta.label])
                    == len(before[WebhookEvent._meta.label]) + 1
                )
            assert_messages_only_moved_forward(before, after)

    rolled_back(check)


@FUZZ
@given(hook=signed_hooks(), other_ids=st.lists(garbage_headers, min_size=1, max_size=3))
def test_a_signed_request_replayed_under_any_other_webhook_id_changes_nothing(
    fuzz_world: None, fuzz_counts: Counter[str], hook: Hook, other_ids: list[str]
) -> None:
    """The signature does not cover X-Webhook-Id: a replay under a new one is still a replay."""
    client = Client()

    def check() -> None:
        if send(client, hook, fuzz_counts).status_code != 200:
            return
        for webhook_id in other_ids:
            replay = Hook(hook.account, hook.body, "POST", {**hook.headers})
            replay.headers["HTTP_X_WEBHOOK_ID"] = webhook_id
            before = snapshot()
            response = send(client, replay, fuzz_counts)
            assert changed_tables(before, snapshot()) == set()
            if response.status_code == 200:
                fuzz_counts["replays_refused"] += 1
                assert response.json() == {"status": "duplicate"}
            else:  # an id no record can hold, refused before the signature is looked at
                assert response.status_code == 400

    rolled_back(check)


def signed_headers(body: bytes, webhook_id: str = "wh-example") -> dict[str, Any]:
    ts = str(int(time.time()))
    return {
        "HTTP_X_WEBHOOK_SIGNATURE": sign(SECRETS["brates"], ts, body),
        "HTTP_X_WEBHOOK_TIMESTAMP": ts,
        "HTTP_X_WEBHOOK_ID": webhook_id,
        "CONTENT_TYPE": "application/json",
    }


def assert_only_appended(before: Snapshot, after: Snapshot, model: Any, at_most: int) -> None:
    old, new = before[model._meta.label], after[model._meta.label]
    assert new[: len(old)] == old, f"{model.__name__} rows changed or deleted"
    assert len(new) - len(old) <= at_most


def assert_messages_only_moved_forward(before: Snapshot, after: Snapshot) -> None:
    """Only brates' unfinished messages change, and only in what a report may set."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {Message._meta.db_table} WHERE 1 = 0")  # noqa: S608
        names = [column[0] for column in cursor.description]
    brates = ProviderAccount.objects.get(name="brates").pk
    old = {row[0]: dict(zip(names, row, strict=True)) for row in before[Message._meta.label]}
    for row in after[Message._meta.label]:
        new = dict(zip(names, row, strict=True))
        if row[0] not in old:  # only ever an answer to a reply (HELP)
            assert new["in_reply_to_id"] is not None and new["campaign_id"] is None
            continue
        was = old[row[0]]
        changed = {name for name in names if new[name] != was[name]}
        if not changed:
            continue
        assert was["provider_account_id"] == brates, f"{was['client_ref']} of another account"
        assert changed <= MESSAGE_REPORT_FIELDS, changed
        assert was["status"] in (M.SENT, M.IN_DOUBT)
        assert new["status"] in (M.SENT, M.DELIVERED, M.FAILED)
        if "provider_message_id" in changed:
            assert was["provider_message_id"] == ""


# The same over real HTTP: a socket, a real server's header parsing, repeated headers.


def send_over_http(base_url: str, hook: Hook, repeat: str) -> int:
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.putrequest(hook.method, hook.path, skip_accept_encoding=True)
        for key, value in hook.headers.items():
            name = "Content-Type" if key == "CONTENT_TYPE" else key[5:].replace("_", "-")
            raw = value.encode("latin-1", "replace")  # what a socket can carry
            connection.putheader(name, raw)
            if name.lower() == repeat.lower():
                connection.putheader(name, raw)
        connection.putheader("Content-Length", str(len(hook.body)))
        connection.endheaders(hook.body)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@settings(FUZZ, max_examples=60)
@given(
    hook=forged_hooks() | signed_hooks(),
    repeat=st.sampled_from(["", "X-Webhook-Signature", "X-Webhook-Timestamp", "X-Webhook-Id"]),
)
def test_over_real_http_nothing_unsigned_changes_anything_and_nothing_answers_500(
    fuzz_world: None, live_server: Any, fuzz_counts: Counter[str], hook: Hook, repeat: str
) -> None:
    fuzz_counts["cases_http"] += 1
    # A repeated id reaches Django as "id,id": still an id, and not covered by the signature.
    authentic = hook.is_authentic() and repeat in ("", "X-Webhook-Id")
    before = snapshot()
    status = send_over_http(live_server.url, hook, repeat)
    if status >= 500:
        fuzz_counts["500s"] += 1
    elif status >= 400:
        fuzz_counts["rejected_4xx_http"] += 1
    assert status < 500
    if not authentic:
        assert 400 <= status < 500
        assert changed_tables(before, snapshot()) == set()


# What the fuzzer found, pinned.


@pytest.mark.parametrize(
    "body",
    [
        b'{"event": "message.delivered", "data": {"message_id": "msg-1", "n": NaN}}',
        b'{"event": "message.delivered", "data": {"message_id": "msg-1"}, "t": -Infinity}',
        b'{"event": "message.delivered", "data": {"message_id": "msg-1"}, "t": 1e999}',
    ],
)
def test_json_numbers_no_database_can_store_are_kept_as_null_not_a_500(
    fuzz_world: None, client: Client, body: bytes
) -> None:
    # Python's json reads NaN and infinities; the databases' JSON (and SQLite's check) do
    # not: they are stored as null, and the event is answered (never refused for its values).
    before = snapshot()
    response = client.post(WEBHOOK, body, content_type="application/json", **signed_extra(body))
    assert response.status_code == 200
    assert changed_tables(before, snapshot()) <= MAY_CHANGE
    raw = json.dumps(WebhookEvent.objects.get().raw)
    assert "NaN" not in raw and "Infinity" not in raw


@pytest.mark.parametrize("escape", [b"\\ud800", b"\\udfff", b"\\ud83d"])
def test_json_with_a_lone_surrogate_is_kept_replaced_not_a_500(
    fuzz_world: None, client: Client, escape: bytes
) -> None:
    body = b'{"event": "opt_out", "data": {"destination": "+447911200003", "x": "' + escape + b'"}}'
    before = snapshot()
    response = client.post(WEBHOOK, body, content_type="application/json", **signed_extra(body))
    assert response.status_code == 200
    assert changed_tables(before, snapshot()) <= MAY_CHANGE
    assert WebhookEvent.objects.get().raw["data"]["x"] == "\ufffd"


@pytest.mark.parametrize("webhook_id", ["wh\x00", "wh\n1", "wh\x7f", "wh\ud800"])
def test_a_webhook_id_with_control_characters_is_refused_not_a_500(
    fuzz_world: None, client: Client, webhook_id: str
) -> None:
    body = json.dumps(CONSEQUENTIAL[0]).encode()
    headers = {**signed_extra(body), "HTTP_X_WEBHOOK_ID": webhook_id}
    response = client.post(WEBHOOK, body, content_type="application/json", **headers)
    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


WEBHOOK = "/webhooks/bulksmsrates/brates/"


def signed_extra(body: bytes) -> dict[str, Any]:
    headers = signed_headers(body)
    del headers["CONTENT_TYPE"]
    return headers
