"""The send engine's campaign side: build the audience into Message rows, then dispatch.

The Message rows are the truth; this code may be interrupted anywhere and run
again (by a repeated task or a second worker) without losing or doubling a message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from functools import partial
from operator import itemgetter
from typing import Any

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from campaigns import balance
from campaigns.approval import Binding, ContentChanged
from campaigns.audience import REASONS, AudienceRule
from campaigns.content import Content
from campaigns.models import Campaign, TransitionNotAllowed
from campaigns.variants import Assigner, test_ends
from campaigns.windows import Window
from contacts.bulk import bulk_insert, existing, insert_numbered, tune_bulk_transaction
from contacts.models import Contact
from messaging import counts
from messaging.concurrency import in_lanes, lanes_allowed
from messaging.dispatch import release_until, send_claimed
from messaging.links import CODE_LENGTH, PATH, ShortenedMessage, link_base, new_codes
from messaging.models import Link, Message
from messaging.rendering import segments_of

logger = logging.getLogger(__name__)

MATERIALISE_CHUNK = 5000
#: Audiences at least this big are built with reading and writing overlapped.
PIPELINE_FROM = 10_000
#: Most rows one worker holds at once (one BulkSMSRates request carries 10,000).
MAX_CLAIM = 10_000
#: PostgreSQL: longest a build's chunk waits for a lock (see _write_chunk).
LOCK_WAIT = "10s"
#: PostgreSQL errors after which a chunk is undone and the build goes on from the mark.
GIVE_WAY = {"55P03": "waited too long for a lock", "40P01": "was in a deadlock"}
#: Short link codes drawn at once (one read of the operating system's randomness).
CODE_POOL = 5000

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
    "variant",
)
BODY_AT = MESSAGE_COLUMNS.index("body")
PARAMS_AT = MESSAGE_COLUMNS.index("template_params")
CLIENT_REF_AT = MESSAGE_COLUMNS.index("client_ref")


def materialise(campaign: Campaign) -> dict[str, int]:
    """Snapshot the audience into Message rows, 5,000 contacts a statement.

    Each chunk commits with the campaign's progress mark (the last contact id done)
    under a lock on the campaign row, so an interrupted run resumes where it
    stopped and two workers never write the same chunk. Who is skipped, and why, is
    the audience rule's answer (campaigns.audience), kept on each skipped row.

    Only what was approved is built (campaigns.approval): content that changed, a
    rendering the approver never saw or an audience grown too far holds the campaign
    for approval again, and what was built of it is deleted unsent. Nothing is sent
    before the build has finished.

    For a large audience the next chunk is read and rendered while a second
    connection writes the last one (on PostgreSQL two connections, taking chunks in
    turn, each committing after the one before), so the database's work and ours
    overlap; small ones, and any inside a caller's transaction (which a second
    connection could not see), are written one chunk after another.
    """
    while Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.SENDING).exists():
        try:
            done = _build_once(campaign)
        except ContentChanged as changed:
            logger.warning("campaign %s: held for approval again: %s", campaign.pk, changed)
            with contextlib.suppress(TransitionNotAllowed):
                campaign.hold_for_approval(changed)
            break
        if done:
            break
        # Another worker moved the mark under us: start again from where it is now.
    campaign.refresh_from_db(fields=["audience_stats", "materialised_at"])
    logger.info("campaign %s: materialised %s", campaign.pk, campaign.audience_stats)
    return campaign.audience_stats


def _build_once(campaign: Campaign) -> bool:
    plan = _Plan(campaign)
    if connection.in_atomic_block or not _large(plan, campaign):
        return _build(campaign, plan, write=_write_chunk)
    # PostgreSQL takes two writers, each on a connection of its own: one sends a chunk's
    # rows while the server still makes the chunk before's links and commits it. SQLite
    # lets one connection write at a time.
    writers = [
        ThreadPoolExecutor(1, thread_name_prefix=f"materialise-{i}")
        for i in range(2 if connection.vendor == "postgresql" else 1)
    ]
    try:
        for writer in writers:
            writer.submit(_roomy_cache).result()
        return _build(campaign, plan, write=_Writers(writers))
    finally:
        for writer in writers:
            writer.submit(_close_connection).result()
            writer.shutdown()


def _roomy_cache() -> None:
    """SQLite: give the writer's own connection a page cache the build's indexes fit in
    (HERALD_SQLITE_BUILD_CACHE_MB); it goes with the connection when the build ends."""
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(
                f"PRAGMA cache_size = -{int(settings.HERALD_SQLITE_BUILD_CACHE_MB) * 1024}"
            )


def _close_connection() -> None:
    """Close the calling thread's own database connection (the writer's, there)."""
    connection.close()


def _large(plan: _Plan, campaign: Campaign) -> bool:
    """Whether enough is left to build that a second connection is worth its start-up."""
    mark = Campaign.objects.values_list("audience_stats", flat=True).get(pk=campaign.pk)
    left = plan.audience_after({**EMPTY_STATS, **mark}["after"])
    return left[:PIPELINE_FROM].count() >= PIPELINE_FROM


#: A chunk's short links: (index of its message among the chunk's rows, code, destination).
LinkRows = list[tuple[int, str, str]]
Write = Callable[..., Any]


def _build(campaign: Campaign, plan: _Plan, write: Write) -> bool:
    """Read, render and write every chunk after the mark; False if the mark moved under us.

    Each chunk is read and rendered while the writers (`write`) still have the ones
    before it: as many at once as there are writers."""
    current = Campaign.objects.filter(pk=campaign.pk).values_list(
        "audience_stats", "materialised_at"
    )
    mark, finished = current.get()
    if finished is not None:
        return True
    stats = {**EMPTY_STATS, **mark}
    pending: deque[bool | Future[bool]] = deque()
    at_once = write.at_once if isinstance(write, _Writers) else 1
    while True:
        chunk = list(
            plan.audience_after(stats["after"])
            .order_by("pk")
            .values_list(*plan.contact_columns)[:MATERIALISE_CHUNK]
        )
        done = {**stats, "after": chunk[-1][0]} if chunk else stats
        rows, links = plan.rows(chunk, done) if chunk else ([], [])
        while len(pending) >= at_once or (pending and not chunk):
            if not _outcome(pending.popleft()):
                return False
        if not chunk:
            return _finish(campaign.pk, stats)
        pending.append(write(campaign.pk, stats["after"], rows, done, links))
        stats = done


class _Writers:
    """Chunks to write, taken by each writer thread in turn; with more than one, each
    chunk commits only once the one before it has (its mark is where the next starts)."""

    def __init__(self, writers: list[ThreadPoolExecutor]) -> None:
        self.writers = writers
        self.at_once = len(writers)
        self.turn = 0
        self.last: Future[bool] | None = None

    def __call__(self, *args: Any) -> Future[bool]:
        writer = self.writers[self.turn % self.at_once]
        self.turn += 1
        after = self.last if self.at_once > 1 else None
        self.last = writer.submit(partial(_write_chunk, after=after), *args)
        return self.last


def _outcome(pending: bool | Future[bool]) -> bool:
    return pending.result() if isinstance(pending, Future) else pending


class _Stale(Exception):
    """The mark moved (or the chunk before did not go in): this chunk is undone."""


def _write_chunk(
    campaign_id: int,
    expected_after: int,
    rows: list[tuple[Any, ...]],
    stats: dict[str, int],
    links: LinkRows,
    after: Future[bool] | None = None,
) -> bool:
    """Insert one chunk (and its short links) and move the mark, if the mark is still
    where this chunk starts.

    `after`: the chunk before it, written meanwhile by another writer. This one's rows
    go in first, then it waits for that one to commit and checks the mark; else the
    mark is checked (and the campaign locked) first.

    Two builds of one campaign at once (two workers) can then each wait for the other:
    one for the rows the other wrote of the same contacts, uncommitted, the other for
    its chunk before (in Python, where PostgreSQL cannot see it), or for the campaign's
    lock. A wait for a lock is therefore cut short (LOCK_WAIT), PostgreSQL ends a
    deadlock it sees by failing one side, and either way that chunk is undone and its
    build starts again from the mark (GIVE_WAY)."""
    try:
        # COPY runs on psycopg's own cursor: its errors are made Django's here.
        with transaction.atomic(), connection.wrap_database_errors:
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
            if after is None and not _still_at(campaign_id, expected_after):
                return False
            tune_bulk_transaction()
            if links:
                _insert_with_links(rows, links, f"{link_base()}{PATH}")
            else:
                bulk_insert(Message._meta.db_table, MESSAGE_COLUMNS, rows)
            counts.count_inserted(campaign_id, MESSAGE_COLUMNS, rows)
            if after is not None and not (
                after.result() and _still_at(campaign_id, expected_after)
            ):
                raise _Stale
            Campaign.objects.filter(pk=campaign_id).update(audience_stats=stats)
    except _Stale:
        return False
    except OperationalError as error:
        gave_way = GIVE_WAY.get(getattr(error.__cause__, "sqlstate", None) or "")
        if gave_way is None:
            raise
        logger.info(
            "campaign %s: a chunk of the build %s; again from the mark", campaign_id, gave_way
        )
        return False
    except IntegrityError:
        # Another build wrote these contacts' messages first (their campaign and phone
        # are unique): the mark has moved past them.
        if _mark(campaign_id) != expected_after:
            return False
        raise
    return True


def _still_at(campaign_id: int, expected_after: int) -> bool:
    """Lock the campaign; whether it is still being built from mark `expected_after`."""
    locked = Campaign.objects.select_for_update().get(pk=campaign_id)
    mark = {**EMPTY_STATS, **locked.audience_stats}["after"]
    stopped = locked.status != Campaign.Status.SENDING  # held, paused or cancelled
    return not stopped and locked.materialised_at is None and mark == expected_after


def _mark(campaign_id: int) -> int:
    stats = Campaign.objects.values_list("audience_stats", flat=True).get(pk=campaign_id)
    return int({**EMPTY_STATS, **stats}["after"])


def _insert_with_links(rows: list[tuple[Any, ...]], links: LinkRows, marker: str) -> None:
    """The chunk's messages, then a Link for each short link in them. A code already
    taken (48 random bits: rare, but certain to happen at last) is drawn again, in the
    link and in its message's text.

    When every text has one link to one destination, written in the text (nearly
    always), the messages go in as they do without links and the database makes the
    links from the texts just written (`_links_from_texts`): no link row passes through
    Python (nor, on PostgreSQL, a message id). Otherwise the messages' ids are drawn
    first, for the links to name them."""
    if len({code for _, code, _ in links}) < len(links):
        links = _redrawn(rows, links, set())
    table = Message._meta.db_table
    sqlite = connection.vendor == "sqlite"
    ids: list[int] | None = None
    if _in_texts(rows, links, marker):
        # SQLite numbers a statement's rows in a row (the chunk's transaction holds the
        # write lock), so their ids come free: a range of the table itself to read.
        ids = insert_numbered(table, MESSAGE_COLUMNS, rows) if sqlite else None
        if ids is None:
            bulk_insert(table, MESSAGE_COLUMNS, rows)
        if _links_from_texts(rows, ids, marker, links[0][2]) == len(links):
            return
        # Some codes were taken: the links made are kept, the others drawn again.
        ids = ids or _ids_of(rows)
        have = set(Link.objects.filter(message_id__in=ids).values_list("message_id", flat=True))
        links = [link for link in links if ids[link[0]] not in have]
    else:
        ids = insert_numbered(table, MESSAGE_COLUMNS, rows)
    if connection.vendor == "postgresql":
        _copy_links(rows, links, ids)
    else:
        _insert_links(rows, links, ids)


def _in_texts(rows: list[tuple[Any, ...]], links: LinkRows, marker: str) -> bool:
    """Whether each message has one link, all to one destination, written in its text
    (not only in its WhatsApp parameters)."""
    index, code, url = links[0]
    return (
        f"{marker}{code}" in rows[index][BODY_AT]
        and len({index for index, _, _ in links}) == len(links)
        and all(link[2] == url for link in links)
    )


def _ids_of(rows: list[tuple[Any, ...]]) -> list[int]:
    """The ids the chunk's messages were given, in order (found by their client refs,
    which sort as the rows do)."""
    first, last = rows[0][CLIENT_REF_AT], rows[-1][CLIENT_REF_AT]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {Message._meta.db_table} "  # noqa: S608 - name from meta
            "WHERE client_ref BETWEEN %s AND %s ORDER BY client_ref",
            [first, last],
        )
        ids = [row[0] for row in cursor.fetchall()]
    assert len(ids) == len(rows)
    return ids


def _copy_links(rows: list[tuple[Any, ...]], links: LinkRows, ids: list[int]) -> None:
    """PostgreSQL: COPY, in code order (each goes next to the last in the index: they
    share a first letter). COPY cannot skip a row, so a taken code undoes the COPY alone
    (a savepoint), and the taken ones are drawn again, in their messages' texts too."""
    table = Link._meta.db_table
    links.sort(key=itemgetter(1))
    while links:
        try:
            # COPY goes to the driver's own cursor: its error is Django's only when wrapped.
            with transaction.atomic(), connection.wrap_database_errors:
                copied = [(code, ids[index], url, 0) for index, code, url in links]
                bulk_insert(table, ("code", "message_id", "url", "clicks"), copied)
            return
        except IntegrityError:
            taken = existing(table, "code", [code for _, code, _ in links])
            links = _redrawn_in_place(rows, links, ids, taken)


