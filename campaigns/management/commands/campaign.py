"""Create campaigns, take them through approval and watch them send, from the shell.

    python manage.py campaign create --name N --provider NAME --body TEXT
                                     [--group G]... [--tag T]... [--segment S]...
                                     [--exclude-group G]... [--exclude-tag T]...
                                     [--exclude-segment S]... [--sender S]
                                     [--channel sms|whatsapp] [--template ID]
                                     [--frequency-cap N/D|off|house] [--as USERNAME]
                                     [--no-short-links] [--no-utm]
    python manage.py campaign submit|approve|reject|pause|resume|cancel ID --as USERNAME
                                     [--reason TEXT]
    python manage.py campaign status ID [--json]
    python manage.py campaign preview ID [--json]
    python manage.py campaign test ID --as USERNAME [--to NUMBER] [--variant B]
    python manage.py campaign list [--status S] [--json]
    python manage.py campaign duplicate ID --as USERNAME
    python manage.py campaign recount [ID ...] [--check]

`list` shows every campaign, the most recently changed first; with --json, one JSON
object a line: id, name, status, channel, owner (its creator's username, or null) and
counts (the keys of `status --json`). `duplicate` makes a new draft "<name> (copy)" with
the same content and audience, the user its creator, and prints nothing but its id.
With no subcommand the command prints its usage.

`preview` is the audience rule's answer now: audience, queued, skipped by reason
(every reason a key, 0 when none), segments and cost, each audience part (group, tag
or segment, targeted or excluded) with its own size, and what evaluating its segments
found worth saying (warnings). Once the campaign is built,
`status` adds up to it: skipped is the sum of the reasons, the rest is queued.

`status --json` also gives `clicks`: {"unique": recipients who followed one of its short
links, "total": every counted click}; the text form adds the click-through rate.

`recount` compares the kept counts (what every page shows) with a fresh count of the
messages and makes them agree, for the campaigns named or all; --check only reports and
exits 1 when any differ. The engine keeps them itself: this is for after rows were
changed by hand in the database.

`test` sends one test of a draft to one of the user's own test numbers (--to picks
which, when they have several), under the same hourly limit as the dashboard's.

`create` prints nothing but the new id, so scripts can capture it. Its audience is
any mix of groups, tags and segments minus excluded groups, tags and segments, all by
name. --frequency-cap gives the campaign its own cap (N messages per D days) or none
(off); only a user allowed to override the house cap (--as) may. Every change of
state goes through the campaign's own methods, so the shell obeys the same rules as
the admin: a submitter or an author cannot approve the campaign, a rejection needs a
reason.
"""

import json
from dataclasses import asdict
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from campaigns import drafts
from campaigns.actions import ACTIONS, check_reason
from campaigns.models import (
    ABMode,
    Campaign,
    FrequencyCap,
    TestNumber,
    TransitionNotAllowed,
    message_counts,
)
from campaigns.presenters import amount_text, error_text
from campaigns.preview import Estimate, estimate, missing_text
from campaigns.status import COUNT_KEYS, summary
from campaigns.testsend import send_test
from campaigns.variants import MAX_VARIANTS, parse_split
from contacts.models import Channel, normalise_phone
from contacts.phones import redact
from messaging import counts as counts_kept
from messaging.models import Message

#: How this command's refusals name the fields they speak of: by its flags.
SPELLING = {
    "channel": "--channel",
    "whatsapp_template": "--template",
    "frequency_cap": "--frequency-cap",
    "created_by": "--as",
}


