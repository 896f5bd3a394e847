"""Kept counts of each campaign's messages: appended as messages move, squashed, summed.

A page with a million-message campaign must not count a million rows. So every change
of a message's state, in the one place that makes it (MessageQuerySet._move, the build
of a campaign's rows, a row created through the ORM), appends what it changed to
MessageCount as deltas: one row per (campaign, key) touched, +n or -n. Reading a
campaign's counts sums its rows; the minute tick squashes each (campaign, key) into one
row, so that sum is over a few rows (the pattern RapidPro calls "squashed counts").
Appending, never updating, keeps two workers recording sends of one campaign from
waiting on each other.

What a message adds to its campaign's counts is `contribution()` of its fields; a move
adds the difference between the row after and before it. `fresh_counts()` derives the
same from the messages themselves, for the migration, `campaign recount` and the tests,
which check the two agree after every test and after a chaos run.

Keys:

- ``status:<status>``: messages in each status;
- ``failed:<error code>``: failed messages by code, with one example error text (note);
- ``skipped:<reason>``: skipped messages by reason;
- ``day:<local date>:<account id>:sent`` and ``...:cost5``: handed over to the provider
  (sent_at set) on that day, and their cost in 1/100,000 of the currency;
- ``day:<local date>:<account id>:delivered`` / ``...:failed``: delivered or failed, by
  the day they were handed over (or failed, when never handed over): the reports' day;
- ``dlv:<UTC minute>``: delivered in that minute, for the delivery chart;
- ``clicks:total`` and ``clicks:unique``: counted clicks on the campaign's short links,
  and recipients who clicked at least one (messaging.links);
- ``clk:<UTC hour>``: counted clicks in that hour, for the clicks chart;
- ``v:<variant>:status:<status>``, ``v:<variant>:clicks:total`` and ``...:unique``: an
  A/B campaign's messages and clicks per variant (A to D).

Days are the site's time zone (TIME_ZONE), as the reports show them.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from typing import Any

from django.db import models, transaction
from django.db.models import Count, Max, Sum
from django.db.models.functions import Coalesce, TruncDate, TruncHour, TruncMinute
from django.utils import timezone

#: Cost is kept as an integer in units of the cost field's last decimal place.
COST_SCALE = 100_000
NOTE_LENGTH = 300
SQUASH_BATCH = 500

Key = tuple[int, str]  # (campaign id, key)

#: What _move asks the database to return of each row it moved (their new values).
RETURNED = (
    "campaign_id",
    "provider_account_id",
    "sent_at",
    "updated_at",
    "delivered_at",
    "cost",
    "error_code",
    "error_message",
    "skip_reason",
    "variant",
)
#: What it returns of a move only the status keys see (status_only).
CAMPAIGN_ONLY = ("campaign_id", "variant")
CLICKS_TOTAL = "clicks:total"
CLICKS_UNIQUE = "clicks:unique"
CLICK_HOUR = "clk:"
#: An A/B campaign's figures per variant: v:<A-D>:status:<status>, v:<A-D>:clicks:...
VARIANT = "v:"
#: The statuses whose messages count under more than their status key.
_DETAILED = frozenset({"failed", "skipped", "delivered"})


def status_only(source: str, to: str, changes: Mapping[str, Any]) -> bool:
    """Whether moving rows from `source` to `to` with these `changes` moves only their
    status keys: neither end is a status counted in detail (`contribution`), and the
    move sets no time a count is kept by (the other fields it may set count nowhere)."""
    return (
        source not in _DETAILED
        and to not in _DETAILED
        and not {"sent_at", "delivered_at", "cost", "provider_account"} & changes.keys()
    )


class Tally:
    """Deltas of kept counts, gathered during one change and saved with it."""

    def __init__(self) -> None:
        self.deltas: Counter[Key] = Counter()
        self.notes: dict[Key, str] = {}

    def add(self, campaign_id: int, row: dict[str, Any], times: int = 1) -> None:
        """What `times` messages with these fields add (negative: take away)."""
        for key, n, note in contribution(row):
            self.deltas[campaign_id, key] += times * n
            if note and times > 0:
                self.notes.setdefault((campaign_id, key), note[:NOTE_LENGTH])

    def moved(
        self,
        source: str,
        to: str,
        changes: dict[str, Any],
        rows: Mapping[tuple[Any, ...], int],
        returned: Sequence[str] = RETURNED,
    ) -> None:
        """Rows (the `returned` columns, each with how many rows had them) moved from
        `source` to `to`: their contribution after the move, less the one they had before
        it. A move sets sent_at and delivered_at only where they were empty (a row is
        handed over once, delivered once), and never changes cost or account; fields only
        final statuses count did not count before. With CAMPAIGN_ONLY (status_only), the
        status keys alone."""
        if returned == CAMPAIGN_ONLY:
            for (campaign_id, variant), alike in rows.items():
                if campaign_id is not None:
                    for prefix in ("", f"{VARIANT}{variant}:") if variant else ("",):
                        self.deltas[campaign_id, f"{prefix}status:{to}"] += alike
                        self.deltas[campaign_id, f"{prefix}status:{source}"] -= alike
            return
        for values, alike in rows.items():  # each distinct row, with how many had it
            after = dict(zip(RETURNED, values, strict=True))
            campaign_id = after["campaign_id"]
            if campaign_id is None:  # a test send or a reply: no campaign's figures
                continue
            before = {**after, "status": source}
            for field in ("sent_at", "delivered_at"):
                if field in changes:
                    before[field] = None
            after["status"] = to
            self.add(campaign_id, after, alike)
            self.add(campaign_id, before, -alike)

    def merge(self, other: Tally) -> None:
        self.deltas.update(other.deltas)
        for key, note in other.notes.items():
            self.notes.setdefault(key, note)

    def save(self) -> None:
        collecting = _collector.get()
        if collecting is not None:  # counted with the batch it is part of
            collecting.merge(self)
            self.deltas.clear()
            self.notes.clear()
            return
        from messaging.models import MessageCount

        rows = [
            MessageCount(
                campaign_id=campaign_id, key=key, n=n, note=self.notes.get((campaign_id, key), "")
            )
            for (campaign_id, key), n in self.deltas.items()
            if n
        ]
        if rows:
            MessageCount.objects.bulk_create(rows)
        self.deltas.clear()
        self.notes.clear()


def count_inserted(campaign_id: int, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Rows of `campaign_id` just inserted with these columns (a campaign's build): what
    they add, tallied by their state (rows of one state add the same keys)."""
    names = [name for name in (*RETURNED, "status") if name in columns]
    index = [columns.index(name) for name in names]
    states: Counter[tuple[Any, ...]] = Counter(tuple(row[i] for i in index) for row in rows)
    tally = Tally()
    for state, n in states.items():
        fields = dict.fromkeys(RETURNED) | dict(zip(names, state, strict=True))
        for key, amount, note in contribution(fields):
            tally.deltas[campaign_id, key] += amount * n
            if note:
                tally.notes.setdefault((campaign_id, key), note[:NOTE_LENGTH])
    tally.save()