def _insert_links(rows: list[tuple[Any, ...]], links: LinkRows, ids: list[int]) -> None:
    """SQLite: insert the links whose codes are free, then draw the taken ones again."""
    table = Link._meta.db_table
    links.sort(key=itemgetter(1))
    while links:
        values = [(code, ids[index], url) for index, code, url in links]
        if _insert_free(table, values) == len(values):
            return
        found = existing(table, "code", [code for _, code, _ in links])
        owners = dict(Link.objects.filter(code__in=sorted(found)).values_list("code", "message_id"))
        clashed = [link for link in links if owners.get(link[1]) != ids[link[0]]]
        links = _redrawn_in_place(rows, clashed, ids, set(owners))


def _redrawn_in_place(
    rows: list[tuple[Any, ...]], links: LinkRows, ids: list[int], taken: set[str]
) -> LinkRows:
    """_redrawn for messages already written: their texts are written again too."""
    fresh = _redrawn(rows, links, taken)
    for (index, old, _), (_, new, _) in zip(links, fresh, strict=True):
        if new != old:
            Message.objects.filter(pk=ids[index]).update(
                body=rows[index][BODY_AT], template_params=json.loads(rows[index][PARAMS_AT])
            )
    return sorted(fresh, key=itemgetter(1))


def _links_from_texts(
    rows: list[tuple[Any, ...]], ids: list[int] | None, marker: str, url: str
) -> int:
    """One statement: a link to `url` for each of the chunk's messages whose text has
    `marker`, its code read from the text; how many were made (a taken code is
    skipped). The chunk's messages are a range of ids (`ids`, SQLite) or else of client
    refs, in their unique index (each chunk's share a prefix of their own, and sort as
    the rows do); skipped rows keep their URLs as written, so only queued ones hold the
    marker."""
    postgres = connection.vendor == "postgresql"
    find = "strpos" if postgres else "instr"
    where = "id" if ids else "client_ref"
    # SQLite writes them in code order (each next to the last in the code index); on
    # PostgreSQL the sort cost more than it saved (they share a first letter anyway).
    order = "" if postgres else " ORDER BY 1"
    sql = (
        f"INSERT INTO {Link._meta.db_table} (code, message_id, url, clicks) "  # noqa: S608 - names from meta
        f"SELECT substr(body, {find}(body, %s) + %s, {CODE_LENGTH}), id, %s, 0 "
        f"FROM {Message._meta.db_table} WHERE {where} BETWEEN %s AND %s "
        f"AND {find}(body, %s) > 0{order}"
    )
    first, last = (ids[0], ids[-1]) if ids else (rows[0][CLIENT_REF_AT], rows[-1][CLIENT_REF_AT])
    params = [marker, len(marker), url, first, last, marker]
    with connection.cursor() as cursor:
        if postgres:
            # A code is nearly never taken: a plain insert first, cheaper there than one
            # that checks each row for a conflict before it goes in.
            try:
                with transaction.atomic():
                    cursor.execute(sql, params)
                return int(cursor.rowcount)
            except IntegrityError:
                pass
        cursor.execute(f"{sql} ON CONFLICT (code) DO NOTHING", params)
        return int(cursor.rowcount)


