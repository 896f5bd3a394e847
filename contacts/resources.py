"""ContactResource and OptOutResource: the one definition of contact and opt-out files,
shared by the admin and the CLI.

It is a django-import-export resource (export, and `import_data` on a tablib
Dataset) extended with a streaming import for files of millions of rows: rows
are cleaned in parallel worker processes (contacts.importing), then written a
chunk at a time with set-based SQL (contacts.bulk): one query to find which
numbers exist, bulk inserts for the new ones (COPY on PostgreSQL), updates only
where something changed, and group/tag memberships added without touching
existing ones. Every cell it exports is guarded against spreadsheet formulas
(contacts.spreadsheets).
"""

from __future__ import annotations

import contextlib
import csv
import gc
import json
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from import_export import fields, resources, widgets
from import_export.results import Result, RowResult

from contacts import events
from contacts.bulk import (
    add_new_contacts_to,
    bulk_insert,
    chunked,
    insert_missing,
    json_column,
    last_contact_id,
    select_contacts_by_phone,
    select_pairs,
    tune_bulk_transaction,
)
from contacts.importing import (
    FIELDS,
    CleanChunk,
    CleanJob,
    CleanRow,
    Columns,
    FileProblem,
    OptOutRow,
    RowError,
    RowProblem,
    Source,
    clean_batch,
    clean_opt_out_row,
    encode_attributes,
    names_for_a_message,
)
from contacts.models import Channel, Contact, ErasedNumber, Group, ImportJob, OptOut, Tag
from contacts.spreadsheets import guard_cell, guard_row

CHUNK_ROWS = 5000
ERASED_ROW = "number erased at its owner's request (GDPR): it may not be imported again"
EXPORT_COLUMNS = (*("phone", *FIELDS), "groups", "tags", "attributes", "created_at")
UPDATABLE = FIELDS


