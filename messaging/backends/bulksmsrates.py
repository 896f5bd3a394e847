"""BulkSMSRates: API key + secret, single and 10,000-recipient bulk sends, coded errors.

Contract (../shared/providers/bulksmsrates.txt):

- `X-API-Key` and `X-API-Secret` on every request; `X-Sandbox: true` when the
  account's `sandbox` option is on (nothing is really sent or charged).
- `POST /v1/sms/send` {to, from, body, client_ref} for one message; our
  client_ref makes a repeat of an accepted send come back as 409 CONFLICT
  instead of a second message.
- `POST /v1/sms/bulk` {recipients: [{to, variables}], from, body, client_ref},
  up to 10,000 recipients a request: one request (one rate-limit token) per
  chunk. Herald renders every message itself (defaults, segments and the cost
  the marketer was shown), so identical bodies go as they are and personalised
  ones as the per-recipient variable `text` of the body `{{text}}`. The answer
  counts recipients and names the batch but not per-recipient ids: delivery
  reports are matched by number (messaging.webhooks.bulksmsrates).
- `POST /v1/whatsapp/send` with an approved template and its ordered parameters; a
  message with no template (a reply, never a campaign's) goes as Meta-style free text
  {"type": "text", "text": {"body"}}, which WhatsApp takes only inside the 24 h window
  of the customer's last message: outside it the refusal fails that message.
- `GET /v1/whatsapp/conversations`: the numbers whose window is open now.
- `GET /v1/billing/balance`: the wallet (`balance()`, `provider check`).
- `GET/POST /v1/settings/webhooks`, `PATCH/DELETE /v1/settings/webhooks/{id}`: Herald's
  endpoint, kept registered by `manage.py provider webhooks` (`ensure_webhook`).
- Errors are {"error": {"code", "message", "details"}}; each documented code
  maps to the class that tells the engine what to do (ERRORS below).
- `GET /v1/sms/{id}` for status; signed webhooks (messaging.webhooks.bulksmsrates).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import requests
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from contacts.models import Channel
from messaging.backends.base import Balance, BaseBackend, SendResult, StatusUpdate, looked_up
from messaging.exceptions import (
    AccountError,
    InDoubtError,
    ProviderError,
    RecipientError,
    RetryableError,
)
from messaging.http import ProviderClient, json_or_none, retry_after
from messaging.models import Message

MAX_BULK = 10_000
MAX_LOG_PAGES = 5
#: Pages of 500 read from a list endpoint (conversations, webhooks) before giving up.
MAX_LIST_PAGES = 20
#: The events Herald's endpoint takes (messaging.webhooks.bulksmsrates), all of the docs'.
WEBHOOK_EVENTS = (
    "dlr",
    "opt_out",
    "campaign.completed",
    "campaign.failed",
    "balance.low",
    "whatsapp.message",
)
#: Free text to a number whose 24 h WhatsApp window is closed. Not in the docs (they show
#: template sends only); our fake gateway answers it, 422, and a real refusal of another
#: code still lands on RecipientError by its 4xx status.
OUTSIDE_WINDOW = "OUTSIDE_CONVERSATION_WINDOW"
PERSONALISED_BODY = "{{text}}"

#: Every documented error code -> the class that says what the engine does about it.
ERRORS: dict[str, type[ProviderError]] = {
    "VALIDATION_ERROR": RecipientError,
    "INVALID_PHONE_NUMBER": RecipientError,
    "INVALID_SENDER_ID": AccountError,
    "MESSAGE_TOO_LONG": RecipientError,
    "UNAUTHORIZED": AccountError,
    "ACCOUNT_LOCKED": AccountError,
    "FORBIDDEN": AccountError,
    "NOT_FOUND": AccountError,  # on a send: an unknown or unapproved template
    "CONFLICT": InDoubtError,  # this client_ref was accepted before
    "INSUFFICIENT_BALANCE": AccountError,
    "OPT_OUT": RecipientError,
    "BLACKLISTED": RecipientError,
    "RATE_LIMITED": RetryableError,
    "INTERNAL_ERROR": RetryableError,
    "SERVICE_UNAVAILABLE": RetryableError,
    OUTSIDE_WINDOW: RecipientError,
}


@dataclass(frozen=True)
class Webhook:
    """An endpoint registered at BulkSMSRates (its secret is shown only when created)."""

    id: str
    url: str
    events: tuple[str, ...]
    active: bool


@dataclass(frozen=True)
class WebhookSync:
    """What ensure_webhook did: "unchanged", "updated", "created" or "recreated"."""

    action: str
    webhook: Webhook
    #: The signing secret of a webhook just created (store it; it is never shown again).
    secret: str = ""


class BulkSMSRatesBackend(BaseBackend):
    channels = frozenset({Channel.SMS, Channel.WHATSAPP})
    max_batch = MAX_BULK
    supports_status_lookup = True
    lookup_batch = 1  # a request per message: one that fails holds up no other
    supports_webhooks = True
    supports_reconcile = True
    credential_keys = ("api_key", "api_secret", "webhook_secret")
    option_keys: ClassVar[tuple[str, ...]] = (
        "sandbox",
        "bulk",
        "bulk_size",
        "whatsapp_language",
        "connect_timeout",
        "read_timeout",
        "status_poll_after",
        "concurrency",
    )
    default_base_url = "https://app.bulksmsrates.com"

    def __init__(self, account: Any) -> None:
        super().__init__(account)
        credentials = account.credentials
        headers = {
            "X-API-Key": str(credentials.get("api_key", "")),
            "X-API-Secret": str(credentials.get("api_secret", "")),
        }
        if _truthy(account.options.get("sandbox")):
            headers["X-Sandbox"] = "true"
        self.client = ProviderClient(account, account.base_url or self.default_base_url, headers)
        self.claim_size = self.bulk_size() if _truthy(account.options.get("bulk", True)) else None

    def send_messages(self, messages: Sequence[Message]) -> list[SendResult]:
        if not self.client.headers["X-API-Key"] or not self.client.headers["X-API-Secret"]:
            missing = AccountError("BulkSMSRates needs api_key and api_secret", code="NO_KEYS")
            return [SendResult(m, error=missing) for m in messages]
        return super().send_messages(messages)

    def one_per_request(self) -> bool:
        return not _truthy(self.account.options.get("bulk", True))

    def _batches(self, messages: Sequence[Message]) -> Iterator[Sequence[Message]]:
        """WhatsApp one by one; SMS in bulk chunks per sender (or one by one if bulk is off)."""
        bulk = _truthy(self.account.options.get("bulk", True))
        by_sender: dict[str, list[Message]] = {}
        for message in messages:
            if message.channel == Channel.SMS and bulk:
                by_sender.setdefault(message.sender, []).append(message)
            else:
                yield [message]
        for group in by_sender.values():
            if len(group) == 1:
                yield group
                continue
            size = self.bulk_size()
            for start in range(0, len(group), size):
                yield group[start : start + size]

    def bulk_size(self) -> int:
        """Recipients per bulk request: the account's `bulk_size`, at most 10,000."""
        return max(1, min(int(self.account.options.get("bulk_size", MAX_BULK)), MAX_BULK))

    def build_payload(self, batch: Sequence[Message]) -> tuple[str, dict[str, Any]]:
        first = batch[0]
        if first.channel == Channel.WHATSAPP:
            return "/v1/whatsapp/send", self._whatsapp_payload(first)
        if len(batch) == 1:
            payload = {"to": first.phone, "from": first.sender, "body": first.body}
            return "/v1/sms/send", {**payload, "client_ref": first.client_ref}
        if all(m.body == first.body for m in batch):
            body = first.body
            recipients: list[dict[str, Any]] = [{"to": m.phone} for m in batch]
        else:
            body = PERSONALISED_BODY
            recipients = [{"to": m.phone, "variables": {"text": m.body}} for m in batch]
        bulk: dict[str, Any] = {"recipients": recipients, "from": first.sender, "body": body}
        return "/v1/sms/bulk", {**bulk, "client_ref": bulk_ref(batch)}

    def _whatsapp_payload(self, message: Message) -> dict[str, Any]:
        if not message.template_id:
            return self._whatsapp_text(message)
        template: dict[str, Any] = {
            "name": message.template_id,
            "language": str(self.account.options.get("whatsapp_language", "en")),
        }
        if message.template_params:
            parameters = [{"type": "text", "text": str(p)} for p in message.template_params]
            template["components"] = [{"type": "body", "parameters": parameters}]
        return {"to": message.phone, "type": "template", "template": template}

    @staticmethod
    def _whatsapp_text(message: Message) -> dict[str, Any]:
        """Free text: for a reply inside the window. A campaign's message is marketing sent
        outside any conversation, so it still needs its approved template."""
        if message.campaign_id is not None:
            raise AccountError("WhatsApp needs an approved template name", code="NO_TEMPLATE")
        if not message.body.strip():
            raise RecipientError("a WhatsApp free-text message needs a body", code="EMPTY_BODY")
        return {"to": message.phone, "type": "text", "text": {"body": message.body}}

    def post_to_provider(
        self, payload: tuple[str, dict[str, Any]], batch: Sequence[Message]
    ) -> tuple[str, requests.Response]:
        path, body = payload
        # A single send carries its message's client_ref: a repeat the provider already
        # has comes back 409 with its id, so an error answer may be asked again at once.
        idempotent = path == "/v1/sms/send"
        try:
            answer = self.client.request("POST", path, sends=True, idempotent=idempotent, json=body)
            return path, answer
        except InDoubtError as exc:
            # The provider keeps our client_ref: it is how find_sent looks this send up.
            exc.request_ref = str(body.get("client_ref", ""))
            raise

    def parse_response(
        self, response: tuple[str, requests.Response], batch: Sequence[Message]
    ) -> list[SendResult]:
        path, answer = response
        body = json_or_none(answer)
        if answer.status_code == 409 and len(batch) == 1:
            existing = _conflict_id(body)
            if existing:  # the provider already has this client_ref: that send was ours
                return [SendResult(batch[0], provider_message_id=existing)]
        if answer.status_code >= 300 or not isinstance(body, dict):
            error = error_from(answer, body, sends=True)
            if path == "/v1/sms/bulk" and isinstance(error, RecipientError):
                # Something in the batch was refused as a whole: find out which, one by one.
                return [result for m in batch for result in self.send_messages_singly(m)]
            turned_away = answer.status_code in (429, 503)
            if path == "/v1/sms/bulk" and isinstance(error, RetryableError) and not turned_away:
                # A bulk request has no per-message idempotency: it may have gone.
                error = InDoubtError(error.message, code=error.code, raw=error.raw)
            raise error
        if path == "/v1/sms/bulk":
            data = _data(body)
            batch_id = str(data.get("batch_id", "")) or "unknown"
            return [SendResult(m, provider_batch_id=batch_id) for m in batch]
        message_id = str(body.get("id") or body.get("messageId") or "")
        return [SendResult(batch[0], provider_message_id=message_id, cost=_cost(body))]

    def send_messages_singly(self, message: Message) -> list[SendResult]:
        try:
            path, payload = self.build_payload([message])
            return self.parse_response(self.post_to_provider((path, payload), [message]), [message])
        except ProviderError as exc:
            return [SendResult(message, error=exc)]

    def lookup_statuses(self, messages: Sequence[Message]) -> list[StatusUpdate]:
        updates = []
        for message in messages:
            message_id = message.provider_message_id
            if not message_id or message_id.startswith("sandbox-"):
                continue
            answer = self.client.request("GET", f"/v1/sms/{message_id}", sends=False)
            body = json_or_none(answer)
            if answer.status_code == 404:
                continue
            if answer.status_code != 200 or not isinstance(body, dict):
                raise error_from(answer, body, sends=False)
            data = _data(body) or body
            update = looked_up(
                message,
                str(data.get("status", "")),
                data,
                provider="BulkSMSRates",
                delivered={"delivered"},
                failed={"failed", "expired"},
                private=("to", "body"),
            )
            if update is not None:
                updates.append(update)
        return updates

    def find_sent(self, messages: Sequence[Message]) -> dict[int, str]:
        """Look each number up in the message log for the client_ref of its request."""
        found = {}
        for message in messages:
            refs = {message.client_ref, message.request_ref} - {""}
            claim = claim_prefix(message)
            for item in self._log_for(message.phone, since=message.created_at):
                ref = str(item.get("client_ref") or "")
                if ref in refs or (claim and ref.startswith(claim)):
                    found[message.pk] = str(item.get("message_id") or item.get("id") or "")
                    break
        return found

    def _log_for(self, phone: str, since: datetime) -> Iterator[dict[str, Any]]:
        """The account's messages to `phone`, newest first, back to `since`."""
        params: dict[str, Any] = {"destination": phone, "page_size": 500}
        for _ in range(MAX_LOG_PAGES):
            answer = self.client.request("GET", "/v1/reports/messages", sends=False, params=params)
            body = json_or_none(answer)
            if answer.status_code != 200 or not isinstance(body, dict):
                raise error_from(answer, body, sends=False)
            items = [i for i in body.get("data") or [] if isinstance(i, dict)]
            yield from items
            pagination = body.get("pagination")
            if not isinstance(pagination, dict):
                return
            oldest = parse_datetime(str(items[-1].get("created_at", ""))) if items else None
            if not pagination.get("has_more") or (oldest is not None and oldest < since):
                return
            params["cursor"] = pagination.get("cursor")
        raise RetryableError(f"more than {MAX_LOG_PAGES} pages of messages to one number")

    def check(self) -> str:
        balance = self.balance()
        sandbox = " (sandbox)" if "X-Sandbox" in self.client.headers else ""
        if balance is not None:
            return f"balance {balance.available / 100:.2f} {balance.currency} available{sandbox}"
        return f"credentials accepted{sandbox}"

    def balance(self) -> Balance | None:
        """`available` (balance plus credit), in pence or cents; None if it names no number."""
        data = _data(self._get("/v1/billing/balance"))
        available = data.get("available", data.get("balance"))
        if not isinstance(available, int) or isinstance(available, bool):
            return None
        threshold = data.get("low_balance_threshold")
        return Balance(
            available=available,
            currency=str(data.get("currency") or ""),
            low_threshold=threshold if _is_int(threshold) else None,
        )

    def open_conversations(self) -> set[str]:
        """Numbers whose 24 h window is open; one whose `expires_at` has passed is left out."""
        now = timezone.now()
        numbers = set()
        for item in self._list("/v1/whatsapp/conversations"):
            ends = _time(item.get("expires_at"))
            number = _e164(item.get("phone") or item.get("wa_id") or item.get("from"))
            if number and (ends is None or ends > now):
                numbers.add(number)
        return numbers

    # Webhook endpoints

    def webhooks(self) -> list[Webhook]:
        return [_webhook(item) for item in self._list("/v1/settings/webhooks")]

    def register_webhook(
        self, url: str, events: Sequence[str] = WEBHOOK_EVENTS
    ) -> tuple[Webhook, str]:
        """Create an endpoint: it and its signing secret (shown this once)."""
        # `sends`: a create is not asked again after a 5xx or a lost answer (that could make
        # two); running `provider webhooks` again finds what the first one made.
        payload = {"url": url, "events": list(events)}
        answer = self.client.request("POST", "/v1/settings/webhooks", sends=True, json=payload)
        body = json_or_none(answer)
        if answer.status_code not in (200, 201) or not isinstance(body, dict):
            raise error_from(answer, body, sends=True)
        data = _data(body)
        return _webhook(data), str(data.get("secret") or "")

    def update_webhook(
        self, webhook_id: str, *, events: Sequence[str] | None = None, active: bool | None = None
    ) -> Webhook:
        changes: dict[str, Any] = {}
        if events is not None:
            changes["events"] = list(events)
        if active is not None:
            changes["active"] = active
        path = f"/v1/settings/webhooks/{webhook_id}"
        answer = self.client.request("PATCH", path, sends=False, json=changes)
        body = json_or_none(answer)
        if answer.status_code != 200 or not isinstance(body, dict):
            raise error_from(answer, body, sends=False)
        return _webhook(_data(body))

    def delete_webhook(self, webhook_id: str) -> None:
        path = f"/v1/settings/webhooks/{webhook_id}"
        answer = self.client.request("DELETE", path, sends=False)
        if answer.status_code not in (200, 204, 404):  # 404: gone already
            raise error_from(answer, json_or_none(answer), sends=False)

    def ensure_webhook(self, url: str, events: Sequence[str] = WEBHOOK_EVENTS) -> WebhookSync:
        """Make `url` a live endpoint for `events`, changing only what differs.

        The provider shows a secret only when it creates the endpoint, so one we hold no
        secret for is deleted and made again (the caller stores the new secret). Whether
        a secret we hold is that endpoint's own cannot be asked: it is trusted.
        """
        existing = next((w for w in self.webhooks() if w.url == url), None)
        if existing is not None and not self.account.credentials.get("webhook_secret"):
            self.delete_webhook(existing.id)
            return WebhookSync("recreated", *self.register_webhook(url, events))
        if existing is None:
            return WebhookSync("created", *self.register_webhook(url, events))
        if set(existing.events) == set(events) and existing.active:
            return WebhookSync("unchanged", existing)
        return WebhookSync("updated", self.update_webhook(existing.id, events=events, active=True))

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = self.client.request("GET", path, sends=False, params=params)
        body = json_or_none(answer)
        if answer.status_code != 200 or not isinstance(body, dict):
            raise error_from(answer, body, sends=False)
        return body

    def _list(self, path: str) -> Iterator[dict[str, Any]]:
        """Every item of a cursor-paginated list, at most MAX_LIST_PAGES pages of 500."""
        params: dict[str, Any] = {"page_size": 500}
        for _ in range(MAX_LIST_PAGES):
            body = self._get(path, params)
            yield from (item for item in body.get("data") or [] if isinstance(item, dict))
            pagination = body.get("pagination")
            cursor = pagination.get("cursor") if isinstance(pagination, dict) else None
            if not isinstance(pagination, dict) or not pagination.get("has_more") or not cursor:
                return
            params["cursor"] = cursor
        raise RetryableError(f"{path} has more than {MAX_LIST_PAGES} pages")


