"""A fake of the three SMS gateways Herald speaks to, served over real HTTP on loopback.

One `FakeGateway` (a stdlib ThreadingHTTPServer on 127.0.0.1, any free port) answers for
all three providers, told apart by path:

Buzzbip (`/api/...`, JSend bodies {"status", "message", "code", "data"})
    POST /api/login_check {"username", "password"}   -> 200 {"token"} | 401 Invalid credentials.
    Every other route wants `Authorization: Bearer <token>`: 401 "JWT Token not found" /
    "Expired JWT Token"; 403 for users in `buzzbip_no_api_access`. Routes are exact, trailing
    slash included (`/api/sms` -> 404 'No route found for "POST /api/sms"').
    POST /api/sms/ {"number", "message"}              -> 201 data {id, number, message, ...}
    GET  /api/sms/?currentPage=N&limit=L              -> 200 data {items (newest first), ...}
    POST /api/whatsapp/ {"template_id", "phone_number", "country_code", "parameters"?}
    GET  /api/whatsapp/?page=N&limit=L

BulkSMSRates (`/v1/...`, errors {"error": {code, message, details}, "meta": {request_id}})
    `X-API-Key` + `X-API-Secret` on every request (401 UNAUTHORIZED); a token bucket per key
    (429 RATE_LIMITED + Retry-After; X-RateLimit-* headers on every authenticated answer);
    `X-Sandbox: true` answers {"id": "sandbox-msg-...", "status": "delivered", "sandbox": true}.
    POST /v1/sms/send, POST /v1/sms/bulk (<= 10,000 recipients), GET /v1/sms/{id},
    GET /v1/reports/messages (filters destination, status; cursor pagination),
    GET /v1/billing/balance (`bulk_balance`, `bulk_top_up()`, `bulk_low_balance_threshold`),
    POST /v1/whatsapp/send (a template, or free text {"type": "text", "text": {"body"}} only
    while the number's 24 h conversation is open), GET /v1/whatsapp/conversations (the open
    ones: `whatsapp_inbound()` opens one), GET/POST /v1/settings/webhooks and PATCH/DELETE
    /v1/settings/webhooks/{id} (kept in `bulk_webhooks`). Signed webhooks of any event come
    from `event_request()` / `post_event()`; delivery reports from `dlr_request()` / `post_dlr()`.

Bwatmesaj (`/api/v3/...`, Laravel style, errors {"status": "error", "message"})
    `Accept: application/json` or a 302 to /login (HTML); `Authorization: Bearer <token>` or
    401 "Unauthenticated.". POST /api/v3/sms/send (comma separated digits; one recipient ->
    data is an object, several -> a list), GET /api/v3/sms/{uid}, GET /api/v3/sms (inbound and
    outbound entries, newest first, 25 a page, ?page=N), GET /api/v3/balance. `bwat_inbound()`
    is a reply arriving; every entry carries "direction": "inbound" | "outbound" (our choice:
    the docs say the list holds both but name no field that tells them apart).

Faults (`inject(path_prefix, fault, times=...)`, matched on the request path with its query,
consumed in the order injected):
    "status"       answer `status` with `body`/`headers` without processing the request;
    "slow"         process (the message is accepted), then wait `seconds` before answering;
    "drop"         process (the message is accepted), then close without answering;
    "drop_before"  read the request, close without processing or answering.

Random faults (`chaos(seed=..., rates={...}, paths=..., methods=..., slow_seconds=...)`): each
request whose method is in `methods` (POST by default: sends, never lookups) and whose path
starts with one of `paths` takes one draw of a seeded random.Random (under the fake's lock),
which picks at most one of
    "5xx"          answer 500 or 503 (even odds) without processing;
    "429"          answer the provider's 429 (BulkSMSRates: RATE_LIMITED) with Retry-After: 1,
                   without processing (and without counting in `rate_limited`);
    "drop", "slow", "drop_before"   as above, "slow" waiting `slow_seconds`.
The kind is kept on `Recorded.fault` and counted in `chaos_counts`; faults queued with
`inject()` go first. The seed fixes the sequence of draws, not which request meets which
(that depends on arrival order). `calm()` switches it off.

What happened is in `requests` (every request, with the status sent, 0 when none),
`messages` (provider message id -> FakeMessage), `batches` and `rate_limited`.

Run `python tests/fakegateway.py --port 8765` to try `manage.py provider ...` against it.
Another process can read its counters at GET /_fake/stats, set the BulkSMSRates rate and
balance with POST /_fake/config {"bulk_rate": n, "bulk_balance": pence} (and switch random
faults on with {"chaos": {"seed", "rates", "paths", "methods"}}, off with {"chaos": null}),
and forget what it recorded (and refill the balances) with POST /_fake/reset.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import logging
import math
import random
import re
import secrets
import socket
import socketserver
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from requests.structures import CaseInsensitiveDict

log = logging.getLogger(__name__)

BUZZBIP = "buzzbip"
BULKSMSRATES = "bulksmsrates"
BWATMESAJ = "bwatmesaj"
FAULTS = frozenset({"status", "slow", "drop", "drop_before"})
#: Random fault kinds of `FakeGateway.chaos`, in the order a draw is laid out over [0, 1).
CHAOS_KINDS = ("5xx", "429", "drop", "slow", "drop_before")

E164 = re.compile(r"\+\d{8,15}", re.ASCII)
DIGITS = re.compile(r"\d+", re.ASCII)
BWAT_RECIPIENT = re.compile(r"\d{8,15}", re.ASCII)
NUMERIC_SENDER = re.compile(r"\+?\d{1,15}", re.ASCII)
ALNUM_SENDER = re.compile(r"[A-Za-z0-9]{1,11}", re.ASCII)
PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")

BULK_MAX_BODY = 1600
BULK_MAX_RECIPIENTS = 10_000
BULK_PENCE_PER_SEGMENT = 4  # what the wallet is charged
BULK_MICROS_PER_SEGMENT = 35_000  # what the send answer quotes
BULK_ESTIMATE_PER_MESSAGE = 35  # pence, what the bulk answer quotes
BULK_LOW_BALANCE_THRESHOLD = 500  # pence, as in the docs' balance example
WHATSAPP_MAX_TEXT = 4096  # Meta's limit on a free-text body
WHATSAPP_WINDOW = timedelta(hours=24)
#: Our WhatsApp Business number, the `to` of inbound WhatsApp events.
WHATSAPP_NUMBER = "+447900000100"
#: Our Bwatmesaj number, the `to` of inbound SMS.
BWAT_NUMBER = "447900000200"
#: The events `/v1/settings/webhooks` accepts (the docs' "Webhook Events").
BULK_WEBHOOK_EVENTS = (
    "dlr",
    "opt_out",
    "campaign.completed",
    "campaign.failed",
    "balance.low",
    "whatsapp.message",
)
#: Free text outside the 24 h window. The docs show only template sends (and say templates
#: are the only kind outside an open conversation), so this code is our fake's choice.
OUTSIDE_WINDOW = "OUTSIDE_CONVERSATION_WINDOW"

BULK_ERROR_CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "CONFLICT",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}

# event -> (stored status, carrier_status, timestamp key)
DLR_EVENTS = {
    "message.delivered": ("delivered", "DELIVRD", "delivered_at"),
    "message.failed": ("failed", "UNDELIV", "failed_at"),
    "message.undelivered": ("failed", "UNDELIV", "failed_at"),
    "message.expired": ("expired", "EXPIRED", "failed_at"),
}

LOGIN_PAGE = b"""<!DOCTYPE html>
<html><head><meta charset="UTF-8"><title>Login</title></head>
<body><form method="POST" action="/login"><input name="email"><input name="password"
type="password"><button>Sign in</button></form></body></html>
"""

REDIRECT_TO_LOGIN = b"""<!DOCTYPE html>
<html>
    <head>
        <meta charset="UTF-8" />
        <meta http-equiv="refresh" content="0;url='/login'" />
        <title>Redirecting to /login</title>
    </head>
    <body>
        Redirecting to <a href="/login">/login</a>.
    </body>
