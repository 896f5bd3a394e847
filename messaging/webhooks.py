"""Signed provider callbacks: verify, record once per webhook id, apply, answer fast.

Only authentication and transport problems are refused (4xx). A verified event we
cannot use is answered 200 "ignored": BulkSMSRates retries anything else three
times and then switches the webhook off for the whole account.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
import time
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from contacts.importing import storable_text
from contacts.models import Channel, OptOut
from contacts.phones import InvalidPhoneNumber, redact, to_e164
from messaging.backends.base import StatusUpdate
from messaging.models import Message, MessageQuerySet, ProviderAccount, WebhookEvent

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
MAX_CLOCK_SKEW_SECONDS = 300
# Deeper JSON than any real event, yet shallow enough that saving it never hits
# Python's recursion limit inside the ORM.
MAX_JSON_DEPTH = 32
SIGNATURE_HEADERS = ("X-Webhook-Signature", "X-Webhook-Timestamp", "X-Webhook-Id")
WEBHOOK_ID_MAX_LENGTH = WebhookEvent._meta.get_field("webhook_id").max_length or 150


@csrf_exempt
@require_POST
def bulksmsrates_webhook(request: HttpRequest, account: str) -> HttpResponse:
    """Delivery reports and STOP replies for one BulkSMSRates account."""
    provider_account = get_object_or_404(
        ProviderAccount, name=account, backend=ProviderAccount.Backend.BULKSMSRATES
    )
    secret = provider_account.credentials.get("webhook_secret")
    if not secret or not isinstance(secret, str):
        logger.warning("bulksmsrates webhook for %s refused: no webhook_secret", account)
        return _refusal(401, "webhook secret not configured")
    refusal = _check_request(request, secret)
    if refusal is not None:
        return refusal
    payload = _parse_payload(request.body)
    if payload is None:
        return _refusal(400, "body must be a JSON object")
    webhook_id = request.headers["X-Webhook-Id"]
    outcome = _apply_once(provider_account, webhook_id, payload)
    event = _loggable(payload.get("event"))
    if outcome is None:
        logger.info("bulksmsrates %s %s %s: duplicate", account, webhook_id, event)
        return JsonResponse({"status": "duplicate"})
    logger.info("bulksmsrates %s %s %s: %s", account, webhook_id, event, outcome)
    return JsonResponse({"status": "ok", "outcome": outcome})


def _refusal(status: int, reason: str) -> JsonResponse:
    return JsonResponse({"status": "error", "error": reason}, status=status)


def _check_request(request: HttpRequest, secret: str) -> HttpResponse | None:
    """The refusal for a request that is too big, not JSON, or not signed by `secret`."""
    try:
        declared_length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared_length = 0
    # Checked before reading the body, so an oversized one is never loaded.
    if declared_length > MAX_BODY_BYTES or len(request.body) > MAX_BODY_BYTES:
        return _refusal(413, f"body larger than {MAX_BODY_BYTES} bytes")
    if (request.content_type or "").lower() != "application/json":
        return _refusal(400, "Content-Type must be application/json")
    signature, timestamp, webhook_id = (request.headers.get(h, "") for h in SIGNATURE_HEADERS)
    if not (signature and timestamp and webhook_id):
        return _refusal(400, f"headers required: {', '.join(SIGNATURE_HEADERS)}")
    if len(webhook_id) > WEBHOOK_ID_MAX_LENGTH:
        return _refusal(400, "X-Webhook-Id too long")
    # Control characters (NUL above all) are refused by PostgreSQL, and no real id has them.
    if not webhook_id.isprintable():
        return _refusal(400, "X-Webhook-Id must be printable text")
    # Digits only: int() would also take signs, spaces and underscores.
    if not re.fullmatch(r"[0-9]{1,15}", timestamp):
        return _refusal(400, "X-Webhook-Timestamp must be unix seconds")
    if abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        return _refusal(401, "stale timestamp")
    if not hmac.compare_digest(signature.encode(), sign(secret, timestamp, request.body).encode()):
        return _refusal(401, "bad signature")
    return None


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Webhook-Signature BulkSMSRates sends for `body` at `timestamp`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def _parse_payload(body: bytes) -> dict[str, Any] | None:
    """The JSON object in `body`, or None when it is not one we can store."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(payload, dict) or not _storable(payload):
        return None
    return payload


