"""Running an ImportJob: check (dry run with preview), import (resumable), roll back.

Contact and opt-out files take the same path; `_resource` picks who writes the rows.
A file is never parsed inside a request's write transaction: `start_check` runs once the
upload is committed, checks a small file there and then, and leaves a larger one (by its
size unpacked, for an XLSX) to a worker.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from contacts.importing import (
    ATTRIBUTE,
    CONTACTS,
    IGNORE,
    OPT_OUTS,
    FileProblem,
    Layout,
    NoPhoneColumn,
    Source,
    open_source,
    unpacked_size,
)
from contacts.models import Contact, ImportJob, ImportUndo
from contacts.resources import ChunkOutcome, ContactResource, ErrorReport, OptOutResource

logger = logging.getLogger(__name__)
S = ImportJob.Status
PREVIEW_SAMPLES = 20
PREVIEW_ERRORS = 200
#: The most columns of a file whose reading the preview lets a person choose.
MAPPED_COLUMNS = 100
LAYOUTS: dict[str, Layout] = {ImportJob.Kind.CONTACTS: CONTACTS, ImportJob.Kind.OPT_OUTS: OPT_OUTS}


def start_check(job: ImportJob) -> None:
    """After the upload's commit: check a small file now, queue a larger one for a worker.

    An XLSX is measured by its zip directory (milliseconds): one that unpacks past the
    limits fails here, before anything parses it.
    """
    try:
        size = unpacked_size(job.path)
    except FileProblem as exc:
        job.move([S.UPLOADED], S.FAILED, failure_reason=str(exc), finished_at=timezone.now())
        return
    if size <= settings.HERALD_IMPORT_INLINE_CHECK_BYTES:
        try:
            check(job)
        except Exception:
            # Recorded on the job, whose page the upload goes on to show, and logged: the
            # marketer reads why instead of a 500 page.
            logger.exception("checking import %s failed", job.pk)
    else:
        from django_q.tasks import async_task

        async_task("contacts.tasks.check_import", job.pk)


def check(job: ImportJob) -> ImportJob:
    """Dry run: counts of what would happen, sample rows, the rows it would reject."""
    if not job.move([S.UPLOADED], S.VALIDATING, started_at=timezone.now(), finished_at=None):
        return job
    try:
        preview = _dry_run(job)
    except FileProblem as exc:
        # Without a phone column the columns can still be chosen: their names are kept.
        header = (
            [str(h)[:100] for h in exc.header[:MAPPED_COLUMNS]]
            if isinstance(exc, NoPhoneColumn)
            else []
        )
        job.move(
            [S.VALIDATING],
            S.FAILED,
            failure_reason=str(exc),
            finished_at=timezone.now(),
            header=header,
        )
        return job
    except BaseException as exc:
        reason = f"the check stopped: {failure_reason(exc)}"
        job.move([S.VALIDATING], S.FAILED, failure_reason=reason, finished_at=timezone.now())
        raise
    job.move([S.VALIDATING], S.VALIDATED, preview=preview, finished_at=timezone.now())
    return job


def failure_reason(exc: BaseException) -> str:
    """One line for the job's page: a FileProblem's own words, else the error's kind and
    message; an OSError's without its file name (server paths stay on the server)."""
    if isinstance(exc, FileProblem):
        return str(exc)
    message = (exc.strerror or "") if isinstance(exc, OSError) else str(exc)
    return f"{type(exc).__name__}: {' '.join(message.split())[:300]}".strip(": ")


def _dry_run(job: ImportJob) -> dict[str, Any]:
    source = open_source(job.path, LAYOUTS[job.kind], job.column_mapping)
    samples: list[dict[str, str]] = []

    def progress(outcome: ChunkOutcome) -> None:
        samples.extend(outcome.samples[: PREVIEW_SAMPLES - len(samples)])
        _record_progress(job, source, outcome, counted=False)

    with _report_file(job, append=False) as stream, contextlib.closing(source):
        report = ErrorReport(stream, source.columns.header)
        counts = _resource(job, for_real=False).import_source(
            source, dry_run=True, report=report, on_chunk=progress
        )
        report.finish()
    return {
        "counts": {**counts.__dict__, "skipped": counts.skipped},
        "samples": samples,
        "errors": [{"line": p.line, "error": p.error} for p in report.first[:PREVIEW_ERRORS]],
        "columns": describe_columns(source),
    }


def confirm(job: ImportJob) -> bool:
    """The person looked at the preview and said go: queue the real import (once)."""
    moved = job.move([S.VALIDATED], S.QUEUED, rows_done=0, bytes_done=0, invalid=0, started_at=None)
    if moved:
        from django_q.tasks import async_task

        pk = job.pk
        transaction.on_commit(lambda: async_task("contacts.tasks.run_import", pk))
    return moved