def _insert_free(table: str, values: list[tuple[str, int, str]]) -> int:
    """SQLite: insert the links whose codes are free; how many were inserted."""
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} (code, message_id, url, clicks) VALUES (%s, %s, %s, 0) "  # noqa: S608 - name from meta
            "ON CONFLICT (code) DO NOTHING",
            values,
        )
        return int(cursor.rowcount)


def _redrawn(rows: list[tuple[Any, ...]], links: LinkRows, taken: set[str]) -> LinkRows:
    """`links` with each code that is taken, or repeated among them, drawn again, and the
    message texts and WhatsApp parameters (`rows`, changed in place) with the new codes."""
    seen: set[str] = set()
    fresh: LinkRows = []
    for index, code, url in links:
        new = code
        while new in taken or new in seen:
            new = new_codes(1)[0]
        seen.add(new)
        if new != code:
            row = list(rows[index])
            for at in (BODY_AT, PARAMS_AT):  # JSON writes a code and "/" as they are
                row[at] = row[at].replace(f"/{PATH}{code}", f"/{PATH}{new}")
            rows[index] = tuple(row)
        fresh.append((index, new, url))
    return fresh


def _finish(campaign_id: int, stats: dict[str, int]) -> bool:
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign_id)
        if locked.materialised_at is not None:
            return True
        if {**EMPTY_STATS, **locked.audience_stats}["after"] != stats["after"]:
            return False
        finished: dict[str, Any] = {"audience_stats": stats, "materialised_at": timezone.now()}
        if locked.waiting_for_winner and locked.ab_test_ends_at is None:
            # The test share is built: its winner is picked this many hours from now.
            finished["ab_test_ends_at"] = test_ends(locked.ab_test_hours)
        Campaign.objects.filter(pk=campaign_id).update(**finished)
    return True


