"""Import an opt-out (suppression) list from a CSV or XLSX file.

    python manage.py import_opt_outs PATH [--channel sms|whatsapp] [--region CC]
                                          [--dry-run] [--errors-out PATH]

The file needs a phone column and a channel column (sms or whatsapp); --channel is the
channel of rows that name none. The last line of output is always
`imported=N skipped=N invalid=N` (skipped: already on the list, or repeated in the file).
Exit 1 when the file itself is unusable, with a one-line reason; bad rows are counted.
The same limits as the admin's upload apply to an XLSX (README.md, "Security").
"""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser

from contacts.management.commands import import_contacts
from contacts.models import Channel, ImportJob
from contacts.resources import OptOutResource


class Command(import_contacts.Command):
    help = "Import opt-outs (numbers never to message, per channel) from a CSV or XLSX file."
    kind = ImportJob.Kind.OPT_OUTS

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path")
        parser.add_argument(
            "--channel", choices=Channel.values, default="", help="channel of rows that name none"
        )
        parser.add_argument("--region", default=settings.HERALD_DEFAULT_REGION, help="e.g. GB")
        parser.add_argument("--dry-run", action="store_true", help="check only; write nothing")
        parser.add_argument("--errors-out", help="write rejected rows here as CSV")

    def handle(self, *args: Any, **options: Any) -> None:
        super().handle(*args, **{**options, "workers": 1})

    def resource(self, options: Any, region: str) -> OptOutResource:
        return OptOutResource(region=region, channel=options["channel"])

    def new_job(self, path: Path, options: Any, region: str, size: int) -> ImportJob:
        return ImportJob.objects.create(
            kind=self.kind,
            origin=ImportJob.Origin.CLI,
            source_path=str(path),
            original_name=path.name,
            region=region,
            channel=options["channel"],
            status=ImportJob.Status.QUEUED,
            bytes_total=size,
        )
