"""Herald's events as outbox rows: which are wanted, and what each one says.

`connect()` (ApiConfig.ready) follows every announcement of the lower layers
(contacts.events). Whether an event type has an active subscription is answered from
this process's memory, read again every INTEREST_SECONDS and at once after a
subscription is saved or deleted in this process: the sending path pays no query while
nobody subscribes, and a subscription made in one process is followed by every other
within INTEREST_SECONDS.

An announcement comes inside the transaction of the change it tells of; `record` writes
one WebhookDelivery per event and active subscription (one bulk INSERT), and nudges the
sender once that commits. Payloads follow Standard Webhooks' convention:
`{"type": ..., "timestamp": ..., "data": {...}}`. They carry phone numbers and reply
texts, which go to the subscriber's URL alone, never to a log.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Q
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from api.models import EventType, WebhookDelivery, WebhookSubscription, interest
from api.outgoing import delivery
from campaigns import events as campaign_events
from contacts import events as contact_events
from contacts.bulk import bulk_insert
from contacts.events import Announcement
from contacts.models import Contact, erasing
from messaging import events as message_events
from messaging.models import Link

#: What an outbox row is written with (the rest is empty until it is tried).
OUTBOX_COLUMNS = (
    "subscription_id",
    "event_id",
    "event_type",
    "payload",
    "status",
    "attempts",
    "last_error",
    "next_attempt_at",
    "created_at",
)
#: A payload whose contact was erased (GDPR) is replaced by this.
ERASED_PAYLOAD = '{"erased":true}'


def wanted(event_type: str) -> bool:
    """Whether an active subscription asks for `event_type` (from memory, mostly)."""
    return interest.wants(event_type)


def forget_interest(*args: Any, **kwargs: Any) -> None:
    """Read which event types are wanted afresh next time (a subscription changed)."""
    interest.forget()


def record(event_type: str, items: Iterable[dict[str, Any]]) -> int:
    """One outbox row per event (`items`: each one's data) and active subscription to
    `event_type`, in the caller's transaction; the sender is nudged once it commits."""
    subscribers = WebhookSubscription.objects.listening_to(event_type)
    if not subscribers:
        return 0
    now = timezone.now()
    stamp = _iso(now)
    at = connection.ops.adapt_datetimefield_value(now)
    pending = WebhookDelivery.Status.PENDING
    rows = []
    for data in items:
        event_id = f"msg_{uuid.uuid4().hex}"
        body = json.dumps(
            {"type": event_type, "timestamp": stamp, "data": data},
            cls=DjangoJSONEncoder,
            separators=(",", ":"),
        )
        rows += [(pk, event_id, event_type, body, pending, 0, "", at, at) for pk in subscribers]
    # COPY on PostgreSQL: bulk_create's per-field work was most of what a move paid for it.
    bulk_insert(WebhookDelivery._meta.db_table, OUTBOX_COLUMNS, rows)
    if rows:
        transaction.on_commit(delivery.nudge)
    return len(rows)


# What each announcement says.


def on_message_moved(sender: Any, signal: Any, rows: list[tuple[Any, ...]], **kwargs: Any) -> None:
    status = signal.name.partition(".")[2]
    record(signal.name, [message_data(status, row) for row in rows])


def message_data(status: str, row: tuple[Any, ...]) -> dict[str, Any]:
    """A moved message's row (messaging.events.MESSAGE_FIELDS) as the payload's data."""
    values = dict(zip(message_events.MESSAGE_FIELDS, row, strict=True))
    return {
        "message_id": values["id"],
        "status": status,
        "campaign_id": values["campaign"],
        "contact_id": values["contact"],
        "phone": values["phone"],
        "channel": values["channel"],
        "provider_message_id": values["provider_message_id"] or None,
        "error_code": values["error_code"] or None,
        "test": bool(values["is_test"]),
    }


def on_inbound(sender: Any, signal: Any, inbound: Any, **kwargs: Any) -> None:
    record(
        signal.name,
        [
            {
                "inbound_id": inbound.pk,
                "phone": inbound.phone,
                "to": inbound.to,
                "channel": inbound.channel,
                "body": inbound.body,
                "body_truncated": inbound.body_truncated,
                "received_at": inbound.received_at,
                "contact_id": inbound.contact_id,
                "campaign_id": inbound.campaign_id,
                "in_reply_to_message_id": inbound.answers_id,
                "action": inbound.action,
                "provider_account": inbound.provider_account.name,
            }
        ],
    )


def on_opt_out(sender: Any, signal: Any, entries: list[tuple[Any, ...]], **kwargs: Any) -> None:
    phones = {entry[0] for entry in entries}
    contacts = dict(Contact.objects.filter(phone__in=phones).values_list("phone", "pk"))
    record(
        signal.name,
        [
            {
                "phone": phone,
                "channel": channel,
                "source": source,
                "contact_id": contacts.get(phone),
                "created_at": created_at,
            }
            for phone, channel, source, created_at in entries
        ],
    )


def on_click(
    sender: Any, signal: Any, code: str, clicked_at: datetime, agent: str, **kwargs: Any
) -> None:
    """The link's message is looked up here, only when someone follows clicks."""
    found = (
        Link.objects.filter(code=code)
        .values_list(
            "url", "message_id", "message__campaign_id", "message__contact_id", "message__phone"
        )
        .first()
    )
    if found is None:
        return
    url, message_id, campaign_id, contact_id, phone = found
    data = {
        "link": code,
        "url": url,
        "message_id": message_id,
        "campaign_id": campaign_id,
        "contact_id": contact_id,
        "phone": phone,
        "device": agent,
        "clicked_at": clicked_at,
    }
    record(signal.name, [data])


def on_campaign_moved(sender: Any, signal: Any, transition: Any, **kwargs: Any) -> None:
    campaign = transition.campaign
    record(
        signal.name,
        [
            {
                "campaign_id": campaign.pk,
                "name": campaign.name,
                "from": transition.from_status,
                "to": transition.to_status,
                "action": transition.action,
                "by": transition.by.get_username() if transition.by else None,
                "note": transition.note,
                "at": transition.at,
            }
        ],
    )


def erase_deliveries(sender: Any, phones: list[str], **kwargs: Any) -> dict[str, int]:
    """A GDPR erasure: deliveries that name the number lose their payload; those not yet
    delivered never will be."""
    mentions = Q()
    for phone in phones:
        mentions |= Q(payload__contains=json.dumps(phone))
    if not phones:
        return {"webhook deliveries": 0}
    named = WebhookDelivery.objects.filter(mentions)
    named.filter(status=WebhookDelivery.Status.PENDING).update(
        status=WebhookDelivery.Status.FAILED, last_error="its contact was erased"
    )
    return {"webhook deliveries": named.update(payload=ERASED_PAYLOAD)}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def connect() -> None:
    """Follow every announcement that is an event type (ApiConfig.ready)."""
    follows: dict[Announcement, Callable[..., Any]] = {
        message_events.message_sent: on_message_moved,
        message_events.message_delivered: on_message_moved,
        message_events.message_failed: on_message_moved,
        message_events.inbound_received: on_inbound,
        contact_events.opted_out: on_opt_out,
        message_events.link_clicked: on_click,
        campaign_events.status_changed: on_campaign_moved,
    }
    assert {a.name for a in follows} == set(EventType.values), "an event type nobody announces"
    for announcement, receiver in follows.items():
        announcement.follow(receiver, wanted)
    for signal in (post_save, post_delete):
        signal.connect(forget_interest, sender=WebhookSubscription, dispatch_uid="api.interest")
    erasing.connect(erase_deliveries, dispatch_uid="api.outgoing.erase_deliveries")