EMPTY_STATS = {"after": 0, "audience": 0, "queued": 0, **dict.fromkeys(REASONS, 0)}


class _Plan:
    """What every message of a campaign shares, worked out once; `rows` does the rest."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.binding = Binding.of(campaign)
        self.content = Content.reading(campaign)  # reads what every variant needs
        # An A/B campaign: each variant's content, who gets which, and which part of the
        # audience this build is of (a test's share, or once the winner is picked, the rest).
        self.variants = {label: Content.of(campaign, label) for label in campaign.variant_labels}
        self.assigner = Assigner.of(campaign) if self.variants else None
        self.winner = campaign.ab_winner
        self.rule = AudienceRule(campaign)
        self.decider = self.rule.decider()
        self.contact_columns = ("pk", "phone", "timezone", *self.content.columns)
        self.price = Decimal(str(campaign.provider_account.price_per_segment))
        ops = connection.ops
        self.now = ops.adapt_datetimefield_value(timezone.now())
        self.template_id = self.content.whatsapp_template_id
        self.links = self.content.links
        self._short_base = f"{self.links.base}{PATH}" if self.links else ""
        self._codes: list[str] = []
        self._bodies: dict[tuple[Any, ...], list[Any]] = {}
        self._opens: dict[Any, Any] = {}

    def audience_after(self, after: int) -> QuerySet[Contact]:
        """The audience past contact id `after`, with the values the content reads."""
        return self.content.with_fields(self.rule.contacts_after(after)).filter(pk__gt=after)

    def rows(
        self, chunk: list[tuple[Any, ...]], stats: dict[str, int]
    ) -> tuple[list[tuple[Any, ...]], LinkRows]:
        """The chunk's Message rows, and the short links of those that will be sent."""
        campaign = self.campaign
        self.decider.prepare((row[1] for row in chunk), [row[0] for row in chunk])
        account_id = campaign.provider_account_id
        sender = campaign.sender_id
        rows: list[tuple[Any, ...]] = []
        links: LinkRows = []
        refs = self._client_refs(len(chunk))
        for contact, client_ref in zip(chunk, refs, strict=True):
            pk, phone, own_zone = contact[0], contact[1], contact[2]
            variant = ""
            if self.assigner is not None:
                variant = self.assigner.variant(pk)
                if self.winner:  # the rest of a test: each goes to the winner
                    if variant:
                        continue  # in the test share, built already
                    variant = self.winner
                elif not variant:
                    continue  # the rest of a test, built once the winner is picked
            decision = self.decider.decide(phone, own_zone, pk)
            stats["audience"] += 1
            if decision.reason:
                status = Message.Status.SKIPPED
                stats[decision.reason] += 1
            else:
                status = Message.Status.PENDING
                stats["queued"] += 1
            body, encoding, segments, cost, params, shortened = self._render(
                contact, queued=not decision.reason, variant=variant
            )
            if shortened is not None:
                if decision.reason:  # never sent: it keeps the text as written, no link
                    body = shortened[0].body.fill_urls()
                else:
                    body, filled = self._with_codes(shortened, len(rows), links)
                    if filled is not None:  # its WhatsApp parameters have links too
                        params = filled
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
                    ",".join(decision.zones),
                    "",
                    "",
                    "",
                    self.template_id,
                    params,
                    status,
                    decision.reason,
                    0,
                    self._due(decision.due),
                    "",
                    "",
                    self.now,
                    self.now,
                    variant,
                )
            )
        self.binding.check_audience(stats["queued"])
        return rows, links

    def _with_codes(
        self, shortened: tuple[ShortenedMessage, tuple[str, ...]], row: int, links: LinkRows
    ) -> tuple[str, str | None]:
        """The text with a fresh code for each of its links, noted in `links`, and its
        WhatsApp parameters (JSON) with theirs when they have any (else None)."""
        message, destinations = shortened
        if len(self._codes) < len(destinations):
            self._codes = new_codes(CODE_POOL, together=True)
        if len(destinations) == 1 and not message.in_parameters:
            # Nearly always: one link in the text, the text around it as is.
            code = self._codes.pop()
            links.append((row, code, destinations[0]))
            text = message.body
            return f"{text.parts[0]}{self._short_base}{code}{text.parts[1]}", None
        codes = [self._codes.pop() for _ in destinations]
        links.extend((row, code, url) for code, url in zip(codes, destinations, strict=True))
        assert self.links is not None
        body, parameters = message.fill(self.links.base, codes)
        return body, json.dumps(list(parameters)) if message.in_parameters else None

    def _client_refs(self, count: int) -> list[str]:
        """Unique idempotency keys that sort by creation, so the unique index only appends."""
        stamp = f"{self.campaign.pk:x}.{time.time_ns():x}."
        return [f"{stamp}{i:04x}" for i in range(count)]

    def _render(
        self, contact: tuple[Any, ...], queued: bool, variant: str = ""
    ) -> tuple[str, str, int, Any, str, Any]:
        """The message for one contact, worked out once per distinct set of values it reads:
        its text (short links with a stand-in code), encoding, segments, cost, WhatsApp
        parameters (as written), and its text and parameters split around their links
        with the links' destinations (None when it has none to shorten)."""
        values = contact[3:]
        key = (variant, *values) if variant else values
        cached = self._bodies.get(key)
        if cached is None:
            content = self.variants[variant] if variant else self.content
            rendered = content.render(self.content.fields_of(values))
            shortened = content.shortened(rendered)
            text = content.sent_text(rendered)
            encoding, segments = segments_of(text)
            cost = connection.ops.adapt_decimalfield_value(segments * self.price, 12, 5)
            params = json.dumps(list(rendered.parameters))
            links = None
            if shortened is not None and self.links is not None:
                links = (shortened, tuple(map(self.links.destination, shortened.urls)))
            cached = [text, encoding, segments, cost, params, rendered, links]
            if len(self._bodies) > 50_000:
                self._bodies.clear()
            self._bodies[key] = cached
        if queued and cached[5] is not None:
            # Checked once per distinct text: a queued text must be one the approver saw.
            self.binding.check_rendering(cached[5], f"contact {contact[0]}")
            cached[5] = None
        return cached[0], cached[1], cached[2], cached[3], cached[4], cached[6]

    def _due(self, due: Any) -> Any:
        """When the message may go, adapted for the database (the build's time if never)."""
        if due is None:
            return self.now
        if due not in self._opens:
            self._opens[due] = connection.ops.adapt_datetimefield_value(due)
        return self._opens[due]