class Command(BaseCommand):
    help = "Create campaigns, move them through approval, and show how they are sending."

    def add_arguments(self, parser: CommandParser) -> None:
        self.usage = parser.format_help
        subcommands = parser.add_subparsers(dest="subcommand")
        _add_create_parser(subcommands)
        # One subcommand per staff action; those taking a reason take it as --reason.
        for chosen in ACTIONS.values():
            transition = subcommands.add_parser(chosen.name, help=f"{chosen.name} a campaign")
            transition.add_argument("id", type=int, help="the campaign's id")
            transition.add_argument(
                "--as", dest="username", required=True, help="the staff user acting"
            )
            if chosen.takes_reason:
                transition.add_argument("--reason", default="", help=chosen.reason_help)
        status = subcommands.add_parser("status", help="show a campaign's state and counts")
        status.add_argument("id", type=int, help="the campaign's id")
        status.add_argument("--json", action="store_true", help="one line of JSON for scripts")
        preview = subcommands.add_parser(
            "preview", help="who the campaign reaches now, who is skipped and why, and the cost"
        )
        preview.add_argument("id", type=int, help="the campaign's id")
        preview.add_argument("--json", action="store_true", help="one line of JSON for scripts")
        test = subcommands.add_parser(
            "test", help="send one test of a draft to one of your own test numbers"
        )
        test.add_argument("id", type=int, help="the campaign's id")
        test.add_argument("--as", dest="username", required=True, help="the staff user testing")
        test.add_argument(
            "--to", default="", help="which of the user's test numbers (needed if several)"
        )
        test.add_argument(
            "--variant", default="A", help="an A/B campaign's variant to send (A, B, C or D)"
        )
        _add_list_parsers(subcommands)
        recount = subcommands.add_parser(
            "recount", help="make the kept counts agree with the messages (after hand edits)"
        )
        recount.add_argument("ids", type=int, nargs="*", help="campaign ids; none: all")
        recount.add_argument("--check", action="store_true", help="only report; exit 1 if off")

    def handle(self, *args: Any, **options: Any) -> None:
        subcommand = options["subcommand"]
        if subcommand is None:
            self.stdout.write(self.usage())
            raise CommandError("say what to do: one of the subcommands above", returncode=2)
        if subcommand == "list":
            self.list_campaigns(options)
        elif subcommand == "duplicate":
            self.duplicate(options)
        elif subcommand == "create":
            self.create(options)
        elif subcommand == "status":
            self.status(options)
        elif subcommand == "preview":
            self.preview(options)
        elif subcommand == "test":
            self.test(options)
        elif subcommand == "recount":
            self.recount(options)
        else:
            self.transition(subcommand, options)

    # create

    def create(self, options: dict[str, Any]) -> None:
        created_by = user_named(options["username"]) if options["username"] else None
        texts = _texts(options)
        draft = drafts.Draft(
            name=options["name"],
            provider=options["provider"],
            body=texts[0],
            variant_bodies=tuple(texts[1:]),
            ab=_ab_settings(options, len(texts)),
            channel=options["channel"],
            whatsapp_template=options["template"] or "",
            # --group is the groups part, --exclude-tag the exclude_tags part, ...
            audience={part: options[part.removesuffix("s")] for part in drafts.AUDIENCE_MODELS},
            sender=options["sender"],
            frequency_cap=options["frequency_cap"],
            track_links=not options["no_short_links"],
            link_utm=not options["no_utm"],
        )
        try:
            campaign = drafts.create(draft, created_by, SPELLING)
        except drafts.Refused as exc:
            raise CommandError(exc.text) from None
        except ValidationError as exc:
            raise CommandError(_model_problems(exc)) from None
        self.stdout.write(str(campaign.pk))

    # submit, approve, reject, pause, resume, cancel

    def transition(self, action: str, options: dict[str, Any]) -> None:
        campaign = _campaign(options["id"])
        reason = options.get("reason", "")
        try:
            check_reason(ACTIONS[action], reason)
        except ValidationError as exc:
            raise CommandError(f"{action} needs --reason: {error_text(exc)}") from None
        user = user_named(options["username"])
        old_status = campaign.status
        try:
            campaign.act(action, user, reason)
        except (PermissionDenied, TransitionNotAllowed, ValidationError) as exc:
            raise CommandError(error_text(exc)) from None
        self.stdout.write(f"campaign {campaign.pk}: {old_status} -> {campaign.status}")

    # recount

    def recount(self, options: dict[str, Any]) -> None:
        ids = options["ids"] or list(Campaign.objects.order_by("pk").values_list("pk", flat=True))
        missing = set(ids) - set(Campaign.objects.filter(pk__in=ids).values_list("pk", flat=True))
        if missing:
            raise CommandError(f"no campaign with id {', '.join(map(str, sorted(missing)))}")
        wrong = counts_kept.differences(ids)
        off = sorted({campaign_id for campaign_id, _ in wrong})
        for (campaign_id, key), (kept, fresh) in sorted(wrong.items()):
            self.stdout.write(f"campaign {campaign_id}: {key} kept {kept}, counted {fresh}")
        if options["check"]:
            if off:
                raise CommandError(f"kept counts differ for {len(off)} campaign(s)")
            self.stdout.write(f"kept counts agree for {len(ids)} campaign(s)")
            return
        counts_kept.recount(off)
        self.stdout.write(f"recounted {len(off)} of {len(ids)} campaign(s)")

    # status

    def status(self, options: dict[str, Any]) -> None:
        campaign = _campaign(options["id"])
        found = summary(campaign)
        counts, clicks = found["counts"], found["clicks"]
        if options["json"]:
            self.stdout.write(json.dumps(found))
            return
        status_line = campaign.status
        if campaign.status == Campaign.Status.PAUSED and campaign.pause_reason:
            status_line += f" ({campaign.pause_reason})"
        self.stdout.write(f"campaign {campaign.pk}: {campaign.name}")
        self.stdout.write(f"status: {status_line}")
        label_width = max(len(key) for key in counts)
        count_width = max(len(str(count)) for count in counts.values())
        for key, count in counts.items():
            self.stdout.write(f"  {key.ljust(label_width)}  {str(count).rjust(count_width)}")
        for reason, count in counts_kept.skip_counts(campaign.pk).items():
            if count:
                label = Message.SkipReason(reason).label.lower()
                self.stdout.write(f"    skipped, {label}: {count}")
        if campaign.variant_bodies:
            for variant in found["variants"]:
                figures = " ".join(f"{k} {v}" for k, v in variant["counts"].items() if v)
                won = " (winner)" if variant["winner"] else ""
                self.stdout.write(
                    f"variant {variant['variant']}{won}: {figures or 'nothing yet'}; "
                    f"clicks {variant['clicks']['unique']} unique"
                )
            if campaign.ab_decision:
                self.stdout.write(f"winner {campaign.ab_winner}: {campaign.ab_decision['why']}")
        if clicks["total"]:
            delivered = counts[Message.Status.DELIVERED]
            rate = (
                f"{clicks['unique'] / delivered:.1%} of delivered"
                if delivered
                else "none delivered"
            )
            self.stdout.write(
                f"clicks: {clicks['unique']} unique ({rate}), {clicks['total']} in all"
            )

    # preview

    def preview(self, options: dict[str, Any]) -> None:
        campaign = _campaign(options["id"])
        figures = estimate(campaign, samples=0)
        summary: dict[str, Any] = {
            "id": campaign.pk,
            "audience": figures.audience,
            "queued": figures.queued,
            "skipped": figures.skipped,
            "segments": figures.segments,
            "cost": amount_text(figures.cost),
            "currency": figures.currency,
            "missing": [asdict(missing) for missing in figures.missing],
            "parts": [asdict(part) for part in figures.parts],
            "warnings": figures.warnings,
        }
        if options["json"]:
            self.stdout.write(json.dumps(summary))
            return
        self.stdout.write(f"campaign {campaign.pk}: {campaign.name} ({campaign.status})")
        self._preview_parts(figures)
        self.stdout.write(f"audience  {figures.audience}")
        self.stdout.write(f"queued    {figures.queued}")
        for reason, count in figures.skipped.items():
            self.stdout.write(f"  skipped, {Message.SkipReason(reason).label.lower()}: {count}")
        self.stdout.write(f"segments  {figures.segments}")
        self.stdout.write(f"cost      {summary['cost']} {figures.currency}")
        for missing in figures.missing:
            self.stdout.write(missing_text(asdict(missing)))
        for warning in figures.warnings:
            self.stderr.write(f"warning: {warning}")

    def _preview_parts(self, figures: Estimate) -> None:
        """Each group, tag and segment with its own size; the audience line that follows
        is the total after exclusions."""
        labels = [
            f"{'minus ' if part.excluded else ''}{part.kind} {part.name}" for part in figures.parts
        ]
        width = max(map(len, labels), default=0)
        for label, part in zip(labels, figures.parts, strict=True):
            self.stdout.write(f"  {label.ljust(width)}  {part.size}")

    # list, duplicate

    def list_campaigns(self, options: dict[str, Any]) -> None:
        campaigns = Campaign.objects.select_related("created_by").order_by("-updated_at", "-id")
        if options["status"]:
            campaigns = campaigns.filter(status=options["status"])
        rows = list(campaigns)
        counts = message_counts([c.pk for c in rows])
        for campaign in rows:
            owner = campaign.created_by.get_username() if campaign.created_by else None
            if options["json"]:
                line = {
                    "id": campaign.pk,
                    "name": campaign.name,
                    "status": campaign.status,
                    "channel": campaign.channel,
                    "owner": owner,
                    "counts": {key: counts[campaign.pk][key] for key in COUNT_KEYS},
                }
                self.stdout.write(json.dumps(line))
                continue
            total = sum(counts[campaign.pk].values())
            self.stdout.write(
                f"{campaign.pk:>6}  {campaign.status:<16}  {campaign.channel:<8}  "
                f"{owner or '-':<16}  {total:>9} messages  {campaign.name}"
            )

    def duplicate(self, options: dict[str, Any]) -> None:
        campaign = _campaign(options["id"])
        user = user_named(options["username"])
        try:
            copy = campaign.duplicate(by=user)
        except (PermissionDenied, TransitionNotAllowed) as exc:
            raise CommandError(error_text(exc)) from None
        self.stdout.write(str(copy.pk))

    # test

    def test(self, options: dict[str, Any]) -> None:
        campaign = _campaign(options["id"])
        user = user_named(options["username"])
        number = _test_number(user, options["to"])
        try:
            message = send_test(campaign, number.phone, by=user, variant=options["variant"])
        except (PermissionDenied, TransitionNotAllowed, ValidationError) as exc:
            raise CommandError(error_text(exc)) from None
        line = f"campaign {campaign.pk}: test to {redact(message.phone)} {message.status}"
        if campaign.variant_bodies:
            line = line.replace(": test to", f": test of variant {options['variant']} to")
        error = ": ".join(filter(None, (message.error_code, message.error_message)))
        if error:
            line += f" ({error})"
        self.stdout.write(line)