@dataclass
class ImportCounts:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    invalid: int = 0

    @property
    def rows(self) -> int:
        return self.imported + self.updated + self.unchanged + self.duplicates + self.invalid

    @property
    def skipped(self) -> int:
        return self.unchanged + self.duplicates

    def add(self, other: ImportCounts) -> None:
        for name in ("imported", "updated", "unchanged", "duplicates", "invalid"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def summary_line(self, kind: str = ImportJob.Kind.CONTACTS) -> str:
        return ImportJob(kind=kind, **self.__dict__).summary_line()


@dataclass
class ChunkOutcome:
    """What one written chunk did, handed to the progress callback."""

    counts: ImportCounts
    last_line: int
    samples: list[dict[str, str]] = field(default_factory=list)
    undo: dict[str, list[Any]] = field(default_factory=dict)


class ErrorReport:
    """The rejected rows as CSV: line, reason, and the row as it was in the file.

    It stops after HERALD_IMPORT_ERROR_REPORT_ROWS rows or _BYTES bytes (a file of a
    million bad rows, or of enormous ones, would otherwise be copied whole) and its last
    line says how many more there were: `finish` writes it.
    """

    def __init__(
        self,
        stream: IO[str] | None,
        header: list[str],
        write_header: bool = True,
        written_bytes: int = 0,
    ) -> None:
        self.stream = stream
        self.writer = csv.writer(self) if stream is not None else None
        self.max_rows = settings.HERALD_IMPORT_ERROR_REPORT_ROWS
        self.max_bytes = settings.HERALD_IMPORT_ERROR_REPORT_BYTES
        self.written_bytes = written_bytes
        self.rows = 0
        self.left_out = 0
        if self.writer and write_header:
            self.writer.writerow(guard_row(["line", "error", *header]))
        self.first: list[RowProblem] = []

    def write(self, text: str) -> None:
        """csv.writer's file: counts what goes through (characters: at most the bytes)."""
        assert self.stream is not None
        self.written_bytes += len(text)
        self.stream.write(text)

    def add(self, problem: RowProblem) -> None:
        if len(self.first) < 200:
            self.first.append(problem)
        if not self.writer:
            return
        if self.rows >= self.max_rows or self.written_bytes >= self.max_bytes:
            self.left_out += 1
            return
        self.rows += 1
        self.writer.writerow(guard_row([problem.line, problem.error, *problem.cells]))

    def finish(self) -> None:
        """The closing line, when rows were left out."""
        if self.writer and self.left_out:
            self.writer.writerow(
                [
                    "",
                    f"{self.left_out:,} more rejected rows are not listed: the report stops at "
                    f"{self.max_rows:,} rows or {self.max_bytes:,} bytes",
                ]
            )
            self.left_out = 0


class IsoDateTimeWidget(widgets.DateTimeWidget):
    """Moments in spreadsheets as ISO 8601 with their offset ("2026-12-03T14:05:09+00:00"),
    read the same anywhere; XLSX keeps its native dates."""

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> Any:
        if kwargs.get("force_native_type") or not isinstance(value, datetime):
            return super().render(value, obj, **kwargs)
        return timezone.localtime(value).isoformat(timespec="seconds")


class ContactResource(resources.ModelResource):
    groups = fields.Field(
        attribute="groups",
        column_name="groups",
        widget=widgets.ManyToManyWidget(Group, separator=", ", field="name"),
    )
    tags = fields.Field(
        attribute="tags",
        column_name="tags",
        widget=widgets.ManyToManyWidget(Tag, separator=", ", field="name"),
    )
    attributes = fields.Field(column_name="attributes")
    created_at = fields.Field(
        attribute="created_at", column_name="created_at", widget=IsoDateTimeWidget(), readonly=True
    )

    class Meta:
        model = Contact
        import_id_fields = ("phone",)
        fields = EXPORT_COLUMNS
        export_order = EXPORT_COLUMNS

    def __init__(
        self,
        groups: Iterable[Group] = (),
        tags: Iterable[Tag] = (),
        region: str | None = None,
        job_id: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.group_ids = [g.pk for g in groups]
        self.tag_ids = [t.pk for t in tags]
        self.region = region
        self.job_id = job_id

    # Export.

    def get_export_queryset(self, request: Any = None) -> Any:
        return Contact.objects.prefetch_related("groups", "tags").order_by("pk")

    def dehydrate_attributes(self, contact: Contact) -> str:
        return json.dumps(contact.attributes, ensure_ascii=False) if contact.attributes else ""

    def export_field(self, field: Any, instance: Any, **kwargs: Any) -> Any:
        return guard_cell(super().export_field(field, instance, **kwargs))

    # Import.

    def import_source(
        self,
        source: Source,
        *,
        dry_run: bool = False,
        report: ErrorReport | None = None,
        after_line: int = 0,
        workers: int = 1,
        on_chunk: Callable[[ChunkOutcome], None] | None = None,
    ) -> ImportCounts:
        """Import every row of `source`; rows up to `after_line` were done by an earlier run.

        Each chunk is written in its own transaction, in which `on_chunk` also
        runs, so progress recorded there is exactly what the database holds.
        """
        report = report or ErrorReport(None, source.columns.header)
        total = ImportCounts()
        # Keyed by the number as an int (E.164 has no leading zeros): a million str keys
        # would cost twice the memory.
        first_line_of: dict[int, int] = {}
        any_rows = False
        with objects_so_far_frozen():
            for cleaned in self._cleaned_chunks(source, workers):
                # A batch of blank lines is no rows (the workers drop them).
                any_rows = any_rows or bool(cleaned.rows or cleaned.problems)
                pending = self._take_chunk(cleaned, first_line_of, report, after_line)
                if pending is None:
                    continue
                with transaction.atomic():
                    tune_bulk_transaction()
                    self._write(pending, dry_run)
                    if on_chunk:
                        on_chunk(pending.outcome)
                total.add(pending.outcome.counts)
        if not any_rows and not after_line:
            raise FileProblem("the file has a header but no data rows")
        return total

    def _cleaned_chunks(self, source: Source, workers: int) -> Iterator[CleanChunk]:
        known = KnownNumbers()
        jobs = (
            # The phone cells were for the lookup: the worker reads its own.
            (replace(batch, phones=[]), source.columns, self.region, known.among(batch.phones))
            for batch in source.batches(CHUNK_ROWS)
        )
        if workers <= 1 or multiprocessing.current_process().daemon:
            # django-q2 workers are daemonic and may not fork: clean in-process there.
            yield from map(clean_batch, jobs)
            return
        # Fork: the workers only clean rows and never touch the database connection.
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            # A few batches queued for each worker (~10 MB in all): a commit that waits on
            # the disk (a WAL checkpoint) does not leave them without work.
            yield from self._cleaned_by(pool, iter(jobs), workers * 4)

    def _cleaned_by(self, pool: Any, jobs: Iterator[CleanJob], most: int) -> Iterator[CleanChunk]:
        """The pool's chunks in order, `most` at a time in flight (never the whole file)."""
        pending: deque[Any] = deque()
        while True:
            try:
                job = next(jobs, None)
            except FileProblem:
                # The file broke: the rows read before it are written, then the error told.
                while pending:
                    yield pending.popleft().get()
                raise
            if job is None:
                break
            pending.append(pool.apply_async(clean_batch, (job,)))
            if len(pending) >= most:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()

    def _take_chunk(
        self,
        cleaned: CleanChunk,
        first_line_of: dict[int, int],
        report: ErrorReport,
        after_line: int,
    ) -> _PendingChunk | None:
        """Drop duplicates within the file; rows before `after_line` only feed the dedupe."""
        counts = ImportCounts()
        fresh: list[CleanRow] = []
        rejected: list[RowProblem] = []
        for row in cleaned.rows:
            first = first_line_of.setdefault(int(row.phone[1:]), row.line)
            if row.line <= after_line:
                continue
            if first != row.line:
                counts.duplicates += 1
                rejected.append(
                    RowProblem(row.line, f"duplicate of line {first} ({row.phone})", [])
                )
            else:
                fresh.append(row)
        erased = ErasedNumber.objects.among(row.phone for row in fresh)
        if erased:
            counts.invalid += len([row for row in fresh if row.phone in erased])
            # Without the row's cells: the report must not write the number down again.
            rejected += [
                RowProblem(row.line, ERASED_ROW, []) for row in fresh if row.phone in erased
            ]
            fresh = [row for row in fresh if row.phone not in erased]
        for problem in cleaned.problems:
            if problem.line > after_line:
                counts.invalid += 1
                rejected.append(problem)
        for problem in sorted(rejected, key=lambda p: p.line):
            report.add(problem)
        lines = [r.line for r in cleaned.rows] + [p.line for p in cleaned.problems]
        if not lines or max(lines) <= after_line:
            return None
        return _PendingChunk(fresh, ChunkOutcome(counts, max(lines)))

    def _write(self, pending: _PendingChunk, dry_run: bool) -> None:
        writer = ChunkWriter(self.group_ids, self.tag_ids, self.job_id, dry_run)
        writer.write(pending.rows, pending.outcome)

    def import_data(  # type: ignore[override]
        self, dataset: Any, dry_run: bool = False, raise_errors: bool = False, **kwargs: Any
    ) -> Result:
        """django-import-export's entry point, for a tablib Dataset already in memory."""
        columns = Columns.from_header([str(h or "") for h in dataset.headers])
        rows = ((i, [str(c or "") for c in row]) for i, row in enumerate(dataset, 2))
        report = ErrorReport(None, columns.header)
        source = Source(columns, rows, 0)
        counts = self.import_source(source, dry_run=dry_run, report=report)
        result = Result()
        result.total_rows = counts.rows
        totals = {
            RowResult.IMPORT_TYPE_NEW: counts.imported,
            RowResult.IMPORT_TYPE_UPDATE: counts.updated,
            RowResult.IMPORT_TYPE_SKIP: counts.skipped,
            RowResult.IMPORT_TYPE_INVALID: counts.invalid,
        }
        result.totals.update(totals)
        for problem in report.first:
            values = dict(zip(columns.header, problem.cells, strict=False))
            error = ValidationError({"phone": [problem.error]})
            result.append_invalid_row(problem.line, values, error)
        return result


@dataclass
class _PendingChunk:
    rows: list[CleanRow]
    outcome: ChunkOutcome


@dataclass
class _NewContacts:
    """The contacts a chunk inserted: their numbers, and the last contact id before them."""

    phones: list[str]
    after_id: int


class ChunkWriter:
    """Writes one chunk of clean, deduplicated rows with a handful of set-based queries."""

    def __init__(
        self,
        group_ids: list[int],
        tag_ids: list[int],
        job_id: int | None,
        dry_run: bool,
        consent_source: str = "",
    ) -> None:
        self.group_ids = group_ids
        self.tag_ids = tag_ids
        self.job_id = job_id
        self.dry_run = dry_run
        # What new contacts say they came by: the import (and its number) unless told.
        self.consent_source = consent_source or (f"import #{job_id}" if job_id else "import")
        self.now = connection.ops.adapt_datetimefield_value(timezone.now())

    def write(self, rows: list[CleanRow], outcome: ChunkOutcome) -> None:
        existing = self._existing([r.phone for r in rows])
        new_rows = [r for r in rows if r.phone not in existing]
        changes, previous = self._changes(rows, existing)
        counts = outcome.counts
        counts.imported += len(new_rows)
        counts.updated += len(changes)
        counts.unchanged += len(rows) - len(new_rows) - len(changes)
        outcome.samples = _samples(rows, existing, changes)
        if self.dry_run:
            return
        new = self._insert(new_rows)
        self._update(changes)
        added_groups = self._add_memberships(
            Contact.groups.through, "group_id", self.group_ids, new, existing
        )
        added_tags = self._add_memberships(
            Contact.tags.through, "tag_id", self.tag_ids, new, existing
        )
        outcome.undo = {
            "previous_values": previous,
            "added_groups": added_groups,
            "added_tags": added_tags,
        }

    def _existing(self, phones: list[str]) -> dict[str, dict[str, Any]]:
        columns = ("id", "phone", *UPDATABLE, "attributes")
        found = select_contacts_by_phone(columns, phones)
        return {row[1]: dict(zip(columns, row, strict=True)) for row in found}

    def _changes(
        self, rows: list[CleanRow], existing: dict[str, dict[str, Any]]
    ) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[int, dict[str, Any]]]]:
        """New values for contacts the file changes (empty cells never erase), and the old ones."""
        changes, previous = [], []
        for row in rows:
            current = existing.get(row.phone)
            if current is None:
                continue
            wanted: dict[str, Any] = {
                k: v for k, v in zip(FIELDS, row.fields, strict=True) if v and v != current[k]
            }
            if row.attributes_json and row.attributes_json != current["attributes"]:
                old_attributes = json_column(current["attributes"])
                merged = {**old_attributes, **row.attributes()}
                if merged != old_attributes:
                    wanted["attributes"] = merged
                    current = {**current, "attributes": old_attributes}
            if wanted:
                changes.append((current["id"], wanted))
                previous.append((current["id"], {k: current[k] for k in wanted}))
        return changes, previous

    def _insert(self, rows: list[CleanRow]) -> _NewContacts:
        if not rows:
            return _NewContacts([], 0)
        after_id = last_contact_id() if self.group_ids or self.tag_ids else 0
        columns: tuple[str, ...] = ("phone", "country", *UPDATABLE, "attributes")
        columns = (*columns, "consent_source", "import_job_id", "created_at", "updated_at")
        values = [
            (
                r.phone,
                r.country,
                *r.fields,
                r.attributes_json or "{}",
                self.consent_source,
                self.job_id,
                self.now,
                self.now,
            )
            for r in rows
        ]
        bulk_insert(Contact._meta.db_table, columns, values)
        return _NewContacts([r.phone for r in rows], after_id)

    def _update(self, changes: list[tuple[int, dict[str, Any]]]) -> None:
        for names in {tuple(sorted(c)) for _, c in changes}:
            batch = [(pk, c) for pk, c in changes if tuple(sorted(c)) == names]
            assignments = ", ".join(
                f"{connection.ops.quote_name(n)} = {_placeholder(n)}" for n in names
            )
            table = Contact._meta.db_table  # names from model meta, values as parameters
            sql = f"UPDATE {table} SET {assignments}, updated_at = %s WHERE id = %s"  # noqa: S608
            params = [(*(_db_value(n, c[n]) for n in names), self.now, pk) for pk, c in batch]
            with connection.cursor() as cursor:
                cursor.executemany(sql, params)

    def _add_memberships(
        self,
        through: Any,
        column: str,
        target_ids: list[int],
        new: _NewContacts,
        existing: dict[str, dict[str, Any]],
    ) -> list[list[int]]:
        """Memberships for every row; returns those added to contacts that existed before."""
        if not target_ids:
            return []
        table, columns = through._meta.db_table, ("contact_id", column)
        if new.phones:  # new contacts cannot have memberships yet
            add_new_contacts_to(table, column, target_ids, new.phones, new.after_id)
        old_ids = [c["id"] for c in existing.values()]
        had = set(select_pairs(table, column, old_ids, target_ids))
        missing = [(cid, tid) for cid in old_ids for tid in target_ids if (cid, tid) not in had]
        return [list(row) for row in insert_missing(table, columns, missing)]