def remap(job: ImportJob, mapping: dict[str, str]) -> bool:
    """Read the file's columns as `mapping` says, and check it again (a new preview).

    Only before confirming (a preview waiting, or a check that failed): the check and the
    import then read the columns alike.
    """
    if not may_remap(job):
        return False
    moved = job.move(
        [S.VALIDATED, S.FAILED],
        S.UPLOADED,
        column_mapping=mapping,
        failure_reason="",
        preview={},
        rows_done=0,
        bytes_done=0,
        invalid=0,
        finished_at=None,
    )
    if moved:
        transaction.on_commit(lambda: start_check(job))
    return moved


def may_remap(job: ImportJob) -> bool:
    """Its columns may be chosen again while nothing of it was imported (as for discarding)."""
    return may_discard(job)


def may_discard(job: ImportJob) -> bool:
    """Nothing of it was imported: its preview awaits a decision, or its check failed."""
    return job.status == S.VALIDATED or (job.status == S.FAILED and not job.was_confirmed())


def discard(job: ImportJob) -> bool:
    """Delete a job nobody confirmed, with its file and its report of rejected rows."""
    with transaction.atomic():
        locked = ImportJob.objects.select_for_update().filter(pk=job.pk).first()
        if locked is None or not may_discard(locked):
            return False
        files = [f for f in (locked.file, locked.error_report) if f]
        locked.delete()
    for stored in files:
        if stored.name:
            stored.storage.delete(stored.name)
    return True


def resume(job: ImportJob) -> bool:
    """Queue a failed (or stalled) import to continue after its last committed line.

    A job that failed in its check was never previewed nor confirmed: it is checked again,
    never imported on the strength of a preview nobody saw.
    """
    if not job.was_confirmed():
        moved = job.move([S.FAILED], S.UPLOADED, failure_reason="", finished_at=None)
        if moved:
            transaction.on_commit(lambda: start_check(job))
        return moved
    moved = job.move([S.FAILED], S.QUEUED, failure_reason="") or job.take_over(S.QUEUED)
    if moved:
        from django_q.tasks import async_task

        pk = job.pk
        transaction.on_commit(lambda: async_task("contacts.tasks.run_import", pk))
    return moved


def run(
    job: ImportJob,
    workers: int = 1,
    errors_out: IO[str] | None = None,
    on_progress: Callable[[ChunkOutcome, Source], None] | None = None,
) -> ImportJob:
    """Import the file, from where an earlier run stopped; a failure is recorded, then raised."""
    started = {"started_at": timezone.now()} if job.started_at is None else {}
    # A job whose worker died mid-way (no progress for a while) is taken over: this is
    # how django-q2's retry of a lost task finishes the import.
    if not (
        job.move([S.QUEUED], S.RUNNING, finished_at=None, **started) or job.take_over(S.RUNNING)
    ):
        return job
    try:
        source = open_source(job.path, LAYOUTS[job.kind], job.column_mapping)
    except FileProblem as exc:
        job.move([S.RUNNING], S.FAILED, failure_reason=str(exc), finished_at=timezone.now())
        raise
    resuming = job.resume_line > 0
    closing = contextlib.closing(source)

    def progress(outcome: ChunkOutcome) -> None:
        _record_progress(job, source, outcome, counted=True)
        if on_progress:
            on_progress(outcome, source)

    try:
        with _report_file(job, append=resuming, stream=errors_out) as stream, closing:
            report = ErrorReport(
                stream,
                source.columns.header,
                write_header=not resuming,
                written_bytes=stream.tell() if resuming and stream.seekable() else 0,
            )
            try:
                _resource(job, for_real=True).import_source(
                    source,
                    report=report,
                    after_line=job.resume_line,
                    workers=workers,
                    on_chunk=progress,
                )
            finally:
                report.finish()
    except BaseException as exc:
        job.refresh_from_db()
        reason = failure_reason(exc)
        job.move(
            [S.RUNNING],
            S.FAILED,
            failure_reason=f"stopped after line {job.resume_line}: {reason}",
            finished_at=timezone.now(),
        )
        raise
    job.move([S.RUNNING], S.COMPLETED, finished_at=timezone.now(), bytes_done=job.bytes_total)
    logger.info("import %s completed: %s", job.pk, job.summary_line())
    refresh_planner_statistics()
    return job


def refresh_planner_statistics() -> None:
    """After a big load, let PostgreSQL's planner know how big the contact tables are now.

    Autovacuum gets there eventually; a campaign built from the list minutes after the
    import would otherwise be planned for the old, small tables (hashing a million
    memberships for every chunk instead of looking each contact up).
    """
    if connection.vendor != "postgresql":
        return
    tables = [Contact._meta.db_table, Contact.groups.through._meta.db_table]
    tables.append(Contact.tags.through._meta.db_table)
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")