def _test_number(user: User, wanted: str) -> TestNumber:
    """The user's test number `wanted` (any form of it), or their only one."""
    numbers = list(TestNumber.objects.of(user))
    if not numbers:
        raise CommandError(
            f"{user.get_username()} has no test numbers: staff who manage test numbers add "
            "them on the admin's Test numbers page"
        )
    if wanted:
        try:
            phone = normalise_phone(wanted)
        except ValidationError as exc:
            raise CommandError(f"--to: {error_text(exc)}") from None
        numbers = [n for n in numbers if n.phone == phone]
        if not numbers:
            raise CommandError(f"--to: {redact(phone)} is not one of your test numbers")
    if len(numbers) > 1:
        known = ", ".join(str(n) for n in numbers)
        raise CommandError(f"say which test number with --to: {known}")
    return numbers[0]


def _add_list_parsers(subcommands: Any) -> None:
    listing = subcommands.add_parser("list", help="every campaign, most recently changed first")
    listing.add_argument("--status", choices=Campaign.Status.values, help="only this status")
    listing.add_argument("--json", action="store_true", help="one JSON object a line")
    duplicate = subcommands.add_parser(
        "duplicate", help="a new draft with a campaign's content and audience; prints its id"
    )
    duplicate.add_argument("id", type=int, help="the campaign's id")
    duplicate.add_argument("--as", dest="username", required=True, help="the staff user copying")


