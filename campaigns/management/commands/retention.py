"""Purge old personal content by hand (the same purge django-q2 runs daily).

    python manage.py retention purge [--days N] [--dry-run] [--batch N]

--days defaults to HERALD_RETENTION_DAYS. The last line says what was (or, with
--dry-run, would be) purged, e.g. `purged before 2026-08-25 03:00 UTC: campaigns=2
messages=120000 status_events=118000 ...`. Safe to stop and run again.
"""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from campaigns.privacy import purge
from messaging.privacy import BATCH


class Command(BaseCommand):
    help = "Blank message bodies and delete delivery events older than the retention period."

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", required=True)
        purge_parser = subcommands.add_parser("purge", help="purge what is older than N days")
        purge_parser.add_argument(
            "--days", type=int, default=settings.HERALD_RETENTION_DAYS, help="keep this many days"
        )
        purge_parser.add_argument(
            "--dry-run", action="store_true", help="count only; change nothing"
        )
        purge_parser.add_argument("--batch", type=int, default=BATCH, help="rows per transaction")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"]
        if days < 1:
            raise CommandError(
                "retention is off: give --days N (N >= 1) or set HERALD_RETENTION_DAYS"
            )
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1")
        report = purge(days, dry_run=options["dry_run"], batch=options["batch"])
        self.stdout.write(report.summary_line())
