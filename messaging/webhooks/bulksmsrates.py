"""BulkSMSRates's webhook: delivery reports, STOP replies, inbound WhatsApp messages,
batch (campaign) outcomes and low-balance warnings: its signature, payload and events.

Each webhook carries X-Webhook-Signature, "sha256=" and the hex HMAC-SHA256 of
"<X-Webhook-Timestamp>.<body>" under the account's webhook_secret, and an X-Webhook-Id
that stays the same on retries; the body's "id" is the event's. Limits, replay window
and dedupe: messaging.webhooks.base.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from contacts.models import Channel
from contacts.phones import InvalidPhoneNumber, redact, to_e164
from messaging import balance
from messaging.backends.base import StatusUpdate
from messaging.inbound import Incoming, UnusableInbound, receive, record_opt_out
from messaging.models import Message, MessageQuerySet, ProviderAccount
from messaging.webhooks.base import EVENT_ID_MAX_LENGTH, SignedWebhookView


class BulkSMSRatesWebhookView(SignedWebhookView):
    """POST /webhooks/bulksmsrates/<account>/"""

    backend = ProviderAccount.Backend.BULKSMSRATES
    signature_header = "X-Webhook-Signature"
    timestamp_header = "X-Webhook-Timestamp"
    id_header = "X-Webhook-Id"

    def signature_matches(self, secret: str, signature: str, timestamp: str, body: bytes) -> bool:
        return hmac.compare_digest(signature.encode(), sign(secret, timestamp, body).encode())

    def event_name(self, payload: dict[str, Any]) -> str:
        return _text(payload, "event")

    def event_id(self, payload: dict[str, Any]) -> str:
        return event_id(payload)

    def apply(self, account: ProviderAccount, webhook_id: str, payload: dict[str, Any]) -> str:
        return BulkSMSRatesEvent(account, webhook_id, payload).apply()


def event_id(payload: dict[str, Any]) -> str:
    """The body's "id" (a UUID in the provider's examples), when it is one we can keep."""
    value = _text(payload, "id")
    return value if len(value) <= EVENT_ID_MAX_LENGTH else ""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Webhook-Signature BulkSMSRates sends for `body` at `timestamp`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


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
        if self.event == "whatsapp.message":
            return self.inbound(Channel.WHATSAPP)
        if self.event in ("campaign.completed", "campaign.failed"):
            return self.batch_finished()
        if self.event == "balance.low":
            return balance.report_low(self.account, self.data, source="balance.low webhook")
        if self.event in self.STATUSES:
            return self.status_report(self.STATUSES[self.event])
        return "ignored: unknown event type"

    def incoming(self, channel: str, sender: str) -> Incoming:
        """The reply in `data`. The docs show no payload for these events: we read `from`,
        `to`, `message_id` and `text` or `body` (a string, or Meta's {"body": ...})."""
        text = self.data.get("text", self.data.get("body"))
        if isinstance(text, dict):
            text = text.get("body")
        return Incoming(
            channel=channel,
            phone=sender,
            body=text if isinstance(text, str) else "",
            provider_message_id=_text(self.data, "message_id") or self.event_id(),
            to=_text(self.data, "to"),
            received_at=_parse_time(_text(self.data, "received_at"))
            or _parse_time(_text(self.payload, "created_at")),
        )

    def inbound(self, channel: str) -> str:
        sender = _text(self.data, "from")
        if not sender:
            return "ignored: no sender"
        try:
            outcome = receive(self.account, self.incoming(channel, sender))
        except UnusableInbound as unusable:
            return f"ignored: {unusable}"
        if outcome.duplicate:
            return f"reply {outcome.inbound.pk} already stored"
        return f"reply {outcome.inbound.pk}: {outcome.action}"

    def opt_out(self) -> str:
        """The recipient replied STOP: kept as their reply, opted out with source "reply"
        whatever words the provider passes on."""
        raw = (
            _text(self.data, "from") or _text(self.data, "destination") or _text(self.data, "phone")
        )
        try:
            phone = to_e164(raw)
        except InvalidPhoneNumber:
            return "ignored: unusable number"
        outcome = receive(self.account, self.incoming(Channel.SMS, phone))
        inbound = outcome.inbound
        if inbound.action != inbound.Action.OPT_OUT and not outcome.duplicate:
            record_opt_out(inbound, [Channel.SMS], by=None)
            inbound.action = inbound.Action.OPT_OUT
            inbound.note = f"{inbound.note}, reported by {self.account.name}"[:200]
            inbound.save(update_fields=["action", "note", "opt_out"])
        return f"reply {inbound.pk}: {inbound.note or 'opt_out'} {redact(phone)}"

    def batch_finished(self) -> str:
        """A bulk batch (a "campaign" at BulkSMSRates) finished or failed: our rows keep
        waiting for their own reports; say how many still do."""
        batch_id = next(
            (
                _text(self.data, key)
                for key in ("batch_id", "campaign_id", "id")
                if self.data.get(key)
            ),
            "",
        )
        if not batch_id:
            return f"{self.event}: no batch id"
        waiting = Message.objects.filter(
            provider_account=self.account,
            provider_batch_id=batch_id[:100],
            status__in=(Message.Status.SENT, Message.Status.IN_DOUBT),
        ).count()
        return f"{self.event} for batch {batch_id[:60]}: {waiting} messages await reports"

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
        return event_id(self.payload) or self.webhook_id

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