@contextlib.contextmanager
def objects_so_far_frozen() -> Iterator[None]:
    """The garbage collector leaves alone what the process held before (Django, the models,
    libphonenumber's metadata) while an import makes millions of short-lived objects.

    Each full collection would walk all of it again: a few per cent of an import's time.
    Workers forked meanwhile inherit this, so they do not touch (and copy) those pages.
    """
    if gc.get_freeze_count():  # frozen by someone else: theirs to thaw
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class KnownNumbers:
    """known_numbers for an import's batches, asking less often while it finds none.

    A miss only costs a validation, and a new list's lookups, one query a batch that finds
    nothing, cost it 2-3% of its time: after a batch with none, the next few are not
    looked up; one with any brings the lookups back at once.
    """

    PAUSE = 7  # batches not looked up after one with no known number

    def __init__(self) -> None:
        self.paused = 0

    def among(self, cells: list[str]) -> dict[str, str]:
        if self.paused:
            self.paused -= 1
            return {}
        found = known_numbers(cells)
        self.paused = 0 if found else self.PAUSE
        return found


def known_numbers(cells: list[str]) -> dict[str, str]:
    """Which of these phone cells are, exactly, the number of a contact whose number was
    validated: {E.164: its country}. See RowCleaner."""
    candidates = [
        text for cell in cells if (text := cell.strip())[:1] == "+" and text[1:].isdecimal()
    ]
    if not candidates:
        return {}
    found = select_contacts_by_phone(("phone", "country"), candidates)
    return {phone: country for phone, country in found if country}