def run_campaign(campaign: Campaign) -> bool:
    """Start the campaign if it is due, then send batches until nothing is due.

    Batches go in HERALD_DISPATCH_LANES lanes side by side (messaging.concurrency.
    in_lanes), each claiming, sending and recording its own, so the database and the
    provider work at once. True when it stopped for time with work left (half the task
    timeout, so django-q2 never stops it mid-batch): the caller wakes it again at once.
    """
    if campaign.status == Campaign.Status.SCHEDULED and Campaign.objects.due().filter(
        pk=campaign.pk
    ):
        campaign.start()
        campaign.refresh_from_db()
    if campaign.status != Campaign.Status.SENDING:
        return False
    if not balance.may_send(campaign):
        return False
    if campaign.materialised_at is None:
        materialise(campaign)
    brake = FailureBrake(campaign)
    run_ends = time.monotonic() + settings.Q_CLUSTER["timeout"] / 2
    count = lanes_allowed(settings.HERALD_DISPATCH_LANES)
    # Each lane its own copy: a transition refreshes the instance it is called on.
    copies = [campaign, *(_reloaded(campaign) for _ in range(count - 1))]
    return any(in_lanes([partial(_send_until_done, c, brake, run_ends) for c in copies]))


def _reloaded(campaign: Campaign) -> Campaign:
    return Campaign.objects.select_related("provider_account").get(pk=campaign.pk)