def bulk_ref(batch: Sequence[Message]) -> str:
    """The client_ref of a bulk request, findable from any of its messages alone.

    It starts with the claim token the rows carry in the database from before the
    request left, so even after the worker died mid-request, find_sent can tell
    whether the provider got it.
    """
    first = batch[0]
    if first.claim_token is None:
        return f"batch-{first.client_ref}"
    return f"{claim_prefix(first)}{first.pk}"


def claim_prefix(message: Message) -> str:
    return f"claim-{message.claim_token.hex}-" if message.claim_token else ""


def error_from(response: requests.Response, body: Any, *, sends: bool) -> ProviderError:
    """The provider's error body as the error class that says what to do."""
    http = response.status_code
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return _error_without_body(response, sends)
    code = str(error.get("code") or f"HTTP_{http}")
    message = str(error.get("message") or code)
    kwargs: dict[str, Any] = {"code": code, "status_code": http, "raw": body}
    if code == "ACCOUNT_LOCKED":
        return AccountError(f"BulkSMSRates locked the account: {message}", **kwargs)
    if code == OUTSIDE_WINDOW:
        return RecipientError(
            "WhatsApp free text is refused outside the 24 h window of the customer's last "
            f"message: send an approved template instead ({message})",
            **kwargs,
        )
    cls = ERRORS.get(code)
    if cls is None:
        cls = RetryableError if http >= 500 or http == 429 else RecipientError
    if cls is RetryableError:
        return RetryableError(message, retry_after=retry_after(response), **kwargs)
    if cls is RecipientError:
        return RecipientError(message, opted_out=code == "OPT_OUT", **kwargs)
    return cls(message, **kwargs)