</html>"""

_INVALID = object()  # a request body that is not JSON


# -- What the fake records --------------------------------------------------------------------


@dataclass
class Recorded:
    """One request as the fake received it, and the status it answered (0: none)."""

    method: str
    path: str
    headers: CaseInsensitiveDict[str]
    body: bytes
    provider: str  # "buzzbip" | "bulksmsrates" | "bwatmesaj" | "" (no provider's path)
    status: int = 0
    fault: str | None = None  # the injected fault that met this request, if any
    at: float = field(default_factory=time.time)

    @cached_property
    def json(self) -> Any:
        """The body parsed as JSON, or None (parsed on demand: bulk bodies are large)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


@dataclass(slots=True)
class FakeMessage:
    """A message the fake accepted."""

    id: str
    provider: str
    to: str  # E.164 with +
    body: str  # after variable substitution ("" for WhatsApp templates)
    status: str
    created_at: datetime
    channel: str = "sms"  # "sms" | "whatsapp"
    sender: str = ""
    client_ref: str | None = None
    sandbox: bool = False
    template: str | None = None
    parameters: list[str] = field(default_factory=list)
    segments: int = 1
    batch_id: str | None = None
    account: str = ""  # Buzzbip username, BulkSMSRates API key or Bwatmesaj token
    events: list[tuple[str, datetime]] = field(default_factory=list)  # status changes
    extra: dict[str, Any] = field(default_factory=dict)  # provider-specific request fields
    direction: str = "outbound"  # "inbound": a reply the fake was told about (Bwatmesaj)


@dataclass
class _Fault:
    path_prefix: str
    kind: str
    times: int
    status: int
    body: dict[str, Any] | str | None
    headers: dict[str, str]
    seconds: float
    label: str = ""  # what Recorded.fault says, when not `kind` (a chaos kind)


@dataclass
class FakeWebhook:
    """An endpoint registered at BulkSMSRates through /v1/settings/webhooks."""

    id: str
    url: str
    events: list[str]
    active: bool
    secret: str
    account: str  # the API key that created it
    created_at: datetime

    def as_data(self, *, with_secret: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "active": self.active,
            "created_at": _iso_z(self.created_at),
        }
        if with_secret:  # as the API keys' secret: only shown once, on create
            data["secret"] = self.secret
        return data


@dataclass
class _Chaos:
    rng: random.Random
    rates: dict[str, float]
    paths: tuple[str, ...]
    methods: frozenset[str]
    slow_seconds: float


@dataclass
class _Token:
    username: str
    issued: float
    expired: bool = False


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class Reply:
    """An answer before encoding: `payload` is JSON-serialisable, or bytes sent as they are."""

    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encode(self) -> bytes:
        if isinstance(self.payload, bytes):
            return self.payload
        return json.dumps(self.payload, ensure_ascii=False).encode()


@dataclass
class _Call:
    """A request as the route methods see it; `data` is the parsed body (_INVALID if not JSON)."""

    method: str
    path: str
    query: dict[str, str]
    headers: CaseInsensitiveDict[str]
    data: Any
    params: dict[str, str] = field(default_factory=dict)  # named groups of the route pattern
    user: str = ""  # who authenticated


Route = Callable[[_Call], Reply]


# -- Small helpers ----------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso_z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _int_param(value: str | None, default: int) -> int:
    try:
        return max(1, int(value)) if value is not None else default
    except ValueError:
        return default


def _substitute(body: str, variables: Mapping[str, Any] | None) -> str:
    if not variables or "{{" not in body:
        return body

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(variables[name]) if name in variables else match.group(0)

    return PLACEHOLDER.sub(value, body)


def _segments(text: str) -> int:
    return 1 if len(text) <= 160 else math.ceil(len(text) / 153)


def _jsend_error(status: int, message: str, code: int | str | None = None) -> Reply:
    return Reply(
        status,
        {
            "status": "error",
            "message": message,
            "code": status if code is None else code,
            "data": [],
        },
    )


def _jsend_fail(message: str, data: dict[str, str]) -> Reply:
    return Reply(400, {"status": "fail", "message": message, "code": 400, "data": data})