def roll_back(job: ImportJob) -> bool:
    """Undo an import: restore changed contacts, drop added memberships, delete created contacts."""
    if not job.may_roll_back:
        return False
    with transaction.atomic():
        if not job.move([S.COMPLETED, S.FAILED], S.ROLLED_BACK, finished_at=timezone.now()):
            return False
        for entry in job.undo_entries.order_by("-pk"):
            _undo(entry)
        Contact.objects.filter(import_job=job).delete()
    return True


def _undo(entry: ImportUndo) -> None:
    for contact_id, values in entry.previous_values:
        Contact.objects.filter(pk=contact_id).update(**values)
    for through, column, pairs in (
        (Contact.groups.through, "group_id", entry.added_groups),
        (Contact.tags.through, "tag_id", entry.added_tags),
    ):
        for contact_id, target_id in pairs:
            through.objects.filter(contact_id=contact_id, **{column: target_id}).delete()


def _record_progress(job: ImportJob, source: Source, outcome: ChunkOutcome, counted: bool) -> None:
    """Runs inside the chunk's transaction: progress and data commit together."""
    changes: dict[str, Any] = {
        "rows_done": F("rows_done") + outcome.counts.rows,
        "bytes_done": source.bytes_read() or F("bytes_done"),
        "bytes_total": source.size,
        "updated_at": timezone.now(),
    }
    if counted:
        changes["resume_line"] = outcome.last_line
        for name in ("imported", "updated", "unchanged", "duplicates", "invalid"):
            changes[name] = F(name) + getattr(outcome.counts, name)
        if any(outcome.undo.values()):
            ImportUndo.objects.create(job=job, **outcome.undo)
    else:
        changes["invalid"] = F("invalid") + outcome.counts.invalid
    ImportJob.objects.filter(pk=job.pk).update(**changes)


def _resource(job: ImportJob, for_real: bool) -> ContactResource | OptOutResource:
    if job.kind == ImportJob.Kind.OPT_OUTS:
        return OptOutResource(region=job.region, channel=job.channel)
    return ContactResource(
        groups=job.groups.all(),
        tags=job.tags.all(),
        region=job.region,
        job_id=job.pk if for_real else None,
    )


@contextlib.contextmanager
def _report_file(job: ImportJob, append: bool, stream: IO[str] | None = None) -> Iterator[IO[str]]:
    """The job's error report in MEDIA_ROOT, or the stream the caller gave (CLI --errors-out)."""
    if stream is not None:
        yield stream
        return
    name = job.error_report.name or f"imports/errors/import-{job.pk}.csv"
    path = Path(settings.MEDIA_ROOT) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    ImportJob.objects.filter(pk=job.pk).update(error_report=name)
    with path.open("a" if append else "w", newline="", encoding="utf-8") as opened:
        yield opened


def describe_columns(source: Source) -> list[dict[str, str]]:
    """How each column of the file will be read, for the preview: in words ("becomes"),
    and as the field, ATTRIBUTE or IGNORE a changed mapping names ("target")."""
    targets = {i: name for name, i in source.columns.index.items()}
    targets.update({i: ATTRIBUTE for i, _ in source.columns.attributes})
    becomes = {i: name.replace("_", " ") for name, i in source.columns.index.items()}
    becomes.update({i: f"attribute {{{{{key}}}}}" for i, key in source.columns.attributes})
    return [
        {"column": title, "becomes": becomes.get(i, "ignored"), "target": targets.get(i, IGNORE)}
        for i, title in enumerate(source.columns.header)
    ]


def may_act(user: Any, job: ImportJob) -> bool:
    """Confirm, resume, roll back: importers; for an opt-out list, who may add opt-outs too."""
    needs = ["contacts.add_importjob"]
    if job.kind == ImportJob.Kind.OPT_OUTS:
        needs.append("contacts.add_optout")
    return bool(user.has_perms(needs))


def progress_of(job: ImportJob) -> dict[str, Any]:
    """A job's progress as the live pages poll it (JSON)."""
    percent = round(100 * job.bytes_done / job.bytes_total, 1) if job.bytes_total else None
    return {
        "status": job.status,
        "status_label": job.get_status_display(),
        "rows_done": job.rows_done,
        "rows_per_second": round(job.rows_per_second()),
        "percent": percent,
        "imported": job.imported,
        "updated": job.updated,
        "skipped": job.skipped,
        "invalid": job.invalid,
        "resume_line": job.resume_line,
        "failure_reason": job.failure_reason,
    }
