"""The send engine's campaign side: build the audience into Message rows, then dispatch.

The Message rows are the truth; this code may be interrupted anywhere and run
again (by a repeated task or a second worker) without losing or doubling a message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import Campaign, TransitionNotAllowed
from campaigns.windows import Window, recipient_zones
from contacts.models import Channel, Contact, ErasedNumber, OptOut
from contacts.resources import bulk_insert, json_column, tune_bulk_transaction
from messaging.dispatch import release_until, send_claimed
from messaging.models import Message
from messaging.rendering import placeholders, render, segments_of

logger = logging.getLogger(__name__)

MATERIALISE_CHUNK = 5000
#: Audiences at least this big are built with reading and writing overlapped.
PIPELINE_FROM = 10_000
#: Most rows one worker holds at once (one BulkSMSRates request carries 10,000).
MAX_CLAIM = 10_000
E164 = re.compile(r"\+[1-9][0-9]{6,14}")

MESSAGE_COLUMNS = (
    "campaign_id",
    "contact_id",
    "provider_account_id",
    "channel",
    "phone",
    "sender",
    "body",
    "encoding",
    "segments",
    "cost",
    "client_ref",
    "time_zones",
    "provider_message_id",
    "provider_batch_id",
    "request_ref",
    "template_id",
    "template_params",
    "status",
    "skip_reason",
    "attempts",
    "next_attempt_at",
    "error_code",
    "error_message",
    "created_at",
    "updated_at",
)


def materialise(campaign: Campaign) -> dict[str, int]:
    """Snapshot the audience into Message rows, 5,000 contacts a statement.

    Each chunk commits with the campaign's progress mark (the last contact id done)
    under a lock on the campaign row, so an interrupted run resumes where it
    stopped and two workers never write the same chunk. Opted-out, invalid and
    repeated numbers, and recipients whose zones never share the send window, are
    kept as `skipped` with the reason, so the counts add up.

    For a large audience the next chunk is read and rendered while a second
    connection writes the last one, so the database's work and ours overlap; small
    ones, and any inside a caller's transaction (which a second connection could
    not see), are written one chunk after another.
    """
    while True:
        plan = _Plan(campaign)
        if connection.in_atomic_block or not _large(plan, campaign):
            done = _build(campaign, plan, write=_write_chunk)
        else:
            with ThreadPoolExecutor(1, thread_name_prefix="materialise") as writer:
                try:
                    done = _build(campaign, plan, write=partial(_submit, writer))
                finally:
                    writer.submit(_close_connection).result()
        if done:
            break
        # Another worker moved the mark under us: start again from where it is now.
    campaign.refresh_from_db(fields=["audience_stats", "materialised_at"])
    logger.info("campaign %s: materialised %s", campaign.pk, campaign.audience_stats)
    return campaign.audience_stats


def _close_connection() -> None:
    """Close the calling thread's own database connection (the writer's, there)."""
    connection.close()


def _large(plan: _Plan, campaign: Campaign) -> bool:
    """Whether enough is left to build that a second connection is worth its start-up."""
    mark = Campaign.objects.values_list("audience_stats", flat=True).get(pk=campaign.pk)
    left = plan.audience.filter(pk__gt={**EMPTY_STATS, **mark}["after"])
    return left[:PIPELINE_FROM].count() >= PIPELINE_FROM


Write = Callable[[int, int, list[tuple[Any, ...]], dict[str, int]], Any]


def _build(campaign: Campaign, plan: _Plan, write: Write) -> bool:
    """Read, render and write every chunk after the mark; False if the mark moved under us."""
    current = Campaign.objects.filter(pk=campaign.pk).values_list(
        "audience_stats", "materialised_at"
    )
    mark, finished = current.get()
    if finished is not None:
        return True
    stats = {**EMPTY_STATS, **mark}
    pending: Any = None
    while True:
        chunk = list(
            plan.audience.filter(pk__gt=stats["after"])
            .order_by("pk")
            .values_list(*plan.contact_columns)[:MATERIALISE_CHUNK]
        )
        done = {**stats, "after": chunk[-1][0]} if chunk else stats
        rows = plan.rows(chunk, done) if chunk else []
        if pending is not None and not _outcome(pending):
            return False
        if not chunk:
            return _finish(campaign.pk, stats)
        pending = write(campaign.pk, stats["after"], rows, done)
        stats = done


def _submit(writer: ThreadPoolExecutor, *args: Any) -> Future[bool]:
    return writer.submit(_write_chunk, *args)


def _outcome(pending: bool | Future[bool]) -> bool:
    return pending.result() if isinstance(pending, Future) else pending


def _write_chunk(
    campaign_id: int, expected_after: int, rows: list[tuple[Any, ...]], stats: dict[str, int]
) -> bool:
    """Insert one chunk and move the mark, if the mark is still where this chunk starts."""
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign_id)
        mark = {**EMPTY_STATS, **locked.audience_stats}["after"]
        if locked.materialised_at is not None or mark != expected_after:
            return False
        tune_bulk_transaction()
        bulk_insert(Message._meta.db_table, MESSAGE_COLUMNS, rows)
        Campaign.objects.filter(pk=campaign_id).update(audience_stats=stats)
    return True


def _finish(campaign_id: int, stats: dict[str, int]) -> bool:
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign_id)
        if locked.materialised_at is not None:
            return True
        if {**EMPTY_STATS, **locked.audience_stats}["after"] != stats["after"]:
            return False
        Campaign.objects.filter(pk=campaign_id).update(
            audience_stats=stats, materialised_at=timezone.now()
        )
    return True


EMPTY_STATS = {
    "after": 0,
    "audience": 0,
    "queued": 0,
    "opted_out": 0,
    "invalid": 0,
    "duplicate": 0,
    "no_send_window": 0,
}


SUPPRESSION_IN_MEMORY = 500_000
STAT_FOR_REASON: dict[str, str] = {Message.SkipReason.INVALID_NUMBER: "invalid"}


class _Plan:
    """What every message of a campaign shares, worked out once; `rows` does the rest."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.body = campaign.message_body
        self.audience = campaign.audience()
        names = placeholders(self.body)
        template = campaign.template if campaign.channel == Channel.WHATSAPP else None
        self.template_id = template.whatsapp_template_id if template else ""
        self.parameters = list(template.whatsapp_parameters) if template else []
        wanted = set(names) | set(self.parameters)
        self.fixed = [n for n in Contact.TEMPLATE_FIELDS if n in wanted and n != "phone"]
        self.custom = sorted(wanted - set(Contact.TEMPLATE_FIELDS))
        self.contact_columns = ("pk", "phone", "timezone", *self.fixed)
        if self.custom:
            self.contact_columns += ("attributes",)
        self.window = Window(campaign.window_start, campaign.window_end)
        self.start = max(timezone.now(), campaign.scheduled_at or timezone.now())
        self.start_value = connection.ops.adapt_datetimefield_value(self.start)
        self.price = Decimal(str(campaign.provider_account.price_per_segment))
        ops = connection.ops
        now = timezone.now()
        self.now = ops.adapt_datetimefield_value(now)
        self.params_json = "[]"
        self._bodies: dict[tuple[str, ...], tuple[str, str, int, Any]] = {}
        self._opens: dict[tuple[str, ...], Any] = {}
        self._seen: set[str] = set()
        # The suppression list, read once when it is small enough to hold (the usual case).
        suppression = OptOut.objects.filter(channel=campaign.channel)
        self.suppressed: set[str] | None = None
        if suppression.count() <= SUPPRESSION_IN_MEMORY:
            self.suppressed = set(suppression.values_list("phone", flat=True))

    def rows(self, chunk: list[tuple[Any, ...]], stats: dict[str, int]) -> list[tuple[Any, ...]]:
        campaign = self.campaign
        phones = [row[1] for row in chunk]
        if self.suppressed is not None:
            opted_out = self.suppressed
            # Erased numbers are kept only as keyed hashes: each phone is hashed (~1.5 µs),
            # and only while at least one number was ever erased.
            erased = ErasedNumber.objects.among(phones)
        else:
            opted_out, erased = OptOut.objects.phones(campaign.channel, phones), set()
        account_id = campaign.provider_account_id
        sender = campaign.sender_id
        rows = []
        refs = self._client_refs(len(chunk))
        windowed = not self.window.always_open
        for contact, client_ref in zip(chunk, refs, strict=True):
            pk, phone, own_zone = contact[0], contact[1], contact[2]
            fields = self._fields(contact)
            body, encoding, segments, cost = self._render(fields)
            zones: tuple[str, ...] = ()
            due = self.start_value
            if windowed:
                zones = recipient_zones(phone, own_zone=own_zone, fallback=campaign.time_zone)
                due = self._opening(zones)
            status, reason = Message.Status.PENDING, ""
            if phone in opted_out or phone in erased:
                reason = Message.SkipReason.OPTED_OUT
            elif not E164.fullmatch(phone):
                reason = Message.SkipReason.INVALID_NUMBER
            elif phone in self._seen:
                reason = Message.SkipReason.DUPLICATE
            elif due is None:
                reason = Message.SkipReason.NO_SEND_WINDOW
            self._seen.add(phone)
            stats["audience"] += 1
            if reason:
                status = Message.Status.SKIPPED
                stats[STAT_FOR_REASON.get(reason, reason)] += 1
            else:
                stats["queued"] += 1
            params = [render(f"{{{{{name}}}}}", fields) for name in self.parameters]
            rows.append(
                (
                    campaign.pk,
                    pk,
                    account_id,
                    campaign.channel,
                    phone,
                    sender,
                    body,
                    encoding,
                    segments,
                    cost,
                    client_ref,
                    ",".join(zones),
                    "",
                    "",
                    "",
                    self.template_id,
                    json.dumps(params) if params else self.params_json,
                    status,
                    reason,
                    0,
                    due if due is not None else self.now,
                    "",
                    "",
                    self.now,
                    self.now,
                )
            )
        return rows

    def _client_refs(self, count: int) -> list[str]:
        """Unique idempotency keys that sort by creation, so the unique index only appends."""
        stamp = f"{self.campaign.pk:x}.{time.time_ns():x}."
        return [f"{stamp}{i:04x}" for i in range(count)]

    def _fields(self, contact: tuple[Any, ...]) -> dict[str, str]:
        fields = {"phone": contact[1]}
        for i, name in enumerate(self.fixed, start=3):
            fields[name] = contact[i] or ""
        if self.custom:
            attributes = json_column(contact[-1])
            for name in self.custom:
                value = attributes.get(name)
                fields[name] = "" if value is None else str(value)
        return fields

    def _render(self, fields: dict[str, str]) -> tuple[str, str, int, Any]:
        key = tuple(fields.get(n, "") for n in (*self.fixed, *self.custom))
        cached = self._bodies.get(key)
        if cached is None:
            body = render(self.body, fields)
            encoding, segments = segments_of(body)
            cost = connection.ops.adapt_decimalfield_value(segments * self.price, 12, 5)
            cached = self._bodies[key] = (body, encoding, segments, cost)
            if len(self._bodies) > 50_000:
                self._bodies.clear()
        return cached

    def _opening(self, zones: tuple[str, ...]) -> Any:
        """When the recipient's window next opens (adapted for the database), or None."""
        if zones not in self._opens:
            opening = self.window.next_open(zones, self.start)
            self._opens[zones] = (
                None if opening is None else connection.ops.adapt_datetimefield_value(opening)
            )
        return self._opens[zones]