def _bulk_error(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> Reply:
    return Reply(
        status,
        {
            "error": {"code": code, "message": message, "details": details or {}},
            "meta": {"request_id": f"req_{secrets.token_hex(6)}"},
        },
    )


def _bwat_error(status: int, message: str) -> Reply:
    return Reply(status, {"status": "error", "message": message})


def _provider_for(path: str) -> str:
    if path == "/v1" or path.startswith("/v1/"):
        return BULKSMSRATES
    if path == "/api/v3" or path.startswith("/api/v3/") or path == "/login":
        return BWATMESAJ
    if path == "/api" or path.startswith("/api/"):
        return BUZZBIP
    return ""


def _error_for(provider: str, status: int, message: str | None = None) -> Reply:
    """That provider's usual error body for `status`."""
    message = message or _phrase(status)
    if provider == BUZZBIP:
        return _jsend_error(status, message)
    if provider == BULKSMSRATES:
        code = BULK_ERROR_CODES.get(status, "INTERNAL_ERROR" if status >= 500 else "ERROR")
        return _bulk_error(status, code, message)
    if provider == BWATMESAJ:
        return _bwat_error(status, "Server Error" if status == 500 else message)
    return Reply(status, {"error": message.lower()})


# -- The fake ---------------------------------------------------------------------------------


class FakeGateway:
    """Buzzbip, BulkSMSRates and Bwatmesaj on one loopback port; see the module docstring."""

    def __init__(self, *, port: int = 0) -> None:
        self.port = port
        self.url = ""
        # Buzzbip
        self.buzzbip_users: dict[str, str] = {"herald": "secret"}
        self.buzzbip_no_api_access: set[str] = set()
        self.buzzbip_token_ttl: float = 3600
        self.buzzbip_approved_templates: set[str] = {"welcome_1"}
        # BulkSMSRates
        self.bulk_keys: dict[str, str] = {"bsms_test_key": "sk_test_secret"}
        self.bulk_rate: float = 100.0
        self.bulk_balance: int = 1_000_000
        self.bulk_opted_out: set[str] = set()
        self.bulk_blacklisted: set[str] = set()
        self.bulk_templates: set[str] = {"order_shipped"}
        self.bulk_low_balance_threshold: int = BULK_LOW_BALANCE_THRESHOLD
        self.bulk_webhooks: dict[str, FakeWebhook] = {}  # id -> endpoint, in creation order
        #: Open (or lapsed) WhatsApp conversations: E.164 number -> when its last message came.
        self.bulk_conversations: dict[str, datetime] = {}
        # Bwatmesaj
        self.bwat_tokens: set[str] = {"13|testtoken"}
        self.bwat_balance: int = 1_000_000
        # What happened
        self.requests: list[Recorded] = []
        self.messages: dict[str, FakeMessage] = {}
        self.batches: dict[str, list[str]] = {}
        self.rate_limited = 0
        self.chaos_counts: Counter[str] = Counter()  # random faults dealt, by kind

        self._lock = threading.RLock()
        self._faults: list[_Fault] = []
        self._chaos: _Chaos | None = None
        self._buzzbip_tokens: dict[str, _Token] = {}
        self._buzzbip_next_id = 1
        self._buzzbip_history: dict[tuple[str, str], list[str]] = {}  # (user, channel) -> ids
        self._bulk_buckets: dict[str, _Bucket] = {}
        self._bulk_refs: dict[tuple[str, str], str] = {}  # (api key, client_ref) -> message id
        self._bwat_history: list[str] = []
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._routes: dict[str, list[tuple[re.Pattern[str], dict[str, Route]]]] = {
            BUZZBIP: [
                (re.compile(r"/api/login_check"), {"POST": self._buzzbip_login}),
                (
                    re.compile(r"/api/sms/"),
                    {"POST": self._buzzbip_sms_send, "GET": self._buzzbip_sms_history},
                ),
                (
                    re.compile(r"/api/whatsapp/"),
                    {"POST": self._buzzbip_whatsapp_send, "GET": self._buzzbip_whatsapp_history},
                ),
            ],
            BULKSMSRATES: [
                (re.compile(r"/v1/sms/send"), {"POST": self._bulk_send}),
                (re.compile(r"/v1/sms/bulk"), {"POST": self._bulk_bulk}),
                (re.compile(r"/v1/sms/(?P<id>[^/]+)"), {"GET": self._bulk_message}),
                (re.compile(r"/v1/billing/balance"), {"GET": self._bulk_balance}),
                (re.compile(r"/v1/reports/messages"), {"GET": self._bulk_report}),
                (re.compile(r"/v1/whatsapp/send"), {"POST": self._bulk_whatsapp}),
                (
                    re.compile(r"/v1/whatsapp/conversations"),
                    {"GET": self._bulk_conversations},
                ),
                (
                    re.compile(r"/v1/settings/webhooks"),
                    {"GET": self._bulk_webhook_list, "POST": self._bulk_webhook_create},
                ),
                (
                    re.compile(r"/v1/settings/webhooks/(?P<id>[^/]+)"),
                    {"PATCH": self._bulk_webhook_update, "DELETE": self._bulk_webhook_delete},
                ),
            ],
            BWATMESAJ: [
                (re.compile(r"/api/v3/sms/send"), {"POST": self._bwat_send}),
                (re.compile(r"/api/v3/sms/?"), {"GET": self._bwat_list}),
                (re.compile(r"/api/v3/sms/(?P<uid>[^/]+)"), {"GET": self._bwat_message}),
                (re.compile(r"/api/v3/balance"), {"GET": self._bwat_balance}),
            ],
        }

    # -- Life cycle ---------------------------------------------------------------------------

    def start(self) -> FakeGateway:
        if self._server is not None:
            return self
        server = _Server(self, self.port)
        self.port = server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # idle keep-alive connections would linger
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeGateway:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- For tests ----------------------------------------------------------------------------

    def count(
        self, provider: str | None = None, path_prefix: str = "", *, methods: Iterable[str] = ()
    ) -> int:
        """Requests received, of `provider`, under `path_prefix`, with one of `methods` (any)."""
        wanted = {m.upper() for m in methods}
        with self._lock:
            recorded = list(self.requests)
        return sum(
            1
            for r in recorded
            if (provider is None or r.provider == provider)
            and r.path.startswith(path_prefix)
            and (not wanted or r.method in wanted)
        )

    def set_status(self, message_id: str, status: str) -> None:
        with self._lock:
            message = self.messages[message_id]
            message.status = (
                status.capitalize() if message.provider == BWATMESAJ else status.lower()
            )
            message.events.append((message.status, _now()))

    def inject(
        self,
        path_prefix: str,
        fault: str,
        *,
        times: int = 1,
        status: int = 500,
        body: dict[str, Any] | str | None = None,
        headers: dict[str, str] | None = None,
        seconds: float = 0.0,
    ) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {sorted(FAULTS)}")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.append(
                _Fault(path_prefix, fault, times, status, body, dict(headers or {}), seconds)
            )

    def chaos(
        self,
        *,
        seed: int | str,
        rates: Mapping[str, float],
        paths: Iterable[str] = ("/v1/sms/",),
        methods: Iterable[str] = ("POST",),
        slow_seconds: float = 2.0,
    ) -> None:
        """Meet matching requests with random faults from now on (see the module docstring)."""
        unknown = set(rates) - set(CHAOS_KINDS)
        if unknown:
            raise ValueError(f"unknown chaos kinds {sorted(unknown)}; of {list(CHAOS_KINDS)}")
        if any(not 0.0 <= rate <= 1.0 for rate in rates.values()) or sum(rates.values()) > 1.0:
            raise ValueError("chaos rates must each be within [0, 1] and add up to at most 1")
        with self._lock:
            self._chaos = _Chaos(
                rng=random.Random(seed),
                rates={kind: float(rates.get(kind, 0.0)) for kind in CHAOS_KINDS},
                paths=tuple(paths),
                methods=frozenset(m.upper() for m in methods),
                slow_seconds=float(slow_seconds),
            )

    def calm(self) -> None:
        """No more random faults (those already dealt stay recorded)."""
        with self._lock:
            self._chaos = None

    def expire_tokens(self) -> None:
        with self._lock:
            for token in self._buzzbip_tokens.values():
                token.expired = True

    # -- Signed webhooks (BulkSMSRates) -------------------------------------------------------

    @staticmethod
    def sign(secret: str, timestamp: str, body: bytes) -> str:
        signed = timestamp.encode() + b"." + body
        return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()

    def event_request(
        self,
        event: str,
        data: Mapping[str, Any],
        *,
        secret: str,
        timestamp: int | None = None,
        webhook_id: str | None = None,
        event_id: str | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers BulkSMSRates would post for `event` carrying `data`.

        The envelope is the docs' {id, event, created_at, data}, signed with `secret` at
        `timestamp` (now by default). Any event name goes, so tests can post unknown ones.
        """
        stamp = int(time.time()) if timestamp is None else int(timestamp)
        payload = {
            "id": event_id or str(uuid.uuid4()),
            "event": event,
            "created_at": _iso_z(datetime.fromtimestamp(stamp, UTC)),
            "data": dict(data),
        }
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Signature": self.sign(secret, str(stamp), body),
            "X-Webhook-Id": webhook_id or f"wh_evt_{secrets.token_hex(8)}",
            "X-Webhook-Timestamp": str(stamp),
        }
        return body, headers

    def post_event(
        self, url: str, event: str, data: Mapping[str, Any], *, secret: str, **kw: Any
    ) -> requests.Response:
        """Post event_request(...) to `url`; `timeout` (default 10) goes to requests."""
        timeout = kw.pop("timeout", 10.0)
        body, headers = self.event_request(event, data, secret=secret, **kw)
        return requests.post(url, data=body, headers=headers, timeout=timeout)

    def dlr_request(
        self,
        message_id: str,
        event: str = "message.delivered",
        *,
        secret: str,
        timestamp: int | None = None,
        webhook_id: str | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers BulkSMSRates would post; moves the stored message too."""
        stamp = int(time.time()) if timestamp is None else int(timestamp)
        moment = datetime.fromtimestamp(stamp, UTC)
        data: dict[str, Any]
        with self._lock:
            message = self.messages.get(message_id)
            destination = message.to if message else "+440000000000"
            if event == "opt_out":
                data = {
                    "destination": destination,
                    "keyword": "STOP",
                    "received_at": _iso_z(moment),
                }
                if message:
                    self.bulk_opted_out.add(destination)
            elif event in DLR_EVENTS:
                status, carrier_status, at_key = DLR_EVENTS[event]
                data = {
                    "message_id": message_id,
                    "destination": destination,
                    "carrier_status": carrier_status,
                    at_key: _iso_z(moment),
                }
                if message is not None:
                    if message.client_ref:
                        data["client_ref"] = message.client_ref
                    message.status = status
                    message.events.append((status, moment))
            else:
                raise ValueError(f"unsupported DLR event {event!r}")
        return self.event_request(
            event, data, secret=secret, timestamp=stamp, webhook_id=webhook_id
        )

    def post_dlr(
        self,
        url: str,
        message_id: str,
        event: str = "message.delivered",
        *,
        secret: str,
        **kw: Any,
    ) -> requests.Response:
        """Post dlr_request(...) to `url`; `timeout` (default 10) goes to requests."""
        timeout = kw.pop("timeout", 10.0)
        body, headers = self.dlr_request(message_id, event, secret=secret, **kw)
        return requests.post(url, data=body, headers=headers, timeout=timeout)

    # -- Replies and other news, as the tests tell them --------------------------------------

    def whatsapp_inbound(
        self,
        from_: str,
        text: str,
        *,
        to: str = WHATSAPP_NUMBER,
        at: datetime | None = None,
        message_id: str | None = None,
    ) -> dict[str, Any]:
        """A customer wrote on WhatsApp at `at` (now): their 24 h conversation opens (or
        restarts). Returns the `whatsapp.message` event's data {from, to, message_id, text},
        for `event_request("whatsapp.message", data, ...)` / `post_whatsapp_inbound`."""
        moment = at or _now()
        with self._lock:
            last = self.bulk_conversations.get(from_)
            if last is None or moment > last:
                self.bulk_conversations[from_] = moment
        return {
            "from": from_,
            "to": to,
            "message_id": message_id or f"wamid.{secrets.token_hex(12)}",
            "text": text,
            "received_at": _iso_z(moment),
        }

    def post_whatsapp_inbound(
        self, url: str, from_: str, text: str, *, secret: str, **kw: Any
    ) -> requests.Response:
        """whatsapp_inbound(from_, text), posted to `url` as a signed `whatsapp.message`."""
        opened = {k: kw.pop(k) for k in ("to", "at", "message_id") if k in kw}
        data = self.whatsapp_inbound(from_, text, **opened)
        return self.post_event(url, "whatsapp.message", data, secret=secret, **kw)

    def close_conversation(self, phone: str) -> None:
        """The number's 24 h window lapses now (free text to it is refused from now on)."""
        with self._lock:
            self.bulk_conversations.pop(phone, None)

    def open_conversations(self) -> dict[str, datetime]:
        """Number -> when its window closes, for the conversations open now."""
        now = _now()
        with self._lock:
            ends = {phone: at + WHATSAPP_WINDOW for phone, at in self.bulk_conversations.items()}
        return {phone: end for phone, end in ends.items() if end > now}

    def bulk_top_up(self, pence: int) -> int:
        """Money into the BulkSMSRates wallet; the new balance."""
        with self._lock:
            self.bulk_balance += int(pence)
            return self.bulk_balance

    def balance_low_data(self) -> dict[str, Any]:
        """A `balance.low` event's data, from the wallet as it is now."""
        with self._lock:
            return {
                "balance": self.bulk_balance,
                "available": self.bulk_balance,
                "currency": "GBP",
                "low_balance_threshold": self.bulk_low_balance_threshold,
            }

    def bwat_inbound(
        self, from_: str, body: str, *, to: str = BWAT_NUMBER, at: datetime | None = None
    ) -> str:
        """An SMS reply reaching our Bwatmesaj number; its uid. It tops `GET /api/v3/sms`
        (the list is in arrival order, whatever `at` says its time was)."""
        with self._lock:
            uid = self._bwat_uid()
            self.messages[uid] = FakeMessage(
                id=uid,
                provider=BWATMESAJ,
                to="+" + to.lstrip("+"),
                body=body,
                status="Delivered",
                created_at=at or _now(),
                sender=from_.lstrip("+"),
                direction="inbound",
            )
            self._bwat_history.append(uid)
        return uid

    # -- One exchange (called from the handler threads) ---------------------------------------

    def _exchange(
        self, method: str, raw_path: str, headers: CaseInsensitiveDict[str], body: bytes
    ) -> tuple[Reply | None, bytes, float]:
        """Answer one request: (reply or None to close unanswered, encoded body, delay)."""
        split = urlsplit(raw_path)
        provider = _provider_for(split.path)
        data: Any = None
        if body:
            try:
                data = json.loads(body)
            except ValueError:
                data = _INVALID
        call = _Call(
            method=method,
            path=split.path,
            query={k: v[0] for k, v in parse_qs(split.query).items()},
            headers=headers,
            data=data,
        )
        recorded = Recorded(method, raw_path, headers, body, provider)
        with self._lock:
            fault = self._take_fault(raw_path) or self._draw_chaos(method, raw_path)
            recorded.fault = (fault.label or fault.kind) if fault else None
            reply: Reply | None = None
            if fault is None or fault.kind in ("slow", "drop"):
                reply = self._dispatch(provider, call)
            elif fault.kind == "status":
                reply = self._fault_reply(provider, fault)
            dropped = fault is not None and fault.kind in ("drop", "drop_before")
            recorded.status = reply.status if reply is not None and not dropped else 0
            self.requests.append(recorded)
        if reply is None or dropped:
            return None, b"", 0.0
        delay = fault.seconds if fault is not None and fault.kind == "slow" else 0.0
        return reply, reply.encode(), delay

    def _take_fault(self, raw_path: str) -> _Fault | None:
        for fault in self._faults:
            if raw_path.startswith(fault.path_prefix):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _draw_chaos(self, method: str, raw_path: str) -> _Fault | None:
        """One draw for a request chaos applies to: the fault it meets, if any (lock held)."""
        chaos = self._chaos
        if (
            chaos is None
            or method.upper() not in chaos.methods
            or not raw_path.startswith(chaos.paths)
        ):
            return None
        draw, low = chaos.rng.random(), 0.0
        for kind in CHAOS_KINDS:
            rate = chaos.rates[kind]
            if draw < low + rate:
                self.chaos_counts[kind] += 1
                if kind == "5xx":
                    status = 500 if draw < low + rate / 2 else 503
                    return _Fault(raw_path, "status", 1, status, None, {}, 0.0, label=kind)
                if kind == "429":
                    retry = {"Retry-After": "1"}
                    return _Fault(raw_path, "status", 1, 429, None, retry, 0.0, label=kind)
                return _Fault(raw_path, kind, 1, 500, None, {}, chaos.slow_seconds, label=kind)
            low += rate
        return None

    def _fault_reply(self, provider: str, fault: _Fault) -> Reply:
        if fault.body is None:
            reply = _error_for(provider, fault.status)
        elif isinstance(fault.body, str):
            reply = Reply(
                fault.status, fault.body.encode(), content_type="text/html; charset=utf-8"
            )
        else:
            reply = Reply(fault.status, fault.body)
        reply.headers.update(fault.headers)
        return reply

    def _dispatch(self, provider: str, call: _Call) -> Reply:
        serve = {
            BUZZBIP: self._serve_buzzbip,
            BULKSMSRATES: self._serve_bulk,
            BWATMESAJ: self._serve_bwat,
        }.get(provider)
        if serve is None:
            if call.path.startswith("/_fake/"):
                return self._control(call)
            return Reply(404, {"error": "not found"})
        try:
            return serve(call)
        except Exception:  # a bug in the fake must not kill the connection silently
            log.exception("fake gateway failed on %s %s", call.method, call.path)
            return _error_for(provider, 500)

    def _control(self, call: _Call) -> Reply:
        """For a fake run in another process (the benchmarks): read counters, set limits."""
        if call.path == "/_fake/stats" and call.method == "GET":
            stats = {
                "requests": len(self.requests),
                "messages": len(self.messages),
                "rate_limited": self.rate_limited,
                "chaos": dict(self.chaos_counts),
            }
            return Reply(200, stats)
        if call.path == "/_fake/config" and call.method == "POST" and isinstance(call.data, dict):
            if "bulk_rate" in call.data:
                self.bulk_rate = float(call.data["bulk_rate"])
                self._bulk_buckets.clear()
            if "bulk_balance" in call.data:
                self.bulk_balance = int(call.data["bulk_balance"])
            if "chaos" in call.data:
                self._chaos_from(call.data["chaos"])
            return Reply(200, {"bulk_rate": self.bulk_rate, "bulk_balance": self.bulk_balance})
        if call.path == "/_fake/reset" and call.method == "POST":
            self.requests.clear()
            self.messages.clear()
            self.batches.clear()
            self._bulk_refs.clear()
            self._bwat_history.clear()
            self._buzzbip_history.clear()
            self.bulk_webhooks.clear()
            self.bulk_conversations.clear()
            self.rate_limited = 0
            self.chaos_counts.clear()
            self.bulk_balance = self.bwat_balance = 1_000_000
            return Reply(200, {"reset": True})
        return Reply(404, {"error": "not found"})

    def _chaos_from(self, config: Any) -> None:
        """/_fake/config {"chaos": {seed, rates, paths?, methods?}} deals faults; null calms."""
        if not config:
            self.calm()
            return
        self.chaos(  # the lock is re-entrant: held by the request being served
            seed=config.get("seed", 0),
            rates=config.get("rates", {}),
            paths=config.get("paths", ("/v1/sms/",)),
            methods=config.get("methods", ("POST",)),
        )

    def _route(self, provider: str, call: _Call) -> Route | list[str]:
        """The route method for `call`, or the methods the path allows ([] if none)."""
        allowed: list[str] = []
        for pattern, methods in self._routes[provider]:
            match = pattern.fullmatch(call.path)
            if match is None:
                continue
            if call.method in methods:
                call.params = match.groupdict()
                return methods[call.method]
            allowed.extend(methods)
        return allowed

    # -- Buzzbip ------------------------------------------------------------------------------

    def _serve_buzzbip(self, call: _Call) -> Reply:
        route = self._route(BUZZBIP, call)
        if isinstance(route, list):
            wanted = f"{call.method} {call.path}"
            if route:
                allow = ", ".join(route)
                return _jsend_error(
                    405, f'No route found for "{wanted}": Method Not Allowed (Allow: {allow})'
                )
            return _jsend_error(404, f'No route found for "{wanted}"')
        if route != self._buzzbip_login:
            refused = self._buzzbip_authenticate(call)
            if refused is not None:
                return refused
        if call.method == "POST":
            if call.data is None:
                call.data = {}
            if not isinstance(call.data, dict):
                return _jsend_error(400, "Invalid JSON.")
        return route(call)

    def _buzzbip_authenticate(self, call: _Call) -> Reply | None:
        authorization = call.headers.get("Authorization", "")
        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        issued = self._buzzbip_tokens.get(token) if token else None
        if issued is None:
            return _jsend_error(401, "JWT Token not found")
        if issued.expired or time.monotonic() - issued.issued > self.buzzbip_token_ttl:
            return _jsend_error(401, "Expired JWT Token")
        if issued.username in self.buzzbip_no_api_access:
            return _jsend_error(
                403, "Access denied. API access is not enabled for this user (User.hasApiAccess)."
            )
        call.user = issued.username
        return None

    def _buzzbip_login(self, call: _Call) -> Reply:
        username, password = call.data.get("username"), call.data.get("password")
        for key, value in (("username", username), ("password", password)):
            if not isinstance(value, str):
                return _jsend_error(400, f'The key "{key}" must be provided.')
        if username not in self.buzzbip_users or self.buzzbip_users[username] != password:
            return _jsend_error(401, "Invalid credentials.")
        token = secrets.token_urlsafe(32)
        self._buzzbip_tokens[token] = _Token(username, time.monotonic())
        return Reply(200, {"token": token})

    def _buzzbip_store(self, call: _Call, channel: str, to: str, **fields: Any) -> FakeMessage:
        message_id = str(self._buzzbip_next_id)
        self._buzzbip_next_id += 1
        message = FakeMessage(
            id=message_id,
            provider=BUZZBIP,
            to=to,
            status="sent",
            created_at=_now(),
            channel=channel,
            account=call.user,
            **fields,
        )
        self.messages[message_id] = message
        self._buzzbip_history.setdefault((call.user, channel), []).append(message_id)
        return message

    @staticmethod
    def _buzzbip_missing(data: dict[str, Any], names: tuple[str, ...]) -> Reply | None:
        missing = [name for name in names if _blank(data.get(name))]
        if not missing:
            return None
        return _jsend_fail(
            f"Missing required field: {missing[0]}",
            {name: "This value should not be blank." for name in missing},
        )

    def _buzzbip_sms_send(self, call: _Call) -> Reply:
        data = call.data
        if _blank(data.get("number")) and data.get("contact_id") is not None:
            return _jsend_error(400, "Unknown contact")
        refused = self._buzzbip_missing(data, ("number", "message"))
        if refused is not None:
            return refused
        number, text = data["number"], data["message"]
        if not isinstance(number, str) or not E164.fullmatch(number):
            return _jsend_error(400, "Invalid phone number.", "INVALID_PHONE")
        if not isinstance(text, str):
            return _jsend_fail(
                "Invalid field: message", {"message": "This value should be of type string."}
            )
        message = self._buzzbip_store(call, "sms", number, body=text)
        return Reply(
            201,
            {
                "status": "success",
                "message": "SMS queued",
                "code": 201,
                "data": self._sms_entry(message),
            },
        )

    def _buzzbip_whatsapp_send(self, call: _Call) -> Reply:
        data = call.data
        if _blank(data.get("phone_number")) and data.get("contact_id") is not None:
            return _jsend_error(400, "Unknown contact")
        refused = self._buzzbip_missing(data, ("template_id", "phone_number", "country_code"))
        if refused is not None:
            return refused
        template_id = str(data["template_id"])
        if template_id not in self.buzzbip_approved_templates:
            return _jsend_error(400, "Template is not approved.", "TEMPLATE_NOT_APPROVED")
        national, country = str(data["phone_number"]), str(data["country_code"])
        number = f"+{country}{national}"
        if not (
            DIGITS.fullmatch(national) and DIGITS.fullmatch(country) and E164.fullmatch(number)
        ):
            return _jsend_error(400, "Invalid phone number.", "INVALID_PHONE")
        parameters = data.get("parameters") or []
        if not isinstance(parameters, list):
            return _jsend_fail(
                "Invalid field: parameters", {"parameters": "This value should be of type array."}
            )
        message = self._buzzbip_store(
            call,
            "whatsapp",
            number,
            body="",
            template=template_id,
            parameters=[str(p) for p in parameters],
            extra={"phone_number": national, "country_code": country},
        )
        return Reply(
            201,
            {
                "status": "success",
                "message": "WhatsApp message queued",
                "code": 201,
                "data": self._whatsapp_entry(message),
            },
        )

    @staticmethod
    def _sms_entry(message: FakeMessage) -> dict[str, Any]:
        return {
            "id": int(message.id),
            "number": message.to,
            "message": message.body,
            "sent_date": message.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            "state": message.status,
        }

    @staticmethod
    def _whatsapp_entry(message: FakeMessage) -> dict[str, Any]:
        return {
            "id": int(message.id),
            "phone_number": message.extra["phone_number"],
            "country_code": message.extra["country_code"],
            "template_id": message.template,
            "sent_date": message.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            "state": message.status,
        }

    def _buzzbip_history_page(
        self, call: _Call, channel: str, page_param: str, entry: Callable[[FakeMessage], Any]
    ) -> Reply:
        page = _int_param(call.query.get(page_param), 1)
        limit = min(_int_param(call.query.get("limit"), 20), 100)
        ids = self._buzzbip_history.get((call.user, channel), [])
        end = max(0, len(ids) - (page - 1) * limit)
        items = [entry(self.messages[i]) for i in reversed(ids[max(0, end - limit) : end])]
        data = {"items": items, "currentPage": page, "limit": limit, "total": len(ids)}
        return Reply(200, {"status": "success", "message": "", "code": 200, "data": data})

    def _buzzbip_sms_history(self, call: _Call) -> Reply:
        return self._buzzbip_history_page(call, "sms", "currentPage", self._sms_entry)

    def _buzzbip_whatsapp_history(self, call: _Call) -> Reply:
        return self._buzzbip_history_page(call, "whatsapp", "page", self._whatsapp_entry)

    # -- BulkSMSRates -------------------------------------------------------------------------

    def _serve_bulk(self, call: _Call) -> Reply:
        key = call.headers.get("X-API-Key", "")
        secret = call.headers.get("X-API-Secret", "")
        expected = self.bulk_keys.get(key)
        if not key or expected is None or not hmac.compare_digest(expected, secret):
            return _bulk_error(401, "UNAUTHORIZED", "Missing, invalid, or expired credentials")
        call.user = key
        allowed, rate_headers = self._take_bucket_token(key)
        if not allowed:
            self.rate_limited += 1
            reply = _bulk_error(
                429,
                "RATE_LIMITED",
                "Too many requests — check Retry-After header",
                {"retry_after": int(rate_headers["Retry-After"])},
            )
        else:
            reply = self._serve_bulk_route(call)
        reply.headers.update(rate_headers)
        return reply

    def _serve_bulk_route(self, call: _Call) -> Reply:
        route = self._route(BULKSMSRATES, call)
        if isinstance(route, list):
            if route:
                return _bulk_error(
                    405, "METHOD_NOT_ALLOWED", "Method not allowed", {"allow": route}
                )
            return _bulk_error(404, "NOT_FOUND", "Resource does not exist")
        if call.method == "POST" and not isinstance(call.data, dict):
            return _bulk_error(400, "VALIDATION_ERROR", "Request body must be a JSON object")
        return route(call)

    def _take_bucket_token(self, key: str) -> tuple[bool, dict[str, str]]:
        rate = max(float(self.bulk_rate), 0.001)
        capacity = max(rate, 1.0)
        now = time.monotonic()
        bucket = self._bulk_buckets.get(key)
        if bucket is None:
            bucket = self._bulk_buckets[key] = _Bucket(capacity, now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        allowed = bucket.tokens >= 1
        if allowed:
            bucket.tokens -= 1
        headers = {
            "X-RateLimit-Limit": f"{rate:g}",
            "X-RateLimit-Remaining": str(int(bucket.tokens)),
            "X-RateLimit-Reset": str(math.ceil(time.time() + (capacity - bucket.tokens) / rate)),
        }
        if not allowed:
            headers["Retry-After"] = str(max(1, math.ceil((1 - bucket.tokens) / rate)))
        return allowed, headers

    @staticmethod
    def _sandbox(call: _Call) -> bool:
        return call.headers.get("X-Sandbox", "").strip().lower() in ("true", "1")

    def _sandbox_id(self) -> str:
        while True:
            message_id = f"sandbox-msg-{secrets.token_hex(4)}"
            if message_id not in self.messages:
                return message_id

    @staticmethod
    def _bulk_check_fields(data: dict[str, Any], names: tuple[str, ...]) -> Reply | None:
        bad = {name: "is required" for name in names if _blank(data.get(name))}
        bad.update(
            {
                name: "must be a string"
                for name in names
                if name not in bad and not isinstance(data[name], str)
            }
        )
        if "variables" in data and not isinstance(data["variables"], dict | None):
            bad["variables"] = "must be an object"
        if "client_ref" in data and not isinstance(data["client_ref"], str | None):
            bad["client_ref"] = "must be a string"
        if bad:
            return _bulk_error(
                400, "VALIDATION_ERROR", "Invalid request body or query parameters", bad
            )
        return None

    @staticmethod
    def _bulk_check_sender(sender: str) -> Reply | None:
        if len(sender) > 11 and not NUMERIC_SENDER.fullmatch(sender):
            return _bulk_error(400, "INVALID_SENDER_ID", "Sender ID not approved or too long")
        return None

    def _bulk_check_destination(self, to: str) -> Reply | None:
        if not E164.fullmatch(to):
            return _bulk_error(
                400, "INVALID_PHONE_NUMBER", "Destination is not a valid E.164 number", {"to": to}
            )
        if to in self.bulk_opted_out:
            return _bulk_error(
                422, "OPT_OUT", "Recipient has opted out of receiving messages", {"to": to}
            )
        if to in self.bulk_blacklisted:
            return _bulk_error(422, "BLACKLISTED", "Destination number is blacklisted", {"to": to})
        return None

    def _bulk_check_balance(self, segments: int) -> Reply | None:
        required = segments * BULK_PENCE_PER_SEGMENT
        if self.bulk_balance < required:
            return _bulk_error(
                422,
                "INSUFFICIENT_BALANCE",
                f"Wallet balance too low to send {segments} segments",
                {"required": required, "available": self.bulk_balance},
            )
        return None

    @staticmethod
    def _too_long(length: int) -> Reply:
        return _bulk_error(
            400,
            "MESSAGE_TOO_LONG",
            "Body exceeds maximum character limit",
            {"length": length, "max": BULK_MAX_BODY},
        )

    def _bulk_send(self, call: _Call) -> Reply:
        data, key, sandbox = call.data, call.user, self._sandbox(call)
        refused = self._bulk_check_fields(data, ("to", "from", "body"))
        refused = refused or self._bulk_check_sender(data["from"])
        refused = refused or self._bulk_check_destination(data["to"])
        if refused is not None:
            return refused
        text = _substitute(data["body"], data.get("variables"))
        if len(text) > BULK_MAX_BODY:
            return self._too_long(len(text))
        client_ref = data.get("client_ref") or None
        segments = _segments(text)
        if not sandbox:
            existing = self._bulk_refs.get((key, client_ref)) if client_ref else None
            if existing is not None:
                return _bulk_error(
                    409,
                    "CONFLICT",
                    "A message with this client_ref already exists",
                    {"id": existing},
                )
            refused = self._bulk_check_balance(segments)
            if refused is not None:
                return refused
        message = FakeMessage(
            id=self._sandbox_id() if sandbox else str(uuid.uuid4()),
            provider=BULKSMSRATES,
            to=data["to"],
            body=text,
            status="delivered" if sandbox else "queued",
            created_at=_now(),
            sender=data["from"],
            client_ref=client_ref,
            sandbox=sandbox,
            segments=segments,
            account=key,
            extra={
                name: data[name]
                for name in ("scheduled_at", "validity_minutes", "unicode")
                if name in data
            },
        )
        self.messages[message.id] = message
        if sandbox:
            return Reply(200, {"id": message.id, "status": "delivered", "sandbox": True})
        self.bulk_balance -= segments * BULK_PENCE_PER_SEGMENT
        if client_ref:
            self._bulk_refs[(key, client_ref)] = message.id
        return Reply(
            200,
            {
                "id": message.id,
                "messageId": message.id,
                "status": "queued",
                "segments": segments,
                "cost_micros": segments * BULK_MICROS_PER_SEGMENT,
                "cost": round(segments * BULK_MICROS_PER_SEGMENT / 1_000_000, 6),
            },
        )

    def _bulk_bulk(self, call: _Call) -> Reply:
        data, key, sandbox = call.data, call.user, self._sandbox(call)
        recipients = data.get("recipients")
        if not isinstance(recipients, list) or not 1 <= len(recipients) <= BULK_MAX_RECIPIENTS:
            return _bulk_error(
                400,
                "VALIDATION_ERROR",
                "Invalid request body or query parameters",
                {"recipients": f"must hold 1 to {BULK_MAX_RECIPIENTS} recipients"},
            )
        refused = self._bulk_check_fields(data, ("from", "body"))
        refused = refused or self._bulk_check_sender(data["from"])
        if refused is not None:
            return refused
        body, sender = data["body"], data["from"]
        if len(body) > BULK_MAX_BODY:
            return self._too_long(len(body))
        client_ref = data.get("client_ref") or None

        accepted: list[tuple[str, str, int]] = []  # (to, text, segments)
        rejected = 0
        opted_out, blacklisted = self.bulk_opted_out, self.bulk_blacklisted
        for recipient in recipients:
            to = recipient.get("to") if isinstance(recipient, dict) else None
            variables = recipient.get("variables") if isinstance(recipient, dict) else None
            if (
                not isinstance(to, str)
                or not E164.fullmatch(to)
                or to in opted_out
                or to in blacklisted
                or not isinstance(variables, dict | None)
            ):
                rejected += 1
                continue
            text = _substitute(body, variables)
            if len(text) > BULK_MAX_BODY:
                rejected += 1
                continue
            accepted.append((to, text, _segments(text)))
        total_segments = sum(segments for _, _, segments in accepted)
        if not sandbox:
            refused = self._bulk_check_balance(total_segments)
            if refused is not None:
                return refused
            self.bulk_balance -= total_segments * BULK_PENCE_PER_SEGMENT

        batch_id = str(uuid.uuid4())
        now = _now()
        ids: list[str] = []
        for to, text, segments in accepted:
            message_id = self._sandbox_id() if sandbox else str(uuid.uuid4())
            self.messages[message_id] = FakeMessage(
                id=message_id,
                provider=BULKSMSRATES,
                to=to,
                body=text,
                status="delivered" if sandbox else "queued",
                created_at=now,
                sender=sender,
                client_ref=client_ref,
                sandbox=sandbox,
                segments=segments,
                batch_id=batch_id,
                account=key,
            )
            ids.append(message_id)
        self.batches[batch_id] = ids
        if client_ref and ids and not sandbox:
            self._bulk_refs.setdefault((key, client_ref), ids[0])
        summary = {
            "batch_id": batch_id,
            "accepted": len(ids),
            "rejected": rejected,
            "cost_estimate": 0 if sandbox else len(ids) * BULK_ESTIMATE_PER_MESSAGE,
            "currency": "GBP",
        }
        if sandbox:  # both shapes, so a client reading either one is served
            sandbox_id = self._sandbox_id()
            return Reply(
                200,
                {
                    "id": sandbox_id,
                    "status": "delivered",
                    "sandbox": True,
                    "data": {**summary, "sandbox": True},
                },
            )
        return Reply(200, {"data": summary})

    def _bulk_message(self, call: _Call) -> Reply:
        message = self.messages.get(call.params["id"])
        if message is None or message.provider != BULKSMSRATES or message.account != call.user:
            return _bulk_error(404, "NOT_FOUND", "Message not found")
        events = [{"status": "queued", "at": _iso_z(message.created_at)}]
        events += [{"status": status, "at": _iso_z(at)} for status, at in message.events]
        return Reply(
            200,
            {
                "data": {
                    "id": message.id,
                    "to": message.to,
                    "from": message.sender,
                    "body": message.body,
                    "status": message.status,
                    "client_ref": message.client_ref,
                    "segments": message.segments,
                    "created_at": _iso_z(message.created_at),
                    "events": events,
                }
            },
        )

    def _bulk_report(self, call: _Call) -> Reply:
        """The message log, filtered by `destination` (exact) and `status`, newest first."""
        destination = call.query.get("destination")
        status = call.query.get("status")
        page_size = min(max(_int_param(call.query.get("page_size"), 50), 1), 500)
        found = [
            m
            for m in self.messages.values()
            if m.provider == BULKSMSRATES
            and m.account == call.user
            and (destination is None or m.to == destination)
            and (status is None or m.status == status)
        ]
        found.sort(key=lambda m: m.created_at, reverse=True)
        start = _int_param(call.query.get("cursor"), 0)
        page = found[start : start + page_size]
        more = start + page_size < len(found)
        items = [
            {
                "message_id": m.id,
                "destination": m.to,
                "status": m.status,
                "client_ref": m.client_ref,
                "batch_id": m.batch_id,
                "segments": m.segments,
                "created_at": _iso_z(m.created_at),
            }
            for m in page
        ]
        pagination = {
            "total": len(found),
            "page_size": page_size,
            "has_more": more,
            "cursor": str(start + page_size) if more else None,
        }
        return Reply(200, {"data": items, "pagination": pagination})

    def _bulk_balance(self, call: _Call) -> Reply:
        return Reply(
            200,
            {
                "data": {
                    "balance": self.bulk_balance,
                    "credit_limit": 0,
                    "available": self.bulk_balance,
                    "currency": "GBP",
                    "low_balance_threshold": self.bulk_low_balance_threshold,
                    "auto_topup_enabled": False,
                }
            },
        )

    def _bulk_whatsapp(self, call: _Call) -> Reply:
        if call.data.get("type") == "text":
            return self._bulk_whatsapp_text(call)
        data, sandbox = call.data, self._sandbox(call)
        template = data.get("template")
        if (
            not isinstance(data.get("to"), str)
            or data.get("type") != "template"
            or not isinstance(template, dict)
            or _blank(template.get("name"))
        ):
            return _bulk_error(
                400,
                "VALIDATION_ERROR",
                "Invalid request body or query parameters",
                {
                    "to": "is required",
                    "type": "must be template or text",
                    "template.name": "is required",
                },
            )
        name = str(template["name"])
        if name not in self.bulk_templates:
            return _bulk_error(404, "NOT_FOUND", "Template not found or not approved")
        to = data["to"]
        refused = self._bulk_check_destination(to)
        if refused is not None:
            return refused
        parameters: list[str] = []
        for component in template.get("components") or []:
            if isinstance(component, dict) and component.get("type") == "body":
                parameters += [
                    str(p.get("text", ""))
                    for p in component.get("parameters") or []
                    if isinstance(p, dict)
                ]
        message = FakeMessage(
            id=self._sandbox_id() if sandbox else str(uuid.uuid4()),
            provider=BULKSMSRATES,
            to=to,
            body="",
            status="delivered" if sandbox else "queued",
            created_at=_now(),
            channel="whatsapp",
            sandbox=sandbox,
            template=name,
            parameters=parameters,
            account=call.user,
            extra={"language": template.get("language")},
        )
        self.messages[message.id] = message
        if sandbox:
            return Reply(200, {"id": message.id, "status": "delivered", "sandbox": True})
        return Reply(200, {"id": message.id, "messageId": message.id, "status": "queued"})

    def _bulk_whatsapp_text(self, call: _Call) -> Reply:
        """Free text, Meta style {"type": "text", "text": {"body"}}: only inside the window."""
        data, sandbox = call.data, self._sandbox(call)
        text = data.get("text")
        body = text.get("body") if isinstance(text, dict) else None
        if not isinstance(data.get("to"), str) or not isinstance(body, str) or _blank(body):
            return _bulk_error(
                400,
                "VALIDATION_ERROR",
                "Invalid request body or query parameters",
                {"to": "is required", "text.body": "is required"},
            )
        if len(body) > WHATSAPP_MAX_TEXT:
            return _bulk_error(
                400,
                "MESSAGE_TOO_LONG",
                "Body exceeds maximum character limit",
                {"length": len(body), "max": WHATSAPP_MAX_TEXT},
            )
        to = data["to"]
        refused = self._bulk_check_destination(to)
        if refused is not None:
            return refused
        if to not in self.open_conversations():
            return _bulk_error(
                422,
                OUTSIDE_WINDOW,
                "Free-form messages can only be sent within 24 hours of the customer's "
                "last message; send an approved template",
                {"to": to},
            )
        message = FakeMessage(
            id=self._sandbox_id() if sandbox else str(uuid.uuid4()),
            provider=BULKSMSRATES,
            to=to,
            body=body,
            status="delivered" if sandbox else "queued",
            created_at=_now(),
            channel="whatsapp",
            sandbox=sandbox,
            account=call.user,
        )
        self.messages[message.id] = message
        if sandbox:
            return Reply(200, {"id": message.id, "status": "delivered", "sandbox": True})
        return Reply(200, {"id": message.id, "messageId": message.id, "status": "queued"})

    @staticmethod
    def _bulk_page(call: _Call, items: list[Any]) -> Reply:
        """`items` as the docs' cursor pagination (the cursor is an offset, opaque to clients)."""
        page_size = min(max(_int_param(call.query.get("page_size"), 50), 1), 500)
        start = _int_param(call.query.get("cursor"), 0)
        more = start + page_size < len(items)
        pagination = {
            "total": len(items),
            "page_size": page_size,
            "has_more": more,
            "cursor": str(start + page_size) if more else None,
        }
        return Reply(200, {"data": items[start : start + page_size], "pagination": pagination})

    def _bulk_conversations(self, call: _Call) -> Reply:
        items = [
            {
                "phone": phone,
                "wa_id": phone.lstrip("+"),
                "last_message_at": _iso_z(ends - WHATSAPP_WINDOW),
                "expires_at": _iso_z(ends),
            }
            for phone, ends in sorted(self.open_conversations().items(), key=lambda i: i[1])
        ]
        return self._bulk_page(call, items)

    def _bulk_webhook_list(self, call: _Call) -> Reply:
        mine = [w.as_data() for w in self.bulk_webhooks.values() if w.account == call.user]
        return self._bulk_page(call, mine)

    @staticmethod
    def _bulk_webhook_problems(data: dict[str, Any], *, partial: bool) -> dict[str, str]:
        problems: dict[str, str] = {}
        url = data.get("url")
        if url is not None or not partial:
            parts = urlsplit(url) if isinstance(url, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
                problems["url"] = "must be an absolute http(s) URL"
        events = data.get("events")
        if events is not None or not partial:
            if not isinstance(events, list) or not events:
                problems["events"] = "must be a non-empty list"
            else:
                unknown = [e for e in events if e not in BULK_WEBHOOK_EVENTS]
                if unknown:
                    problems["events"] = f"unknown events {unknown}; one of {BULK_WEBHOOK_EVENTS}"
        if "active" in data and not isinstance(data["active"], bool):
            problems["active"] = "must be a boolean"
        return problems

    def _bulk_webhook_create(self, call: _Call) -> Reply:
        problems = self._bulk_webhook_problems(call.data, partial=False)
        if problems:
            return _bulk_error(
                400, "VALIDATION_ERROR", "Invalid request body or query parameters", problems
            )
        url = call.data["url"]
        if any(w.url == url and w.account == call.user for w in self.bulk_webhooks.values()):
            return _bulk_error(409, "CONFLICT", "A webhook with this URL already exists")
        webhook = FakeWebhook(
            id=f"wh_{secrets.token_hex(8)}",
            url=url,
            events=list(dict.fromkeys(call.data["events"])),
            active=call.data.get("active", True),
            secret=f"whsec_{secrets.token_hex(16)}",
            account=call.user,
            created_at=_now(),
        )
        self.bulk_webhooks[webhook.id] = webhook
        return Reply(201, {"data": webhook.as_data(with_secret=True)})

    def _bulk_webhook_found(self, call: _Call) -> FakeWebhook | None:
        webhook = self.bulk_webhooks.get(call.params["id"])
        return webhook if webhook is not None and webhook.account == call.user else None

    def _bulk_webhook_update(self, call: _Call) -> Reply:
        webhook = self._bulk_webhook_found(call)
        if webhook is None:
            return _bulk_error(404, "NOT_FOUND", "Webhook not found")
        if not isinstance(call.data, dict):
            return _bulk_error(400, "VALIDATION_ERROR", "Request body must be a JSON object")
        problems = self._bulk_webhook_problems(call.data, partial=True)
        if problems:
            return _bulk_error(
                400, "VALIDATION_ERROR", "Invalid request body or query parameters", problems
            )
        if "url" in call.data:
            webhook.url = call.data["url"]
        if "events" in call.data:
            webhook.events = list(dict.fromkeys(call.data["events"]))
        if "active" in call.data:
            webhook.active = call.data["active"]
        return Reply(200, {"data": webhook.as_data()})

    def _bulk_webhook_delete(self, call: _Call) -> Reply:
        webhook = self._bulk_webhook_found(call)
        if webhook is None:
            return _bulk_error(404, "NOT_FOUND", "Webhook not found")
        del self.bulk_webhooks[webhook.id]
        return Reply(204, b"")

    # -- Bwatmesaj ----------------------------------------------------------------------------

    def _serve_bwat(self, call: _Call) -> Reply:
        if call.path == "/login":
            return Reply(200, LOGIN_PAGE, content_type="text/html; charset=UTF-8")
        first_accepted = call.headers.get("Accept", "").split(",")[0].lower()
        if "/json" not in first_accepted and "+json" not in first_accepted:
            return Reply(302, REDIRECT_TO_LOGIN, {"Location": "/login"}, "text/html; charset=UTF-8")
        authorization = call.headers.get("Authorization", "")
        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        if token not in self.bwat_tokens:
            return _bwat_error(401, "Unauthenticated.")
        call.user = token
        route = self._route(BWATMESAJ, call)
        if isinstance(route, list):
            laravel_path = call.path.lstrip("/")
            if route:
                return _bwat_error(
                    405,
                    f"The {call.method} method is not supported for route {laravel_path}. "
                    f"Supported methods: {', '.join(route)}.",
                )
            return _bwat_error(404, f"The route {laravel_path} could not be found.")
        if call.method == "POST":
            if call.data is None:
                call.data = {}
            if not isinstance(call.data, dict):
                return _bwat_error(422, "The given data was invalid.")
        return route(call)

    def _bwat_send(self, call: _Call) -> Reply:
        data = call.data
        for name in ("recipient", "sender_id", "type", "message"):
            if _blank(data.get(name)):
                return _bwat_error(422, f"The {name.replace('_', ' ')} field is required.")
        if not isinstance(data["message"], str):
            return _bwat_error(422, "The message must be a string.")
        if data["type"] != "plain":
            return _bwat_error(422, "The selected type is invalid.")
        sender = str(data["sender_id"])
        if not (ALNUM_SENDER.fullmatch(sender) or NUMERIC_SENDER.fullmatch(sender)):
            return _bwat_error(422, "The sender id must not be greater than 11 characters.")
        recipients = [number.strip() for number in str(data["recipient"]).split(",")]
        for number in recipients:
            if not BWAT_RECIPIENT.fullmatch(number):
                return _bwat_error(422, f"Invalid phone number: {number}")
        if self.bwat_balance < len(recipients):
            return _bwat_error(422, "You do not have sufficient unit to send message.")
        self.bwat_balance -= len(recipients)
        now = _now()
        extra = {name: data[name] for name in ("schedule_time", "dlt_template_id") if name in data}
        sent = []
        for number in recipients:
            uid = self._bwat_uid()
            self.messages[uid] = FakeMessage(
                id=uid,
                provider=BWATMESAJ,
                to=f"+{number}",
                body=data["message"],
                status="Sent",
                created_at=now,
                sender=sender,
                account=call.user,
                extra=extra,
            )
            self._bwat_history.append(uid)
            sent.append(
                {
                    "uid": uid,
                    "to": number,
                    "from": sender,
                    "message": data["message"],
                    "status": "Sent",
                    "cost": "1",
                    "sms_count": 1,
                }
            )
        return Reply(
            200,
            {
                "status": "success",
                "message": "Your message was successfully delivered",
                "data": sent[0] if len(sent) == 1 else sent,
            },
        )

    def _bwat_uid(self) -> str:
        while True:
            uid = secrets.token_hex(7)[:13]
            if uid not in self.messages:
                return uid

    @staticmethod
    def _bwat_entry(message: FakeMessage) -> dict[str, Any]:
        return {
            "uid": message.id,
            "to": message.to.lstrip("+"),
            "from": message.sender,
            "message": message.body,
            "status": message.status,
            "sent_at": message.created_at.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "direction": message.direction,
        }

    def _bwat_message(self, call: _Call) -> Reply:
        message = self.messages.get(call.params["uid"])
        if message is None or message.provider != BWATMESAJ:
            return _bwat_error(404, "SMS not found.")
        return Reply(200, {"status": "success", "data": self._bwat_entry(message)})

    def _bwat_list(self, call: _Call) -> Reply:
        page, per_page = _int_param(call.query.get("page"), 1), 25
        total = len(self._bwat_history)
        end = max(0, total - (page - 1) * per_page)
        uids = reversed(self._bwat_history[max(0, end - per_page) : end])
        data = {
            "current_page": page,
            "data": [self._bwat_entry(self.messages[uid]) for uid in uids],
            "per_page": per_page,
            "total": total,
            "last_page": max(1, math.ceil(total / per_page)),
        }
        return Reply(200, {"status": "success", "data": data})

    def _bwat_balance(self, call: _Call) -> Reply:
        return Reply(
            200,
            {
                "status": "success",
                "data": {"remaining_unit": self.bwat_balance, "expired_on": "2030-01-01"},
            },
        )


# -- HTTP plumbing ----------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, gateway: FakeGateway, port: int) -> None:
        self.gateway = gateway
        super().__init__(("127.0.0.1", port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look up the host's FQDN; loopback needs no DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.socket.getsockname()[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeGateway/1.0"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.gateway._lock:
            self.server.gateway._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.gateway._lock:
                self.server.gateway._connections.discard(self.connection)

    def _handle(self) -> None:
        body = self._read_body()
        if body is None:
            self.send_error(400, "Bad request body")
            self.close_connection = True
            return
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(self.headers.items())
        reply, encoded, delay = self.server.gateway._exchange(
            self.command, self.path, headers, body
        )
        if reply is None:  # a "drop" fault: close without a word
            self.close_connection = True
            return
        if delay:
            time.sleep(delay)
        try:
            self.send_response(reply.status)
            if not any(name.lower() == "content-type" for name in reply.headers):
                self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(encoded)))
            self.end_headers()
            self.wfile.write(encoded)
        except OSError:  # the client gave up (read timeout) or the fake is stopping
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self.rfile.readline(1024)
                try:
                    size = int(size_line.split(b";")[0].strip(), 16)
                except ValueError:
                    return None
                if size == 0:
                    while self.rfile.readline(1024).strip():  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        return self.rfile.read(length) if length > 0 else b""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the fake SMS gateways until Ctrl-C.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--bulk-rate", type=float, default=100.0, help="BulkSMSRates req/s")
    args = parser.parse_args(argv)
    with FakeGateway(port=args.port) as gateway:
        gateway.bulk_rate = args.bulk_rate
        print(f"Fake SMS gateways listening on {gateway.url} (Ctrl-C stops).")
        print("Built-in test credentials (fake values, not real secrets):")
        for username, password in gateway.buzzbip_users.items():
            print(f"  Buzzbip       {gateway.url}  username={username} password={password}")
        for key, secret in gateway.bulk_keys.items():
            print(f"  BulkSMSRates  {gateway.url}/v1  api_key={key} api_secret={secret}")
        for token in sorted(gateway.bwat_tokens):
            print(f"  Bwatmesaj     {gateway.url}/api/v3  token={token}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print()


if __name__ == "__main__":
    main()