def _send_until_done(
    campaign: Campaign, brake: FailureBrake, run_ends: float, stop: threading.Event
) -> bool:
    """One lane: batches until nothing is due (then complete it if it is done); True when
    time ran out with work left."""
    while time.monotonic() < run_ends and not stop.is_set():
        if not (dispatch_batch(campaign, brake) or _wait_for_next_retry(campaign, run_ends)):
            campaign.complete_if_done()
            return False
    return not stop.is_set()


def _wait_for_next_retry(campaign: Campaign, run_ends: float) -> bool:
    """Sleep until the campaign's next retry is due, if that is soon; False when it is not.

    So a retry goes as soon as it is due rather than at the next minute tick. Bounded:
    at most HERALD_RETRY_WAIT_SECONDS ahead, and never past the run's end.
    """
    due = (
        campaign.messages.filter(status=Message.Status.PENDING)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    if due is None:
        return False
    wait = max((due - timezone.now()).total_seconds(), 0.0)
    if wait > settings.HERALD_RETRY_WAIT_SECONDS or time.monotonic() + wait > run_ends:
        return False
    time.sleep(wait + 0.05)
    return Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.SENDING).exists()


def claim_size(campaign: Campaign) -> int:
    """Rows per round: what the account's backend asks for (BaseBackend.rows_per_claim)."""
    return min(campaign.provider_account.get_backend().rows_per_claim(), MAX_CLAIM)


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
        self._lock = threading.Lock()  # the lanes of a run share one brake

    def tripped(self, batch: list[Message]) -> bool:
        if self.threshold <= 0:
            return False
        outcomes = dict(
            Message.objects.among([m.pk for m in batch])
            .exclude(status=Message.Status.PENDING)
            .values_list("pk", "status")
        )
        with self._lock:
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
