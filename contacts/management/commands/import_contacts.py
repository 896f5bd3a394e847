"""Import contacts from a CSV or XLSX file, as fast as the machine allows.

    python manage.py import_contacts PATH [--group NAME]... [--tag NAME]... [--region CC]
                                          [--dry-run] [--errors-out PATH] [--workers N]

The last line of output is always `imported=N updated=N skipped=N invalid=N`
(skipped: unchanged or duplicated in the file). Exit 1 when the file itself is
unusable, with a one-line reason; bad rows are counted, not fatal.
"""

import contextlib
import os
import sys
from pathlib import Path
from typing import IO, Any

import phonenumbers
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from contacts import jobs
from contacts.importing import FileProblem, Source, open_source
from contacts.models import Group, ImportJob, Tag
from contacts.resources import (
    ChunkOutcome,
    ContactResource,
    ErrorReport,
    ImportCounts,
    OptOutResource,
)


class Command(BaseCommand):
    help = "Import contacts from a CSV or XLSX file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        parser.add_argument("--group", action="append", default=[], help="add to this group")
        parser.add_argument("--tag", action="append", default=[], help="tag with this tag")
        parser.add_argument("--region", default=settings.HERALD_DEFAULT_REGION, help="e.g. GB")
        parser.add_argument("--dry-run", action="store_true", help="check only; write nothing")
        parser.add_argument("--errors-out", help="write rejected rows here as CSV")
        parser.add_argument(
            "--workers", type=int, default=os.cpu_count() or 1, help="processes cleaning rows"
        )

    kind = ImportJob.Kind.CONTACTS

    def handle(self, *args: Any, **options: Any) -> None:
        region = options["region"].upper()
        if phonenumbers.country_code_for_region(region) == 0:
            raise CommandError(f"unknown region {options['region']!r}: use a country code like GB")
        try:
            source = open_source(options["path"], jobs.LAYOUTS[self.kind])
        except FileProblem as exc:
            raise CommandError(f"{Path(options['path']).name}: {exc}") from None
        with contextlib.ExitStack() as stack:
            errors_out = None
            if options["errors_out"]:
                errors_out = stack.enter_context(open(options["errors_out"], "w", newline=""))
            bar = stack.enter_context(self._progress_bar(source))
            stack.callback(source.close)
            if options["dry_run"]:
                counts = self._dry_run(source, options, region, errors_out, bar)
            else:
                counts = self._import(source, options, region, errors_out, bar)
        self.stdout.write(counts.summary_line(self.kind))

    def resource(self, options: Any, region: str) -> ContactResource | OptOutResource:
        return ContactResource(region=region)

    def new_job(self, path: Path, options: Any, region: str, size: int) -> ImportJob:
        job = ImportJob.objects.create(
            origin=ImportJob.Origin.CLI,
            source_path=str(path),
            original_name=path.name,
            region=region,
            status=ImportJob.Status.QUEUED,
            bytes_total=size,
        )
        job.groups.set([Group.objects.get_or_create(name=name)[0] for name in options["group"]])
        job.tags.set([Tag.objects.get_or_create(name=name)[0] for name in options["tag"]])
        return job

    def _dry_run(
        self, source: Source, options: Any, region: str, errors_out: IO[str] | None, bar: tqdm
    ) -> ImportCounts:
        report = ErrorReport(errors_out, source.columns.header)
        try:
            return self.resource(options, region).import_source(
                source,
                dry_run=True,
                report=report,
                workers=options["workers"],
                on_chunk=lambda outcome: self._tick(bar, outcome, source),
            )
        except FileProblem as exc:
            raise CommandError(f"{Path(options['path']).name}: {exc}") from None
        finally:
            report.finish()

    def _import(
        self, source: Source, options: Any, region: str, errors_out: IO[str] | None, bar: tqdm
    ) -> ImportCounts:
        path = Path(options["path"]).resolve()
        job = self.new_job(path, options, region, source.size)
        try:
            jobs.run(
                job,
                workers=options["workers"],
                errors_out=errors_out,
                on_progress=lambda outcome, src: self._tick(bar, outcome, src),
            )
        except FileProblem as exc:
            raise CommandError(f"{path.name}: {exc}") from None
        except Exception as exc:
            job.refresh_from_db()
            self.stdout.write(job.summary_line())
            raise CommandError(f"import #{job.pk} {job.failure_reason}") from exc
        job.refresh_from_db()
        counts = ImportCounts()
        for name in ("imported", "updated", "unchanged", "duplicates", "invalid"):
            setattr(counts, name, getattr(job, name))
        return counts

    def _progress_bar(self, source: Source) -> tqdm:
        bar = tqdm(
            total=source.size or None,
            unit="B",
            unit_scale=True,
            desc="importing",
            file=sys.stderr,
            disable=not sys.stderr.isatty(),
        )
        bar.so_far = ImportCounts()
        return bar

    def _tick(self, bar: tqdm, outcome: ChunkOutcome, source: Source) -> None:
        bar.so_far.add(outcome.counts)
        bar.set_postfix(rows=bar.so_far.rows, invalid=bar.so_far.invalid, refresh=False)
        bar.update(max(source.bytes_read() - bar.n, 0))
