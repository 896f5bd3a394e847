"""Buzzbip: JWT login, JSend bodies, SMS and WhatsApp templates, status from the history.

Contract (../shared/providers/buzzbip-*.txt):

- `POST /api/login_check` {username, password} -> a JWT valid for 3600 s. We keep
  it per process and log in again 5 minutes before it runs out, and once more
  when a request is refused as unauthenticated (expired or revoked early).
- Every answer is JSend: read `status`, `message`, `code` and `data` together,
  whatever the HTTP status says (an error may come back as 200, a success as 201).
- SMS `POST /api/sms/` {number, message}; WhatsApp `POST /api/whatsapp/`
  {template_id, phone_number, country_code} with an approved template. The
  trailing slashes are part of the routes.
- A user without API access (User.hasApiAccess) gets authorization errors even
  with a valid token: an account-level error that says so.
- No status endpoint per message: `GET /api/sms/?currentPage=&limit=` and
  `GET /api/whatsapp/?page=&limit=` list the history with each entry's `state`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import phonenumbers
import requests

from contacts.models import Channel
from messaging.backends.base import BaseBackend, SendResult, StatusUpdate, looked_up
from messaging.exceptions import (
    AccountError,
    InDoubtError,
    ProviderError,
    RecipientError,
    RetryableError,
)
from messaging.http import ProviderClient, json_or_none, retry_after
from messaging.models import Message

TOKEN_TTL_SECONDS = 3600
#: Log in again this long before the token would run out.
TOKEN_REFRESH_MARGIN = 300
HISTORY_PAGE_SIZE = 100

DELIVERED_STATES = {"delivered", "read"}
FAILED_STATES = {"failed", "undelivered", "rejected", "expired", "error"}

NO_API_ACCESS = (
    "this Buzzbip user has no API access: switch on User.hasApiAccess for it in Buzzbip Admin"
)

_tokens: dict[tuple[str, str], tuple[str, float]] = {}
_tokens_lock = threading.Lock()


class BuzzbipBackend(BaseBackend):
    channels = frozenset({Channel.SMS, Channel.WHATSAPP})
    max_batch = 1
    supports_status_lookup = True
    lookup_batch = 1000
    supports_reconcile = True
    credential_keys = ("username", "password")
    option_keys = (
        "connect_timeout",
        "read_timeout",
        "history_pages",
        "status_poll_after",
        "concurrency",
    )
    default_base_url = "https://app.buzzbip.com"

    def __init__(self, account: Any) -> None:
        super().__init__(account)
        self.client = ProviderClient(account, account.base_url or self.default_base_url)
        self._token_key = (self.client.base_url, str(account.credentials.get("username", "")))

    # Sending: one message per request.

    def build_payload(self, batch: Sequence[Message]) -> tuple[str, dict[str, Any]]:
        (message,) = batch
        if message.channel == Channel.WHATSAPP:
            if not message.template_id:
                raise AccountError("WhatsApp needs an approved template id", code="NO_TEMPLATE")
            number = phonenumbers.parse(message.phone)
            payload: dict[str, Any] = {
                "template_id": message.template_id,
                "phone_number": str(number.national_number),
                "country_code": str(number.country_code),
            }
            if message.template_params:
                payload["parameters"] = [str(p) for p in message.template_params]
            return "/api/whatsapp/", payload
        return "/api/sms/", {"number": message.phone, "message": message.body}

    def post_to_provider(
        self, payload: tuple[str, dict[str, Any]], batch: Sequence[Message]
    ) -> dict[str, Any]:
        path, body = payload
        return self._call("POST", path, sends=True, json=body)

    def parse_response(
        self, response: dict[str, Any], batch: Sequence[Message]
    ) -> list[SendResult]:
        (message,) = batch
        data = response.get("data")
        message_id = data.get("id") if isinstance(data, dict) else None
        if message_id in (None, ""):
            # Accepted, but with nothing to look it up by later.
            return [SendResult(message)]
        return [SendResult(message, provider_message_id=str(message_id))]

    # Status: read the history until every message asked about has been seen.

    def lookup_statuses(self, messages: Sequence[Message]) -> list[StatusUpdate]:
        updates: list[StatusUpdate] = []
        for channel, path, page_param in (
            (Channel.SMS, "/api/sms/", "currentPage"),
            (Channel.WHATSAPP, "/api/whatsapp/", "page"),
        ):
            wanted = {m.provider_message_id: m for m in messages if m.channel == channel}
            wanted.pop("", None)
            if wanted:
                updates += self._read_history(path, page_param, wanted)
        return updates

    def _read_history(
        self, path: str, page_param: str, wanted: dict[str, Message]
    ) -> list[StatusUpdate]:
        updates = []
        max_pages = int(self.account.options.get("history_pages", 20))
        oldest = min((m.sent_at for m in wanted.values() if m.sent_at), default=None)
        for page in range(1, max_pages + 1):
            params = {page_param: page, "limit": HISTORY_PAGE_SIZE}
            body = self._call("GET", path, sends=False, params=params)
            entries = _history_entries(body.get("data"))
            for entry in entries:
                message = wanted.pop(str(entry.get("id", "")), None)
                if message is None:
                    continue
                update = looked_up(
                    message,
                    str(entry.get("state", "")),
                    entry,
                    provider="Buzzbip",
                    delivered=DELIVERED_STATES,
                    failed=FAILED_STATES,
                    private=("message", "number", "phone_number"),
                )
                if update is not None:
                    updates.append(update)
            if not wanted or len(entries) < HISTORY_PAGE_SIZE:
                break
            # Newest first: once a page ends before our oldest send, the rest is older still.
            last = _parse_sent_date(entries[-1].get("sent_date"))
            if oldest is not None and last is not None and last < oldest - _HOUR:
                break
        return updates

    def can_find(self, message: Message) -> bool:
        return message.channel == Channel.SMS  # the WhatsApp history has no text to match by

    def find_sent(self, messages: Sequence[Message]) -> dict[int, str]:
        """Find each SMS in the history by number and text, sent after it was queued."""
        if any(m.channel != Channel.SMS for m in messages):
            raise RetryableError("WhatsApp sends in doubt cannot be matched in the history")
        wanted = {(m.phone, m.body): m for m in messages}
        oldest = min(m.created_at for m in messages) - _HOUR
        found: dict[int, str] = {}
        max_pages = int(self.account.options.get("history_pages", 20))
        for page in range(1, max_pages + 1):
            params = {"currentPage": page, "limit": HISTORY_PAGE_SIZE}
            entries = _history_entries(
                self._call("GET", "/api/sms/", sends=False, **{"params": params}).get("data")
            )
            for entry in entries:
                message = wanted.get((str(entry.get("number", "")), str(entry.get("message", ""))))
                sent = _parse_sent_date(entry.get("sent_date"))
                if (
                    message is not None
                    and message.pk not in found
                    and (sent is None or sent >= message.created_at - _HOUR)
                ):
                    found[message.pk] = str(entry.get("id", ""))
            last = _parse_sent_date(entries[-1].get("sent_date")) if entries else None
            if len(entries) < HISTORY_PAGE_SIZE or (last is not None and last < oldest):
                return found
        raise RetryableError(f"the history goes back further than {max_pages} pages")

    def check(self) -> str:
        self._token(force=True)
        self._call("GET", "/api/sms/", sends=False, params={"currentPage": 1, "limit": 1})
        return f"logged in as {self._token_key[1]}; API access enabled"

    # Authentication and JSend.

    def _call(self, method: str, path: str, *, sends: bool, **kwargs: Any) -> dict[str, Any]:
        """One request with a valid token; logs in again once if the token was refused."""
        token = ""
        for attempt in (1, 2):
            token = self._token(refused=token)
            response = self.client.request(
                method, path, sends=sends, headers={"Authorization": f"Bearer {token}"}, **kwargs
            )
            body = json_or_none(response)
            if isinstance(body, dict) and body.get("status") == "success":
                return body
            error = _error_from(response, body, sends)
            if _is_token_refused(response, body) and attempt == 1:
                continue
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    def _token(self, *, force: bool = False, refused: str = "") -> str:
        """A token to send with: the cached one unless it is missing, expiring or `refused`.

        One login at a time per process: threads sending at once (messaging.concurrency)
        wait for it and share what it gets rather than each logging in.
        """
        with _tokens_lock:
            cached = _tokens.get(self._token_key)
            fresh = cached is not None and time.monotonic() < cached[1]
            if cached is not None and fresh and not force and cached[0] != refused:
                return cached[0]
            return self._log_in()

    def _log_in(self) -> str:
        credentials = self.account.credentials
        if not credentials.get("username") or not credentials.get("password"):
            raise AccountError("Buzzbip needs a username and password", code="NO_CREDENTIALS")
        login = {"username": credentials["username"], "password": credentials["password"]}
        response = self.client.request("POST", "/api/login_check", sends=False, json=login)
        body = json_or_none(response)
        token = _login_token(body)
        if response.status_code != 200 or not token:
            error = _error_from(response, body, sends=False)
            if isinstance(error, RetryableError):
                raise error
            raise AccountError(f"Buzzbip login refused: {error.message}", code=error.code)
        expires = time.monotonic() + TOKEN_TTL_SECONDS - TOKEN_REFRESH_MARGIN
        _tokens[self._token_key] = (token, expires)
        return token


_HOUR = timedelta(hours=1)


def _login_token(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    data = body.get("data")
    token = body.get("token") or (data.get("token") if isinstance(data, dict) else "")
    return token if isinstance(token, str) else ""


def _is_token_refused(response: requests.Response, body: Any) -> bool:
    if _no_api_access(body):
        return False
    code = str(body.get("code", "")) if isinstance(body, dict) else ""
    return response.status_code == 401 or code == "401"


def _no_api_access(body: Any) -> bool:
    text = str(body.get("message", "")).lower() if isinstance(body, dict) else ""
    return "api access" in text or "hasapiaccess" in text


def _error_from(response: requests.Response, body: Any, sends: bool) -> ProviderError:
    """The JSend error (or a non-JSend answer) as the error class that says what to do."""
    http = response.status_code
    if not isinstance(body, dict):
        text = f"HTTP {http} with a body that is not JSend"
        if http == 429 or http == 503 or not sends:
            return RetryableError(text, code=f"HTTP_{http}", status_code=http)
        # A send answered by something other than Buzzbip (a proxy, a crash): it may have gone.
        return InDoubtError(text, code=f"HTTP_{http}", status_code=http)
    message = str(body.get("message") or body.get("status") or "error")
    code = str(body.get("code") or http)
    kwargs: dict[str, Any] = {"code": code, "status_code": http, "raw": body}
    lowered = message.lower()
    if _no_api_access(body):
        return AccountError(f"{NO_API_ACCESS} (Buzzbip said: {message})", **kwargs)
    if http == 429 or code == "429":
        return RetryableError(message, retry_after=retry_after(response), **kwargs)
    if http in (401, 403) or code in ("401", "403"):
        return AccountError(f"Buzzbip refused the account: {message}", **kwargs)
    if "template" in lowered:
        return AccountError(f"WhatsApp template problem: {message}", **kwargs)
    if http >= 500:
        return RetryableError(message, **kwargs)
    if http == 404:
        return AccountError(f"Buzzbip has no such route (check the base URL): {message}", **kwargs)
    # Anything else is about this message (invalid number, a missing field): fail it alone.
    return RecipientError(message, **kwargs)


def _history_entries(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, dict):
        for key in ("items", "data", "results", "history", "messages"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    if not isinstance(data, list):
        return []
    return [entry for entry in data if isinstance(entry, dict)]


def _parse_sent_date(value: Any) -> datetime | None:
    """Buzzbip's "YYYY-MM-DD HH:MM:SS" (UTC), or None when it is something else."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "T"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