def run_campaign(campaign: Campaign) -> None:
    """Start the campaign if it is due, then send batches until nothing is due."""
    if campaign.status == Campaign.Status.SCHEDULED and Campaign.objects.due().filter(
        pk=campaign.pk
    ):
        campaign.start()
        campaign.refresh_from_db()
    if campaign.status != Campaign.Status.SENDING:
        return
    if campaign.materialised_at is None:
        materialise(campaign)
    brake = FailureBrake(campaign)
    while dispatch_batch(campaign, brake):
        pass
    campaign.complete_if_done()


def claim_size(campaign: Campaign) -> int:
    """Rows per round: the configured batch, or a full request for a bulk provider."""
    preferred = campaign.provider_account.get_backend().claim_size
    return min(preferred, MAX_CLAIM) if preferred else settings.HERALD_DISPATCH_BATCH_SIZE


def dispatch_batch(campaign: Campaign, brake: FailureBrake | None = None) -> bool:
    """Claim and send one batch; False when there is nothing to do (or we must stop)."""
    # Re-read each batch so a pause or cancel takes effect within one batch.
    if not Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.SENDING).exists():
        return False
    batch = campaign.messages.all().claim(claim_size(campaign))
    if not batch:
        return False
    batch = _hold_outside_window(campaign, batch)
    if not batch:
        return True
    account_error = send_claimed(batch)
    if account_error is not None:
        # Staff may have paused or cancelled it meanwhile; the rows are back in pending either way.
        with contextlib.suppress(TransitionNotAllowed):
            campaign.pause(by=None, reason=f"Provider refused the account: {account_error}")
        return False
    if brake is not None and brake.tripped(batch):
        with contextlib.suppress(TransitionNotAllowed):
            campaign.pause(by=None, reason=brake.reason)
        return False
    return True


