"""Personal data in messages and delivery events: erased on request, purged when old.

Message rows are never deleted here: their status, segments, cost and times are
what campaign counts and reports are made of. What goes is what identifies or
speaks to a person: the body, template parameters, raw provider payloads and, on
erasure, the number itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import phonenumbers
from django.db import transaction
from django.db.models import CharField, F, Q, QuerySet, TextField, Value
from django.db.models.functions import Cast, Concat

from contacts.models import erasing
from messaging.models import InboundMessage, Link, Message, StatusEvent, WebhookEvent

BATCH = 2000
#: What an erased message's number becomes: unique per row (a campaign holds a number
#: once), and derived from nothing but the row's id.
ERASED_PHONE = Concat(Value("erased"), Cast(F("pk"), CharField()))
ERASED_PAYLOAD = {"erased": True}


def purgeable(messages: QuerySet[Message]) -> QuerySet[Message]:
    """Those of `messages` that still hold a body or template parameters."""
    return messages.exclude(body="", template_params=[])


def purge_content(messages: QuerySet[Message], batch: int = BATCH, dry_run: bool = False) -> int:
    """Blank bodies and template parameters, `batch` rows a transaction; returns rows blanked.

    `updated_at` is left alone: reports date a message that was never handed over by it.
    """
    if dry_run:
        return purgeable(messages).count()
    blanked = 0
    for ids in _id_batches(purgeable(messages), batch):
        with transaction.atomic():
            blanked += Message.objects.filter(pk__in=ids).update(body="", template_params=[])
            # Their short links stop leading anywhere (a destination may carry personal
            # data in its query); the click figures stay.
            Link.objects.filter(message_id__in=ids).exclude(url="").update(url="")
    return blanked


def purge_events(before: datetime, batch: int = BATCH, dry_run: bool = False) -> dict[str, int]:
    """Delete delivery events and webhook records received before `before`.

    Events of messages still waiting (pending, sending, in doubt) are kept, and webhook
    events a worker has not applied yet.
    """
    status_events = StatusEvent.objects.filter(received_at__lt=before).exclude(
        message__status__in=Message.UNFINISHED_STATUSES
    )
    webhook_events = WebhookEvent.objects.filter(received_at__lt=before, applied_at__isnull=False)
    if dry_run:
        return {"status events": status_events.count(), "webhook events": webhook_events.count()}
    return {
        "status events": _delete_in_batches(StatusEvent, status_events, batch),
        "webhook events": _delete_in_batches(WebhookEvent, webhook_events, batch),
    }


def purge_replies(before: datetime, batch: int = BATCH, dry_run: bool = False) -> int:
    """Blank the bodies of replies received before `before`; their action, campaign and
    times stay (reply and opt-out counts are made of them). Returns replies blanked."""
    old = InboundMessage.objects.filter(received_at__lt=before).exclude(body="")
    if dry_run:
        return old.count()
    blanked = 0
    for ids in _id_batches(old, batch):
        blanked += InboundMessage.objects.filter(pk__in=ids).update(body="")
    return blanked


def _delete_in_batches(model: Any, rows: QuerySet[Any], batch: int) -> int:
    deleted = 0
    for ids in _id_batches(rows, batch):
        deleted += model.objects.filter(pk__in=ids).delete()[0]
    return deleted


def _id_batches(rows: QuerySet[Any], batch: int) -> Iterator[list[int]]:
    """Ids of `rows` in pk order, `batch` at a time, read afresh after each (keyset paging)."""
    after = 0
    while True:
        ids = list(rows.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:batch])
        if not ids:
            return
        yield ids
        after = ids[-1]


def erase_messages(
    sender: Any, phones: list[str], contact_ids: list[int], **kwargs: Any
) -> dict[str, int]:
    """The messaging side of a GDPR erasure (connected to contacts' `erasing` signal).

    Messages keep their status, so campaign counts stay right; ones not sent yet are
    skipped as opted out. The table has no index on phone (it would slow every build),
    so this reads it once.
    """
    mine = Q(phone__in=phones) | Q(contact_id__in=contact_ids)
    messages = Message.objects.filter(mine).exclude(phone__startswith="erased")
    ids = list(messages.values_list("pk", flat=True))
    changed = {"messages": len(ids), "status events": 0, "short links": 0, "webhook events": 0}
    for chunk in (ids[i : i + BATCH] for i in range(0, len(ids), BATCH)):
        Message.objects.filter(pk__in=chunk).skip(Message.SkipReason.ERASED)
        Message.objects.filter(pk__in=chunk).update(
            phone=ERASED_PHONE,
            contact=None,
            body="",
            template_params=[],
            time_zones="",
            error_message="",
            provider_message_id="",
        )
        changed["status events"] += StatusEvent.objects.filter(message_id__in=chunk).delete()[0]
        changed["short links"] += (
            Link.objects.filter(message_id__in=chunk).exclude(url="").update(url="")
        )
    changed["webhook events"] = _scrub_webhook_events(phones)
    changed["replies"] = erase_replies(phones, contact_ids)
    return changed


def erase_replies(phones: list[str], contact_ids: list[int]) -> int:
    """Replies from erased numbers keep what they counted for (action, campaign), nothing
    that identifies or quotes the person."""
    mine = InboundMessage.objects.filter(Q(phone__in=phones) | Q(contact_id__in=contact_ids))
    return mine.update(
        phone=Concat(Value("erased"), Cast(F("pk"), CharField())),
        contact=None,
        body="",
        note="",
        keyword="",
        provider_message_id=Concat(Value("erased"), Cast(F("pk"), CharField())),
    )


def _scrub_webhook_events(phones: list[str]) -> int:
    """Callbacks name numbers in each provider's own way; all carry the national digits."""
    digits = {str(phonenumbers.parse(phone).national_number) for phone in phones}
    if not digits:
        return 0
    mentions = Q()
    for number in digits:
        mentions |= Q(raw_text__contains=number)
    events = WebhookEvent.objects.annotate(raw_text=Cast("raw", TextField())).filter(mentions)
    return WebhookEvent.objects.filter(pk__in=events.values("pk")).update(
        raw=ERASED_PAYLOAD, outcome=""
    )


erasing.connect(erase_messages, dispatch_uid="messaging.privacy.erase_messages")