def _storable(value: Any) -> bool:
    """False for JSON that the database would refuse: NUL characters, lone surrogates
    (Python's json reads "\\ud800", no database encodes it), NaN and infinities (json
    reads NaN, Infinity and 1e999; neither database's JSON does), absurd nesting."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return False
        if isinstance(item, str) and not storable_text(item):
            return False
        if isinstance(item, float) and not math.isfinite(item):
            return False
        if isinstance(item, dict):
            stack.extend((part, depth + 1) for pair in item.items() for part in pair)
        elif isinstance(item, list):
            stack.extend((part, depth + 1) for part in item)
    return True


def _apply_once(account: ProviderAccount, webhook_id: str, payload: dict[str, Any]) -> str | None:
    """Record and apply the event in one transaction; None when this webhook id was seen."""
    try:
        with transaction.atomic():
            record = WebhookEvent.objects.create(
                provider_account=account,
                webhook_id=webhook_id,
                event=_text(payload, "event")[:50],
                raw=payload,
            )
            outcome = BulkSMSRatesEvent(account, webhook_id, payload).apply()[:200]
            record.outcome = outcome
            record.save(update_fields=["outcome"])
    except IntegrityError:
        # Caught outside atomic() so PostgreSQL's aborted transaction is rolled back first.
        if WebhookEvent.objects.filter(provider_account=account, webhook_id=webhook_id).exists():
            return None
        raise
    return outcome


class BulkSMSRatesEvent:
    """One verified BulkSMSRates event, applied to our records; apply() says what it did."""

    STATUSES = {
        "message.queued": Message.Status.SENT,
        "message.sent": Message.Status.SENT,
        "message.delivered": Message.Status.DELIVERED,
        "message.failed": Message.Status.FAILED,
        "message.expired": Message.Status.FAILED,
    }

    def __init__(self, account: ProviderAccount, webhook_id: str, payload: dict[str, Any]) -> None:
        self.account = account
        self.webhook_id = webhook_id
        self.payload = payload
        self.event = _text(payload, "event")
        data = payload.get("data")
        self.data: dict[str, Any] = data if isinstance(data, dict) else {}

    def apply(self) -> str:
        if not isinstance(self.payload.get("data"), dict):
            return "ignored: data is not an object"
        if self.event == "opt_out":
            return self.opt_out()
        if self.event in self.STATUSES:
            return self.status_report(self.STATUSES[self.event])
        return "ignored: unknown event type"

    def opt_out(self) -> str:
        try:
            phone = to_e164(_text(self.data, "destination") or _text(self.data, "phone"))
        except InvalidPhoneNumber:
            return "ignored: unusable number"
        _entry, created = OptOut.objects.get_or_create(
            phone=phone,
            channel=Channel.SMS,
            defaults={
                "source": OptOut.Source.PROVIDER,
                "note": f"STOP reply reported by {self.account.name}",
            },
        )
        return f"opted out {redact(phone)}" if created else f"already opted out {redact(phone)}"

    def status_report(self, status: str) -> str:
        message = self.find_message()
        if message is None:
            return "ignored: unknown message"
        error_code, error_message = self.error()
        update = StatusUpdate(
            message,
            status,
            event_id=self.event_id(),
            occurred_at=self.occurred_at(status),
            error_code=error_code,
            error_message=error_message,
            raw=self.payload,
        )
        if message.apply_status(update):
            return f"message {message.client_ref} {status}"
        return f"message {message.client_ref} unchanged ({message.status})"

    def find_message(self) -> Message | None:
        """By the provider's id, then our client_ref, then the recipient of a bulk send."""
        mine = Message.objects.filter(provider_account=self.account)
        message_id = _text(self.data, "message_id")
        client_ref = _text(self.data, "client_ref")
        if message_id and (message := mine.filter(provider_message_id=message_id).first()):
            return message
        if client_ref and (message := mine.filter(client_ref=client_ref).first()):
            return message
        if not message_id:
            return None
        return self.find_bulk_recipient(mine, message_id)

    def find_bulk_recipient(self, mine: MessageQuerySet, message_id: str) -> Message | None:
        """A bulk send only gave us a batch id: match on the number, then keep the provider's id."""
        try:
            phone = to_e164(_text(self.data, "destination"))
        except InvalidPhoneNumber:
            return None
        message: Message | None = (
            mine.filter(
                phone=phone,
                status__in=(Message.Status.SENT, Message.Status.IN_DOUBT),
                provider_message_id="",
            )
            .exclude(provider_batch_id="")
            .order_by("-created_at", "-pk")
            .first()
        )
        max_length = Message._meta.get_field("provider_message_id").max_length or 0
        if message is not None and len(message_id) <= max_length:
            Message.objects.filter(pk=message.pk, provider_message_id="").update(
                provider_message_id=message_id
            )
        return message

    def event_id(self) -> str:
        event_id = _text(self.payload, "id")
        return event_id if 0 < len(event_id) <= WEBHOOK_ID_MAX_LENGTH else self.webhook_id

    def occurred_at(self, status: str) -> datetime:
        keys = ("delivered_at", "created_at") if status == Message.Status.DELIVERED else ()
        candidates = [_parse_time(_text(self.data, key)) for key in keys]
        candidates.append(_parse_time(_text(self.payload, "created_at")))
        return next((when for when in candidates if when is not None), timezone.now())

    def error(self) -> tuple[str, str]:
        """Our error code and message for a failure report; blank for anything else."""
        carrier_status = _text(self.data, "carrier_status")[:50]
        if self.event == "message.expired":
            code = "EXPIRED"
        elif self.event == "message.failed":
            code = carrier_status or "FAILED"
        else:
            return "", ""
        return code, f"carrier status {carrier_status}" if carrier_status else ""


def _text(mapping: dict[str, Any], key: str) -> str:
    """mapping[key] when it is a string; anything else in a payload counts as absent."""
    value = mapping.get(key)
    return value if isinstance(value, str) else ""


def _parse_time(text: str) -> datetime | None:
    try:
        parsed = parse_datetime(text)
        if parsed is None:
            return None
        if timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed, UTC)
        # Converting now catches offsets that push year 1 or 9999 out of range.
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _loggable(value: Any) -> str:
    """An event name fit for one log line, whatever the payload held."""
    return repr(value if isinstance(value, str) else type(value).__name__)[:60]
