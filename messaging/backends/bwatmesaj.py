"""Bwatmesaj: Bearer token, identical bodies batched as comma-separated recipients.

Contract (../shared/providers/bwatmesaj.txt):

- `Authorization: Bearer <api token>` and `Accept: application/json` on every
  request (without the Accept header the API answers like a web page).
- `POST /api/v3/sms/send` {recipient: "4479...,4479...", sender_id, type: "plain",
  message}: one request carries every recipient of one identical body.
- `sender_id` is a number (with its country code) or at most 11 letters and
  digits; checked before anything is sent.
- Answers are {"status": "success", "data": ...} or {"status": "error", "message"}.
- `GET /api/v3/sms/{uid}` for a message's status; `GET /api/v3/sms` (the list,
  newest first, paginated) for `provider check` and to find a send whose answer was
  lost (it has no uid yet) by number and text.
- Replies: the docs say the list holds inbound and outbound messages but not how to
  tell them apart, so an entry counts as inbound when a direction-like field
  (INBOUND_KEYS) says so in any of a few spellings (INBOUND_VALUES); an entry that says
  nothing is taken for one of ours and never becomes a reply. `fetch_inbound` walks the
  list from the newest down to a high-water mark (see InboxCursor).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests
from django.utils import timezone

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

if TYPE_CHECKING:
    from messaging.inbound import Incoming

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 100
ALPHANUMERIC_SENDER = re.compile(r"[A-Za-z0-9]{1,11}")
NUMERIC_SENDER = re.compile(r"\+?[0-9]{3,15}")
NAMED_NUMBER = re.compile(r"\+?([0-9]{6,15})")

DELIVERED_STATES = {"delivered"}
FAILED_STATES = {"failed", "undelivered", "rejected", "expired"}
#: Words in an error message that make it about the account rather than one number.
ACCOUNT_WORDS: tuple[str, ...] = (
    "unauthenticated",
    "unauthorized",
    "sufficient unit",
    "balance",
    "credit",
)
ACCOUNT_WORDS += ("sender", "permission", "suspended", "token")
#: Fields of a list entry that may say which way it went (the docs name none) ...
INBOUND_KEYS = ("direction", "message_direction", "sms_direction", "type")
#: ... and the values that make it a reply ("type" is "plain" on the messages we send).
INBOUND_VALUES = frozenset({"inbound", "incoming", "in", "received", "receive", "mo"})
#: The first walk of an account goes back this far (the account's `inbound_lookback_days`).
INBOUND_LOOKBACK_DAYS = 7


@dataclass
class InboxCursor:
    """How far the inbound walk of the SMS list has come; kept as JSON on the account.

    The list is newest first, and a new message only pushes older ones down to later
    pages. Every reply sent before `mark` (and those of `uids_at_mark`, sent within the
    mark's own second) has been fetched, so a walk from page 1 stops at the first entry
    older than the mark. A walk that runs out of pages first keeps `resume_page`: the
    next run goes on from there (re-reading what arrivals pushed down, which the uid
    dedupe makes harmless, and skipping nothing), and adopts `next_mark` once it is back
    down at `mark`.
    """

    mark: datetime
    uids_at_mark: set[str] = field(default_factory=set)
    resume_page: int = 0
    next_mark: datetime | None = None
    next_uids: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, raw: dict[str, Any], default_mark: datetime) -> InboxCursor:
        raw = raw if isinstance(raw, dict) else {}
        page = raw.get("resume_page")
        return cls(
            mark=_parse_time(raw.get("mark")) or default_mark,
            uids_at_mark=_uids(raw.get("uids_at_mark")),
            resume_page=page if isinstance(page, int) and page > 1 else 0,
            next_mark=_parse_time(raw.get("next_mark")),
            next_uids=_uids(raw.get("next_uids")),
        )

    def dump(self) -> dict[str, Any]:
        cursor: dict[str, Any] = {
            "mark": self.mark.isoformat(),
            "uids_at_mark": sorted(self.uids_at_mark),
        }
        if self.resume_page:
            cursor["resume_page"] = self.resume_page
            cursor["next_mark"] = self.next_mark.isoformat() if self.next_mark else None
            cursor["next_uids"] = sorted(self.next_uids)
        return cursor

    def seen(self, sent: datetime | None, uid: str) -> None:
        """Note an entry of this walk: the newest ones become the next mark."""
        if sent is None:
            return
        if self.next_mark is None or sent > self.next_mark:
            self.next_mark, self.next_uids = sent, {uid}
        elif sent == self.next_mark:
            self.next_uids.add(uid)

    def fetched_before(self, sent: datetime | None, uid: str) -> bool:
        return sent is not None and sent == self.mark and uid in self.uids_at_mark

    def caught_up(self) -> dict[str, Any]:
        """The walk reached the mark (or the list's end): the newest it saw is the mark."""
        if self.next_mark is not None and self.next_mark > self.mark:
            self.mark, self.uids_at_mark = self.next_mark, self.next_uids
        elif self.next_mark == self.mark:
            self.uids_at_mark |= self.next_uids
        self.resume_page, self.next_mark, self.next_uids = 0, None, set()
        return self.dump()

    def stopped_at(self, page: int) -> dict[str, Any]:
        self.resume_page = page
        return self.dump()


class BwatmesajBackend(BaseBackend):
    channels = frozenset({Channel.SMS})
    max_batch = DEFAULT_BATCH
    supports_status_lookup = True
    lookup_batch = 1  # a request per message: one that fails holds up no other
    supports_reconcile = True
    reconcile_batch = 500  # the SMS list is read once for all of them
    supports_inbound_polling = True
    credential_keys = ("api_token",)
    option_keys = (
        "batch_size",
        "connect_timeout",
        "read_timeout",
        "status_poll_after",
        "history_pages",
        "concurrency",
        "inbound_lookback_days",
    )
    default_base_url = "https://main.bwatmesaj.com"

    def __init__(self, account: Any) -> None:
        super().__init__(account)
        headers = {
            "Authorization": f"Bearer {account.credentials.get('api_token', '')}",
            "Accept": "application/json",
        }
        self.client = ProviderClient(account, account.base_url or self.default_base_url, headers)
        self.batch_size = max(1, int(account.options.get("batch_size", DEFAULT_BATCH)))

    @classmethod
    def validate_sender(cls, sender: str) -> str | None:
        if ALPHANUMERIC_SENDER.fullmatch(sender) or NUMERIC_SENDER.fullmatch(sender):
            return None
        return (
            f"Bwatmesaj sender ID {sender!r} must be a phone number with its country code "
            "or at most 11 letters and digits (no spaces)"
        )

    def _batches(self, messages: Sequence[Message]) -> Iterator[Sequence[Message]]:
        """One request per identical (sender, body), up to batch_size recipients each."""
        groups: dict[tuple[str, str], list[Message]] = {}
        for message in messages:
            groups.setdefault((message.sender, message.body), []).append(message)
        for group in groups.values():
            for start in range(0, len(group), self.batch_size):
                yield group[start : start + self.batch_size]

    def build_payload(self, batch: Sequence[Message]) -> dict[str, str]:
        first = batch[0]
        if not self.account.credentials.get("api_token"):
            raise AccountError("Bwatmesaj needs an api_token", code="NO_CREDENTIALS")
        if first.channel != Channel.SMS:
            raise AccountError("Bwatmesaj sends SMS only", code="CHANNEL_UNSUPPORTED")
        problem = self.validate_sender(first.sender)
        if problem:
            raise AccountError(problem, code="INVALID_SENDER_ID")
        return {
            "recipient": ",".join(m.phone.lstrip("+") for m in batch),
            "sender_id": first.sender,
            "type": "plain",
            "message": first.body,
        }

    def post_to_provider(self, payload: dict[str, str], batch: Sequence[Message]) -> Any:
        return self.client.request("POST", "/api/v3/sms/send", sends=True, json=payload)

    def parse_response(
        self, response: requests.Response, batch: Sequence[Message]
    ) -> list[SendResult]:
        body = json_or_none(response)
        ok = response.status_code == 200 and isinstance(body, dict)
        if ok and body.get("status") == "success":
            return self._accepted(body.get("data"), batch)
        error = error_from(response, body, sends=True)
        named = _named_number(error.message)
        if isinstance(error, RecipientError) and named and len(batch) > 1:
            # The whole request was refused for one number: fail that one, the rest go again.
            again = RetryableError("sent again without a refused number", code="BATCH_REFUSED")
            again.retry_after = 0
            return [
                SendResult(m, error=error if m.phone.lstrip("+") == named else again) for m in batch
            ]
        raise error

    def _accepted(self, data: Any, batch: Sequence[Message]) -> list[SendResult]:
        items = data if isinstance(data, list) else [data]
        ids_by_number = {}
        for item in items:
            if isinstance(item, dict) and item.get("uid"):
                ids_by_number[str(item.get("to", "")).lstrip("+")] = str(item["uid"])
        if len(batch) == 1 and len(ids_by_number) == 1:
            return [SendResult(batch[0], provider_message_id=next(iter(ids_by_number.values())))]
        return [
            SendResult(m, provider_message_id=ids_by_number.get(m.phone.lstrip("+"), ""))
            for m in batch
        ]

    def lookup_statuses(self, messages: Sequence[Message]) -> list[StatusUpdate]:
        updates = []
        for message in messages:
            if not message.provider_message_id:
                continue
            path = f"/api/v3/sms/{message.provider_message_id}"
            response = self.client.request("GET", path, sends=False)
            body = json_or_none(response)
            if response.status_code == 404:
                continue
            if response.status_code != 200 or not isinstance(body, dict):
                raise error_from(response, body, sends=False)
            if body.get("status") != "success" or not isinstance(body.get("data"), dict):
                raise error_from(response, body, sends=False)
            data = body["data"]
            update = looked_up(
                message,
                str(data.get("status", "")),
                data,
                provider="Bwatmesaj",
                delivered=DELIVERED_STATES,
                failed=FAILED_STATES,
                private=("to", "message"),
            )
            if update is not None:
                updates.append(update)
        return updates

    def find_sent(self, messages: Sequence[Message]) -> dict[int, str]:
        """Find each send in doubt in the SMS list by number and text, sent after it was queued.

        A send whose answer was lost has no uid to ask `GET /api/v3/sms/{uid}` about, so
        the list (newest first, paginated) is read until it goes back past the oldest.
        """
        wanted = {(m.phone.lstrip("+"), m.body): m for m in messages}
        oldest = min(m.created_at for m in messages) - _HOUR
        found: dict[int, str] = {}
        max_pages = int(self.account.options.get("history_pages", 40))
        for page in range(1, max_pages + 1):
            entries, last_page = self._list_page(page)
            for entry in entries:
                message = wanted.get(
                    (str(entry.get("to", "")).lstrip("+"), str(entry.get("message", "")))
                )
                sent = _parse_time(entry.get("sent_at"))
                if (
                    message is not None
                    and message.pk not in found
                    and entry.get("uid")
                    and (sent is None or sent >= message.created_at - _HOUR)
                ):
                    found[message.pk] = str(entry["uid"])
            last = _parse_time(entries[-1].get("sent_at")) if entries else None
            if not entries or page >= last_page or (last is not None and last < oldest):
                return found
        raise RetryableError(f"the SMS list goes back further than {max_pages} pages")

    def fetch_inbound(
        self, cursor: dict[str, Any], page_budget: int
    ) -> tuple[list[Incoming], dict[str, Any]]:
        """Replies newer than the cursor's mark, newest first, reading at most page_budget
        pages (InboxCursor says how a walk cut short resumes without skipping any)."""
        days = self.account.options.get("inbound_lookback_days", INBOUND_LOOKBACK_DAYS)
        lookback = timedelta(days=float(days))
        state = InboxCursor.load(cursor, default_mark=timezone.now() - lookback)
        page = state.resume_page or 1
        found: list[Incoming] = []
        for _ in range(max(1, page_budget)):
            entries, last_page = self._list_page(page)
            for entry in entries:
                sent, uid = _entry_time(entry), str(entry.get("uid") or "").strip()
                if sent is not None and sent < state.mark:
                    return self._fetched(found, state.caught_up())
                state.seen(sent, uid)
                if uid and not state.fetched_before(sent, uid) and is_inbound(entry):
                    found.append(_incoming(entry, uid, sent))
            if not entries or page >= last_page:
                return self._fetched(found, state.caught_up())
            page += 1
        return self._fetched(found, state.stopped_at(page))

    def _fetched(
        self, found: list[Incoming], cursor: dict[str, Any]
    ) -> tuple[list[Incoming], dict[str, Any]]:
        if found or cursor.get("resume_page"):
            logger.info(
                "%s: %d inbound message(s) fetched%s",
                self.account.name,
                len(found),
                f"; resuming at page {cursor['resume_page']}" if "resume_page" in cursor else "",
            )
        return found, cursor

    def _list_page(self, page: int) -> tuple[list[dict[str, Any]], int]:
        """One page of `GET /api/v3/sms`: its entries and the number of the last page."""
        response = self.client.request("GET", "/api/v3/sms", sends=False, params={"page": page})
        body = json_or_none(response)
        ok = response.status_code == 200 and isinstance(body, dict)
        if not ok or body.get("status") != "success":
            raise error_from(response, body, sends=False)
        data = body.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise RetryableError("Bwatmesaj's SMS list came back without its entries")
        entries = [entry for entry in data["data"] if isinstance(entry, dict)]
        try:
            last_page = int(data.get("last_page") or page)
        except (TypeError, ValueError, OverflowError):  # OverflowError: 1e999 reads as inf
            last_page = page
        return entries, last_page

    def check(self) -> str:
        response = self.client.request("GET", "/api/v3/sms", sends=False)
        body = json_or_none(response)
        if response.status_code != 200 or not isinstance(body, dict):
            raise error_from(response, body, sends=False)
        if body.get("status") != "success":
            raise error_from(response, body, sends=False)
        return "api token accepted"


def error_from(response: requests.Response, body: Any, *, sends: bool) -> ProviderError:
    http = response.status_code
    if 300 <= http < 400:
        return AccountError(
            f"Bwatmesaj answered HTTP {http} with a redirect to its login page: "
            "the api token was not accepted as an API client",
            code=f"HTTP_{http}",
            status_code=http,
        )
    if not isinstance(body, dict):
        text = f"HTTP {http} with a body that is not Bwatmesaj JSON"
        if http in (429, 503) or not sends:
            return RetryableError(text, code=f"HTTP_{http}", status_code=http)
        if http in (401, 403, 404):
            return AccountError(text, code=f"HTTP_{http}", status_code=http)
        return InDoubtError(text, code=f"HTTP_{http}", status_code=http)
    message = str(body.get("message") or "error")
    kwargs: dict[str, Any] = {"code": f"HTTP_{http}", "status_code": http, "raw": body}
    lowered = message.lower()
    if http == 429:
        return RetryableError(message, retry_after=retry_after(response), **kwargs)
    if http >= 500:
        return RetryableError(message, **kwargs)
    if http in (401, 403) or any(word in lowered for word in ACCOUNT_WORDS):
        return AccountError(f"Bwatmesaj refused the account: {message}", **kwargs)
    if http == 404:
        return AccountError(f"Bwatmesaj has no such route (check base URL): {message}", **kwargs)
    return RecipientError(message, **kwargs)


_HOUR = timedelta(hours=1)


def _parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time from the list (UTC when it names no zone), or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
        # In UTC now: an offset that pushes year 1 or 9999 out of range is caught here.
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def is_inbound(entry: dict[str, Any]) -> bool:
    """Whether a list entry is a message someone sent us (see INBOUND_KEYS)."""
    return any(str(entry.get(key) or "").strip().lower() in INBOUND_VALUES for key in INBOUND_KEYS)


def _incoming(entry: dict[str, Any], uid: str, sent: datetime | None) -> Incoming:
    from messaging.inbound import Incoming

    sender = str(entry.get("from") or "").strip()
    digits = sender.removeprefix("+")
    return Incoming(
        channel=Channel.SMS,
        phone=f"+{digits}" if digits.isascii() and digits.isdigit() else sender,
        body=str(entry.get("message") or ""),
        provider_message_id=uid,
        to=str(entry.get("to") or ""),
        received_at=sent,
    )


def _entry_time(entry: dict[str, Any]) -> datetime | None:
    return _parse_time(entry.get("sent_at") or entry.get("received_at") or entry.get("created_at"))


def _uids(value: Any) -> set[str]:
    return {str(uid) for uid in value} if isinstance(value, list) else set()


def _named_number(text: str) -> str:
    match = NAMED_NUMBER.search(text)
    return match.group(1) if match else ""