def count_deleted(campaign_id: int, status: str, deleted: dict[str, int]) -> None:
    """Rows of one campaign in `status` deleted (QuerySet.delete()'s per-model counts).
    Only unsent rows are ever deleted: they count for their status alone."""
    from messaging.models import Message

    if status not in (Message.Status.PENDING, Message.Status.CANCELLED):
        raise ValueError(f"only unsent messages are deleted, not {status} ones")
    tally = Tally()
    tally.deltas[campaign_id, f"status:{status}"] -= deleted.get(Message._meta.label, 0)
    tally.save()


def count_created(message: Any) -> None:
    """One message just created through the ORM (a test send has no campaign: nothing)."""
    if message.campaign_id is None:
        return
    tally = Tally()
    tally.add(message.campaign_id, row_of(message))
    tally.save()


def row_of(message: Any) -> dict[str, Any]:
    return {name: getattr(message, name) for name in (*RETURNED, "status")}


_collector: ContextVar[Tally | None] = ContextVar("kept_counts_collector", default=None)


@contextmanager
def collected() -> Iterator[Tally]:
    """Deltas saved within this block are gathered in the Tally it yields instead of
    written: many small changes in one transaction (a batch of delivery reports) append
    one row per key, not one per change. Save the tally in the same transaction; drop it
    when what it counted is rolled back."""
    tally = Tally()
    token = _collector.set(tally)
    try:
        yield tally
    finally:
        _collector.reset(token)


