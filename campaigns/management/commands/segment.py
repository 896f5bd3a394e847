"""Make, look at, count and delete segments from the shell.

    python manage.py segment create NAME [--any] --rule "EXPR"... [--as USERNAME]
    python manage.py segment list [--json]
    python manage.py segment show NAME
    python manage.py segment count NAME
    python manage.py segment delete NAME

`create` prints nothing but the new segment's id. A rule is `FIELD OP VALUE`
(README, "Segments"); a rule that cannot be read stops the command with one line
naming it and what is wrong. A segment matches contacts meeting all its rules, or
any of them with --any.

`list` shows each segment's name, number of rules, size now and the campaigns
using it; with --json, one JSON list of objects: id, name, match ("all" or
"any"), rules, size and campaigns (ids). `show` prints one segment's rules and
the same figures; `count` prints its size alone. Segments are evaluated when
asked, so sizes are those of this moment. What evaluating found worth saying (an
attribute no contact has) goes to stderr as "warning: ..." and does not fail.

`delete` refuses a segment some campaign targets or excludes.
With no subcommand the command prints its usage.
"""

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from campaigns.management.commands.campaign import user_named
from campaigns.presenters import error_text
from campaigns.segments import Evaluation, RuleError, Segment, parse_rules


class Command(BaseCommand):
    help = "Make, list, show, count and delete segments (saved rules over contacts)."

    def add_arguments(self, parser: CommandParser) -> None:
        self.usage = parser.format_help
        subcommands = parser.add_subparsers(dest="subcommand")
        create = subcommands.add_parser("create", help="save a new segment; prints its id")
        create.add_argument("name", help="the segment's name (unique)")
        create.add_argument(
            "--any", action="store_true", help="match contacts meeting any rule (default: all)"
        )
        create.add_argument(
            "--rule",
            dest="rules",
            action="append",
            required=True,
            metavar="EXPR",
            help='one rule, FIELD OP VALUE (e.g. "attr.city = Leeds"); repeat for more',
        )
        create.add_argument("--as", dest="username", help="the staff user creating it (optional)")
        listing = subcommands.add_parser("list", help="every segment with its size now")
        listing.add_argument("--json", action="store_true", help="one JSON list for scripts")
        for name, text in (
            ("show", "a segment's rules, size, warnings and the campaigns using it"),
            ("count", "how many contacts a segment has now (one number)"),
            ("delete", "delete a segment no campaign uses"),
        ):
            subcommands.add_parser(name, help=text).add_argument("name", help="the segment's name")

    def handle(self, *args: Any, **options: Any) -> None:
        subcommand = options["subcommand"]
        if subcommand is None:
            self.stdout.write(self.usage())
            raise CommandError("say what to do: one of the subcommands above", returncode=2)
        {
            "create": self.create,
            "list": self.list_segments,
            "show": self.show,
            "count": self.count,
            "delete": self.delete,
        }[subcommand](options)

    def create(self, options: dict[str, Any]) -> None:
        name = options["name"]
        try:
            rules = parse_rules(options["rules"])
        except RuleError as exc:
            raise CommandError(str(exc)) from None
        if not rules:
            raise CommandError("give the segment at least one --rule")
        if Segment.objects.filter(name=name).exists():
            raise CommandError(f"a segment named {name!r} already exists")
        created_by = user_named(options["username"]) if options["username"] else None
        segment = Segment(
            name=name,
            match_any=options["any"],
            rules=[str(rule) for rule in rules],
            created_by=created_by,
        )
        try:
            segment.full_clean()
        except ValidationError as exc:
            raise CommandError(error_text(exc)) from None
        segment.save_by(created_by)
        evaluation = Evaluation()
        segment.condition(evaluation)  # only to hear what it has to say
        self.warn(evaluation)
        self.stdout.write(str(segment.pk))

    def list_segments(self, options: dict[str, Any]) -> None:
        evaluation = Evaluation()
        summaries = [summary(segment, evaluation) for segment in Segment.objects.order_by("name")]
        self.warn(evaluation)
        if options["json"]:
            self.stdout.write(json.dumps(summaries))
            return
        if not summaries:
            self.stdout.write("no segments yet: make one with `segment create NAME --rule ...`")
            return
        width = max(len(s["name"]) for s in summaries)
        for s in summaries:
            used = ", ".join(map(str, s["campaigns"])) or "-"
            rules = f"{len(s['rules'])} rule{'s' * (len(s['rules']) != 1)}"
            self.stdout.write(
                f"{s['name']:<{width}}  {rules:>8} ({s['match']:<3})  "
                f"{s['size']:>9} contacts  campaigns: {used}"
            )

    def show(self, options: dict[str, Any]) -> None:
        segment = segment_named(options["name"])
        evaluation = Evaluation()
        shown = summary(segment, evaluation)
        self.stdout.write(f"segment {segment.pk}: {segment.name}")
        self.stdout.write(f"match: {shown['match']} of these rules")
        for rule in shown["rules"]:
            self.stdout.write(f"  {rule}")
        self.stdout.write(f"size: {shown['size']}")
        used = ", ".join(map(str, shown["campaigns"])) or "none"
        self.stdout.write(f"used by campaigns: {used}")
        self.warn(evaluation)

    def count(self, options: dict[str, Any]) -> None:
        segment = segment_named(options["name"])
        evaluation = Evaluation()
        size = segment.contacts(evaluation).count()
        self.warn(evaluation)
        self.stdout.write(str(size))

    def delete(self, options: dict[str, Any]) -> None:
        segment = segment_named(options["name"])
        pk = segment.pk
        try:
            segment.delete_by(None)
        except ValidationError as exc:  # SegmentInUse: it says which campaigns
            raise CommandError(error_text(exc)) from None
        self.stdout.write(f"segment {pk} deleted: {segment.name}")

    def warn(self, evaluation: Evaluation) -> None:
        for warning in evaluation.warnings:
            self.stderr.write(f"warning: {warning}")


def summary(segment: Segment, evaluation: Evaluation) -> dict[str, Any]:
    """What `list --json` says of a segment; its size is counted now."""
    return {
        "id": segment.pk,
        "name": segment.name,
        "match": "any" if segment.match_any else "all",
        "rules": list(segment.rules),
        "size": segment.contacts(evaluation).count(),
        "campaigns": segment.used_by(),
    }


def segment_named(name: str) -> Segment:
    try:
        return Segment.objects.get(name=name)
    except Segment.DoesNotExist:
        raise CommandError(f"no segment named {name!r}") from None