def _add_create_parser(subcommands: Any) -> None:
    create = subcommands.add_parser("create", help="create a draft campaign; prints its id")
    create.add_argument("--name", required=True)
    create.add_argument("--provider", required=True, help="the provider account's name")
    create.add_argument(
        "--body", help="the text; {{first_name}} and the like work (or give --variant texts)"
    )
    create.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="TEXT",
        help="an A/B variant's text, A first (2 to 4 in all, --body counting as A if given)",
    )
    mode = create.add_mutually_exclusive_group()
    mode.add_argument(
        "--split", metavar="P,P", help="A/B: each variant's share in percent, A first (50,50)"
    )
    mode.add_argument(
        "--test-share",
        type=int,
        metavar="PERCENT",
        help="A/B test: send the variants to this share first, then the winner to the rest",
    )
    create.add_argument(
        "--test-hours", type=int, default=4, help="A/B test: hours before the winner is picked"
    )
    create.add_argument(
        "--winner-by",
        choices=("clicks", "delivery"),
        default="clicks",
        help="A/B test: the winner by click-through rate (default) or delivery rate",
    )
    create.add_argument("--group", action="append", default=[], help="send to this group (by name)")
    create.add_argument("--tag", action="append", default=[], help="send to this tag (by name)")
    create.add_argument(
        "--segment", action="append", default=[], help="send to this segment (by name)"
    )
    for noun in ("group", "tag", "segment"):
        create.add_argument(
            f"--exclude-{noun}",
            action="append",
            default=[],
            help=f"leave out the contacts of this {noun} (by name)",
        )
    create.add_argument(
        "--frequency-cap",
        default=FrequencyCap.HOUSE,
        metavar="N/D|off|house",
        help="its own cap (at most N messages per contact in D days), none (off), or the "
        "house setting (default); only for users allowed to override it",
    )
    create.add_argument("--sender", default="", help="empty for the provider account's sender")
    create.add_argument(
        "--no-short-links",
        action="store_true",
        help="send its links as written (by default each becomes a short link that counts "
        "clicks, when HERALD_LINK_BASE is set)",
    )
    create.add_argument(
        "--no-utm",
        action="store_true",
        help="do not add utm_source and utm_campaign to its links' destinations",
    )
    create.add_argument("--channel", choices=Channel.values, default=Channel.SMS)
    create.add_argument("--template", help="WhatsApp: the provider's approved template id")
    create.add_argument("--as", dest="username", help="the staff user creating it (optional)")