def _hold_outside_window(campaign: Campaign, batch: list[Message]) -> list[Message]:
    """Give back rows whose recipients' window closed since they became due; send the rest."""
    window = Window(campaign.window_start, campaign.window_end)
    if window.always_open:
        return batch
    now = timezone.now()
    sendable, later = [], {}
    opens: dict[str, Any] = {}
    for message in batch:
        zones = message.time_zones
        if zones not in opens:
            names = tuple(zones.split(",")) if zones else (campaign.time_zone,)
            opens[zones] = window.next_open(names, now)
        opening = opens[zones]
        if opening == now:
            sendable.append(message)
        else:
            later[message] = opening or now + timedelta(days=1)
    if later:
        release_until(later)
    return sendable


class FailureBrake:
    """Pauses a campaign when too many of its latest sends failed (campaign setting)."""

    def __init__(self, campaign: Campaign) -> None:
        self.threshold = campaign.brake_failure_rate
        self.recent: deque[bool] = deque(maxlen=max(campaign.brake_window, 1))
        self.reason = ""

    def tripped(self, batch: list[Message]) -> bool:
        if self.threshold <= 0:
            return False
        outcomes = dict(
            Message.objects.filter(pk__in=[m.pk for m in batch])
            .exclude(status=Message.Status.PENDING)
            .values_list("pk", "status")
        )
        for message in batch:
            status = outcomes.get(message.pk)
            if status in (Message.Status.SENT, Message.Status.FAILED):
                self.recent.append(status == Message.Status.FAILED)
        if len(self.recent) < (self.recent.maxlen or 1):
            return False
        share = sum(self.recent) / len(self.recent)
        if share <= self.threshold:
            return False
        self.reason = (
            f"Safety brake: {share:.0%} of the last {len(self.recent)} sends failed "
            f"(more than {self.threshold:.0%}). Check the failures, then resume."
        )
        return True