def _samples(
    rows: list[CleanRow],
    existing: dict[str, dict[str, Any]],
    changes: list[tuple[int, dict[str, Any]]],
) -> list[dict[str, str]]:
    changed_ids = {pk for pk, _ in changes}
    samples = []
    for row in rows[:20]:
        current = existing.get(row.phone)
        action = (
            "new"
            if current is None
            else ("update" if current["id"] in changed_ids else "unchanged")
        )
        sample = {"line": str(row.line), "phone": row.phone, "action": action, **row.values()}
        # Custom columns as one cell ("plan: gold; city: Leeds"): a mapping changed on the
        # preview shows what each column now becomes.
        attributes = row.attributes()
        sample["attributes"] = "; ".join(f"{key}: {value}" for key, value in attributes.items())
        samples.append(sample)
    return samples


def _db_value(name: str, value: Any) -> Any:
    return encode_attributes(value) if name == "attributes" else value


def _placeholder(name: str) -> str:
    """JSON goes in as text; PostgreSQL needs to be told it is jsonb."""
    return "%s::jsonb" if name == "attributes" and connection.vendor == "postgresql" else "%s"


# Opt-outs: the export is import-export's; the import streams like the contacts' does.


class OptOutResource(resources.ModelResource):
    created_at = fields.Field(
        attribute="created_at", column_name="created_at", widget=IsoDateTimeWidget(), readonly=True
    )

    class Meta:
        model = OptOut
        import_id_fields = ("phone", "channel")
        fields = ("phone", "channel", "source", "note", "created_at")

    def __init__(
        self, region: str | None = None, channel: str = "", job_id: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.region = region or settings.HERALD_DEFAULT_REGION
        self.channel = channel  # for rows that name none; "" refuses them

    def export_field(self, field: Any, instance: Any, **kwargs: Any) -> Any:
        # A note typed in the admin reaches spreadsheets too.
        return guard_cell(super().export_field(field, instance, **kwargs))

    def import_source(
        self,
        source: Source,
        *,
        dry_run: bool = False,
        report: ErrorReport | None = None,
        after_line: int = 0,
        workers: int = 1,
        on_chunk: Callable[[ChunkOutcome], None] | None = None,
    ) -> ImportCounts:
        """Put every row's number on its channel's suppression list, a chunk per transaction.

        Rows up to `after_line` were done by an earlier run; numbers already on the list
        are counted as unchanged. `workers` is accepted for the contacts' signature: opt-out
        rows are cheap enough to clean in this process.
        """
        self._check_columns(source.columns)
        report = report or ErrorReport(None, source.columns.header)
        total = ImportCounts()
        first_line_of: dict[int, int] = {}  # number * 2 + (WhatsApp or not) -> its first line
        any_rows = False
        for numbered in chunked(source.rows, CHUNK_ROWS):
            any_rows = True
            rows, counts = self._take_chunk(
                numbered, source.columns, first_line_of, report, after_line
            )
            last_line = numbered[-1][0]
            if last_line <= after_line:
                continue
            with transaction.atomic():
                tune_bulk_transaction()
                outcome = ChunkOutcome(counts, last_line, self._write(rows, counts, dry_run))
                if on_chunk:
                    on_chunk(outcome)
            total.add(counts)
        if not any_rows and not after_line:
            raise FileProblem("the file has a header but no data rows")
        return total

    def _check_columns(self, columns: Columns) -> None:
        if not self.channel and "channel" not in columns.index:
            found = names_for_a_message(columns.header)
            raise FileProblem(
                "no channel column: add one (sms or whatsapp on each row), or choose on the "
                f"form the channel of rows that name none (found: {found})"
            )

    def _take_chunk(
        self,
        numbered: list[tuple[int, list[str]]],
        columns: Columns,
        first_line_of: dict[int, int],
        report: ErrorReport,
        after_line: int,
    ) -> tuple[list[OptOutRow], ImportCounts]:
        """Clean rows; drop repeats within the file and erased numbers, reporting each."""
        counts, fresh, rejected = ImportCounts(), [], []
        for line, cells in numbered:
            try:
                row = clean_opt_out_row(line, cells, columns, self.region, self.channel)
            except RowError as exc:
                if line > after_line:
                    counts.invalid += 1
                    rejected.append(RowProblem(line, str(exc), cells))
                continue
            key = int(row.phone[1:]) * 2 + (row.channel == Channel.WHATSAPP)
            first = first_line_of.setdefault(key, line)
            if line <= after_line:
                continue
            if first != line:
                counts.duplicates += 1
                rejected.append(RowProblem(line, f"duplicate of line {first} ({row.phone})", []))
            else:
                fresh.append(row)
        erased = ErasedNumber.objects.among(row.phone for row in fresh)
        if erased:
            counts.invalid += len([row for row in fresh if row.phone in erased])
            # Without the row's cells: the report must not write the number down again.
            rejected += [RowProblem(r.line, ERASED_ROW, []) for r in fresh if r.phone in erased]
            fresh = [row for row in fresh if row.phone not in erased]
        for problem in sorted(rejected, key=lambda p: p.line):
            report.add(problem)
        return fresh, counts

    def _write(
        self, rows: list[OptOutRow], counts: ImportCounts, dry_run: bool
    ) -> list[dict[str, str]]:
        """Insert the entries not on the list yet; the chunk's first rows, for the preview."""
        listed = set(
            OptOut.objects.filter(phone__in=[row.phone for row in rows]).values_list(
                "phone", "channel"
            )
        )
        new = [row for row in rows if (row.phone, row.channel) not in listed]
        added = len(new)
        if new and not dry_run:
            moment = timezone.now()
            now = connection.ops.adapt_datetimefield_value(moment)
            values = [(r.phone, r.channel, r.source, r.note, now) for r in new]
            columns = ("phone", "channel", "source", "note", "created_at")
            # A STOP may have come in since the lookup: what is there already stays as it is.
            inserted = insert_missing(OptOut._meta.db_table, columns, values)
            added = len(inserted)
            if inserted and events.opted_out.wanted():
                entries = [
                    (phone, channel, source, moment) for phone, channel, source, *_ in inserted
                ]
                events.opted_out.send(sender=OptOut, entries=entries)
        counts.imported += added
        counts.unchanged += len(rows) - added
        return [
            {
                "line": str(row.line),
                "phone": row.phone,
                "channel": row.channel,
                "action": "already on the list" if (row.phone, row.channel) in listed else "new",
            }
            for row in rows[:20]
        ]