def contribution(row: dict[str, Any]) -> list[tuple[str, int, str]]:
    """(key, amount, note) a message with these fields adds to its campaign's counts."""
    from messaging.models import Message

    status = row["status"]
    keys: list[tuple[str, int, str]] = [(f"status:{status}", 1, "")]
    if row.get("variant"):
        keys.append((f"{VARIANT}{row['variant']}:status:{status}", 1, ""))
    if status == Message.Status.FAILED:
        keys.append((f"failed:{row['error_code']}", 1, row.get("error_message") or ""))
    elif status == Message.Status.SKIPPED:
        keys.append((f"skipped:{row['skip_reason']}", 1, ""))
    account = row["provider_account_id"]
    sent_at = row["sent_at"]
    if sent_at is not None:
        day = local_day(sent_at)
        keys.append((f"day:{day}:{account}:sent", 1, ""))
        keys.append((f"day:{day}:{account}:cost5", cost5(row["cost"]), ""))
    if status in (Message.Status.DELIVERED, Message.Status.FAILED):
        day = local_day(sent_at or row["updated_at"])
        keys.append((f"day:{day}:{account}:{status}", 1, ""))
    if row["delivered_at"] is not None:
        keys.append((f"dlv:{utc_minute(row['delivered_at'])}", 1, ""))
    return keys


def local_day(moment: datetime.datetime) -> str:
    return timezone.localtime(moment, timezone.get_default_timezone()).date().isoformat()