def _error_without_body(response: requests.Response, sends: bool) -> ProviderError:
    """An answer that is not BulkSMSRates' own (a proxy page, an empty body): judge by status."""
    http = response.status_code
    text = f"HTTP {http} without a BulkSMSRates error body"
    kwargs: dict[str, Any] = {"code": f"HTTP_{http}", "status_code": http}
    if http in (429, 503):
        return RetryableError(text, retry_after=retry_after(response), **kwargs)
    if http in (401, 403, 404, 405):
        return AccountError(f"{text}: check the account's base URL and keys", **kwargs)
    if not sends:
        return RetryableError(text, **kwargs)
    if http < 300 or http >= 500:
        # It may have been accepted (or the answer was lost on the way): never resend blindly.
        return InDoubtError(text, **kwargs)
    return RecipientError(text, **kwargs)


def _conflict_id(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    found = details.get("id") if isinstance(details, dict) else None
    return str(found) if found else ""


def _cost(body: dict[str, Any]) -> Decimal | None:
    try:
        return Decimal(str(body["cost"])) if "cost" in body else None
    except (InvalidOperation, ValueError):
        return None


def _data(body: dict[str, Any]) -> dict[str, Any]:
    data = body.get("data")
    return data if isinstance(data, dict) else {}


def _webhook(data: dict[str, Any]) -> Webhook:
    events = data.get("events")
    return Webhook(
        id=str(data.get("id") or ""),
        url=str(data.get("url") or ""),
        events=tuple(str(e) for e in events) if isinstance(events, list) else (),
        active=data.get("active", True) is True,
    )


def _e164(value: Any) -> str:
    """ "+" and the digits of a number given with or without its "+"; "" if not a number."""
    digits = str(value or "").strip().removeprefix("+")
    return f"+{digits}" if digits.isascii() and digits.isdigit() else ""


def _time(value: Any) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone), or None when it is not one."""
    try:
        moment = parse_datetime(str(value or ""))
    except ValueError:  # well formed but impossible, e.g. month 13
        return None
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