def _texts(options: dict[str, Any]) -> list[str]:
    """The campaign's text, or its A/B variants' texts (A first)."""
    texts = ([options["body"]] if options["body"] is not None else []) + options["variant"]
    if not texts:
        raise CommandError("give the text with --body, or two to four --variant texts")
    if options["variant"] and not 2 <= len(texts) <= MAX_VARIANTS:
        raise CommandError(
            f"an A/B campaign has 2 to {MAX_VARIANTS} variants (--body counts as A): "
            f"{len(texts)} given"
        )
    if len(texts) == 1 and (options["split"] or options["test_share"] is not None):
        raise CommandError("--split and --test-share need two or more --variant texts")
    return texts


def _ab_settings(options: dict[str, Any], count: int) -> dict[str, Any]:
    if count < 2:
        return {}
    if options["test_share"] is not None:
        return {
            "ab_mode": ABMode.TEST,
            "ab_test_share": options["test_share"],
            "ab_test_hours": options["test_hours"],
            "ab_winner_by": options["winner_by"],
        }
    split: list[int] = []
    if options["split"]:
        try:
            split = parse_split(options["split"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
    return {"ab_mode": ABMode.SPLIT, "ab_split": split}


def _campaign(pk: int) -> Campaign:
    try:
        return Campaign.objects.select_related("provider_account").get(pk=pk)
    except Campaign.DoesNotExist:
        raise CommandError(f"no campaign with id {pk}") from None


def user_named(username: str) -> User:
    user_model = get_user_model()
    try:
        user = user_model._default_manager.get_by_natural_key(username)
    except user_model.DoesNotExist:
        raise CommandError(f"no user named {username!r}") from None
    if not user.is_active:
        raise CommandError(f"user {username!r} is inactive")
    return user


def _model_problems(error: ValidationError) -> str:
    """The model's refusal on one line: "field: what; field: what"."""
    fields = error.message_dict.items()
    return "; ".join(f"{field}: {' '.join(errors)}" for field, errors in fields)