def utc_minute(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M")


def utc_hour(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H")


def cost5(cost: Decimal | float | None) -> int:
    """`cost` in units of COST_SCALE, rounded (SQLite sums decimals as floats)."""
    return round(Decimal(str(cost or 0)) * COST_SCALE)


# Reading.


def kept(campaign_ids: Iterable[int], prefix: str = "") -> dict[int, dict[str, int]]:
    """Each campaign's kept counts (keys starting with `prefix`), summed: one grouped query
    over a few rows per key once squashed."""
    from messaging.models import MessageCount

    ids = list(campaign_ids)
    counts: dict[int, dict[str, int]] = {pk: {} for pk in ids}
    if not ids:
        return counts
    rows = MessageCount.objects.filter(campaign_id__in=ids)
    if prefix:
        rows = rows.filter(key__startswith=prefix)
    for row in rows.order_by().values("campaign_id", "key").annotate(n=Sum("n")):
        if row["n"]:
            counts[row["campaign_id"]][row["key"]] = row["n"]
    return counts


def status_counts(campaign_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """Messages per status for each campaign, every status present."""
    from messaging.models import Message

    counts = {}
    for pk, keys in kept(campaign_ids, "status:").items():
        counts[pk] = {status: keys.get(f"status:{status}", 0) for status in Message.Status.values}
    return counts


def click_counts(campaign_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """{"unique": recipients who clicked, "total": clicks} for each campaign."""
    return {pk: click_counts_of(keys) for pk, keys in kept(campaign_ids, "clicks:").items()}


def click_counts_of(keys: Mapping[str, int]) -> dict[str, int]:
    return {"unique": keys.get(CLICKS_UNIQUE, 0), "total": keys.get(CLICKS_TOTAL, 0)}


def clicks_by_hour(campaign_id: int) -> list[tuple[str, int]]:
    """(UTC hour "YYYY-MM-DDTHH", clicks) for each hour with any, in order."""
    return clicks_by_hour_of(kept([campaign_id], CLICK_HOUR)[campaign_id])


def clicks_by_hour_of(keys: Mapping[str, int]) -> list[tuple[str, int]]:
    return sorted(
        (key.removeprefix(CLICK_HOUR), n) for key, n in keys.items() if key.startswith(CLICK_HOUR)
    )


def failure_counts(campaign_id: int) -> list[dict[str, Any]]:
    """Failed messages per error code, most first, each with one example text."""
    from messaging.models import MessageCount

    rows = (
        MessageCount.objects.filter(campaign_id=campaign_id, key__startswith="failed:")
        .order_by()
        .values("key")
        .annotate(n=Sum("n"), example=Max("note"))
    )
    reasons = [
        {"error_code": row["key"].removeprefix("failed:"), "n": row["n"], "example": row["example"]}
        for row in rows
        if row["n"]
    ]
    return sorted(reasons, key=lambda reason: (-reason["n"], reason["error_code"]))


def skip_counts(campaign_id: int) -> dict[str, int]:
    from messaging.models import Message

    keys = kept([campaign_id], "skipped:")[campaign_id]
    return {reason: keys.get(f"skipped:{reason}", 0) for reason in Message.SkipReason.values}


# Squashing.


def squash(limit: int = SQUASH_BATCH) -> int:
    """Fold each (campaign, key) with more than one row into one: up to `limit` of them.
    Returns how many were folded.

    Only the rows read are deleted and replaced by their sum, in one transaction, so a
    delta appended meanwhile (even one committed late under a lower id) is kept as is."""
    from messaging.models import MessageCount

    groups = list(
        MessageCount.objects.order_by()
        .values("campaign_id", "key")
        .annotate(rows=Count("pk"))
        .filter(rows__gt=1)[:limit]
    )
    for group in groups:
        with transaction.atomic():
            rows = list(
                MessageCount.objects.filter(campaign_id=group["campaign_id"], key=group["key"])
                .select_for_update()
                .values_list("pk", "n", "note")
            )
            if len(rows) < 2:
                continue
            MessageCount.objects.filter(pk__in=[pk for pk, _, _ in rows]).delete()
            total = sum(n for _, n, _ in rows)
            note = max((note for _, _, note in rows), default="")
            if total or note:
                MessageCount.objects.create(
                    campaign_id=group["campaign_id"], key=group["key"], n=total, note=note
                )
    return len(groups)


# Counting afresh.


def fresh_counts(messages: models.QuerySet[Any]) -> dict[Key, int]:
    """What `messages` (of campaigns) add up to, counted from the rows: the kept counts
    must always equal this. Works on historical models too (the migration uses it)."""
    zone = timezone.get_default_timezone()
    counts: Counter[Key] = Counter()
    of_campaigns = messages.filter(campaign_id__isnull=False).order_by()
    for row in of_campaigns.values("campaign_id", "status").annotate(n=Count("pk")):
        counts[row["campaign_id"], f"status:{row['status']}"] += row["n"]
    if any(field.name == "variant" for field in messages.model._meta.fields):  # not historical
        varied = of_campaigns.exclude(variant="").values("campaign_id", "variant", "status")
        for row in varied.annotate(n=Count("pk")):
            key = f"{VARIANT}{row['variant']}:status:{row['status']}"
            counts[row["campaign_id"], key] += row["n"]
    failed = of_campaigns.filter(status="failed")
    for row in failed.values("campaign_id", "error_code").annotate(n=Count("pk")):
        counts[row["campaign_id"], f"failed:{row['error_code']}"] += row["n"]
    skipped = of_campaigns.filter(status="skipped")
    for row in skipped.values("campaign_id", "skip_reason").annotate(n=Count("pk")):
        counts[row["campaign_id"], f"skipped:{row['skip_reason']}"] += row["n"]
    sent = of_campaigns.filter(sent_at__isnull=False).values(
        "campaign_id", "provider_account_id", day=TruncDate("sent_at", tzinfo=zone)
    )
    for row in sent.annotate(n=Count("pk"), cost=Sum("cost")):
        prefix = f"day:{row['day'].isoformat()}:{row['provider_account_id']}"
        counts[row["campaign_id"], f"{prefix}:sent"] += row["n"]
        counts[row["campaign_id"], f"{prefix}:cost5"] += cost5(row["cost"])
    final = of_campaigns.filter(status__in=("delivered", "failed")).values(
        "campaign_id",
        "provider_account_id",
        "status",
        day=TruncDate(Coalesce("sent_at", "updated_at"), tzinfo=zone),
    )
    for row in final.annotate(n=Count("pk")):
        key = f"day:{row['day'].isoformat()}:{row['provider_account_id']}:{row['status']}"
        counts[row["campaign_id"], key] += row["n"]
    delivered = of_campaigns.filter(delivered_at__isnull=False).values(
        "campaign_id", minute=TruncMinute("delivered_at", tzinfo=datetime.UTC)
    )
    for row in delivered.annotate(n=Count("pk")):
        counts[row["campaign_id"], f"dlv:{utc_minute(row['minute'])}"] += row["n"]
    counts.update(_fresh_clicks(of_campaigns))
    return {key: n for key, n in counts.items() if n}


def _fresh_clicks(messages: models.QuerySet[Any]) -> Counter[Key]:
    """The click keys of `messages`' campaigns, from their links and clicks (none where
    the models have no links yet: the migration's historical ones)."""
    counts: Counter[Key] = Counter()
    try:
        link_model = messages.model._meta.apps.get_model("messaging", "Link")
        click_model = messages.model._meta.apps.get_model("messaging", "Click")
    except LookupError:
        return counts
    clicked = link_model.objects.filter(message__in=messages, first_clicked_at__isnull=False)
    per_campaign = clicked.order_by().values("message__campaign_id", "message__variant")
    for row in per_campaign.annotate(n=Count("message_id", distinct=True)):
        counts[row["message__campaign_id"], CLICKS_UNIQUE] += row["n"]
        if row["message__variant"]:
            key = f"{VARIANT}{row['message__variant']}:{CLICKS_UNIQUE}"
            counts[row["message__campaign_id"], key] += row["n"]
    clicks = click_model.objects.filter(link__message__in=messages).order_by()
    hours = clicks.values(
        "link__message__campaign_id",
        "link__message__variant",
        hour=TruncHour("clicked_at", tzinfo=datetime.UTC),
    )
    for row in hours.annotate(n=Count("pk")):
        campaign_id = row["link__message__campaign_id"]
        counts[campaign_id, CLICKS_TOTAL] += row["n"]
        counts[campaign_id, f"{CLICK_HOUR}{utc_hour(row['hour'])}"] += row["n"]
        if row["link__message__variant"]:
            key = f"{VARIANT}{row['link__message__variant']}:{CLICKS_TOTAL}"
            counts[campaign_id, key] += row["n"]
    return counts


def kept_counts(campaign_ids: Iterable[int]) -> dict[Key, int]:
    return {(pk, key): n for pk, keys in kept(campaign_ids).items() for key, n in keys.items() if n}


def differences(campaign_ids: Iterable[int]) -> dict[Key, tuple[int, int]]:
    """(kept, fresh) of every key where the two disagree."""
    from messaging.models import Message

    ids = list(campaign_ids)
    fresh = fresh_counts(Message.objects.filter(campaign_id__in=ids))
    have = kept_counts(ids)
    return {
        key: (have.get(key, 0), fresh.get(key, 0))
        for key in have.keys() | fresh.keys()
        if have.get(key, 0) != fresh.get(key, 0)
    }


def recount(campaign_ids: Iterable[int]) -> int:
    """Replace the campaigns' kept counts by a fresh count of their messages (after rows
    were deleted, or changed outside the engine). Returns how many keys differed."""
    from messaging.models import Message, MessageCount

    ids = list(campaign_ids)
    if not ids:
        return 0
    with transaction.atomic():
        # Their messages held still while counted: a move waits, then appends its delta.
        list(Message.objects.filter(campaign_id__in=ids).select_for_update().values_list("pk"))
        wrong = len(differences(ids))
        MessageCount.objects.filter(campaign_id__in=ids).delete()
        rebuild(Message.objects.filter(campaign_id__in=ids), MessageCount)
    return wrong


def rebuild(messages: models.QuerySet[Any], count_model: Any) -> None:
    """Write fresh counts of `messages` as one row per key (used by the migration too)."""
    rows = [
        count_model(campaign_id=campaign_id, key=key, n=n)
        for (campaign_id, key), n in fresh_counts(messages).items()
    ]
    count_model.objects.bulk_create(rows, batch_size=1000)
    failed = messages.filter(campaign_id__isnull=False, status="failed").order_by()
    for row in failed.values("campaign_id", "error_code").annotate(example=Max("error_message")):
        count_model.objects.filter(
            campaign_id=row["campaign_id"], key=f"failed:{row['error_code']}"
        ).update(note=(row["example"] or "")[:NOTE_LENGTH])
