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
import re
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models, transaction

from campaigns.actions import ACTIONS, check_reason
from campaigns.frequency import OVERRIDE_PERMISSION, may_override
from campaigns.models import (
    ABMode,
    Campaign,
    FrequencyCap,
    MessageTemplate,
    TestNumber,
    TransitionNotAllowed,
    message_counts,
)
from campaigns.presenters import amount_text, error_text
from campaigns.preview import Estimate, estimate, missing_text
from campaigns.segments import Segment
from campaigns.testsend import send_test
from campaigns.variants import MAX_VARIANTS, parse_split
from campaigns.variants import figures as variant_figures
from contacts.models import Channel, Group, Tag, normalise_phone
from contacts.phones import redact
from messaging import counts as counts_kept
from messaging.backends import backend_class
from messaging.models import Message, ProviderAccount

M = Message.Status
# The counts `status --json` reports, in this order; scripts rely on exactly these keys.
COUNT_KEYS: tuple[str, ...] = tuple(
    status.value
    for status in (M.PENDING, M.SENDING, M.SENT, M.DELIVERED, M.FAILED, M.SKIPPED, M.IN_DOUBT)
)
Named = TypeVar("Named", Group, Tag, Segment)
FREQUENCY_CAP = re.compile(r"(?P<messages>[1-9][0-9]*)/(?P<days>[1-9][0-9]*)")


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
        account = _provider(options["provider"])
        channel = options["channel"]
        _check_channel(account, channel, options["template"])
        audience = _audience(options)
        created_by = user_named(options["username"]) if options["username"] else None
        cap = _frequency_cap(options["frequency_cap"], created_by)
        texts = _texts(options)
        with transaction.atomic():
            campaign = Campaign(
                name=options["name"],
                channel=channel,
                provider_account=account,
                sender=options["sender"],
                body=texts[0],
                variant_bodies=texts[1:],
                **_ab_settings(options, len(texts)),
                track_links=not options["no_short_links"],
                link_utm=not options["no_utm"],
                created_by=created_by,
                **cap,
            )
            if options["template"]:
                campaign.template = _whatsapp_template(options["template"], texts[0])
            _validate(campaign)
            campaign.save()
            for name, rows in audience.items():
                getattr(campaign, name).set(rows)
            campaign.note_authors(created_by, before="")
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
        all_counts = message_counts([campaign.pk])[campaign.pk]
        counts = {key: all_counts[key] for key in COUNT_KEYS}
        clicks = counts_kept.click_counts([campaign.pk])[campaign.pk]
        if options["json"]:
            summary: dict[str, Any] = {
                "id": campaign.pk,
                "status": campaign.status,
                "counts": counts,
                "clicks": clicks,
            }
            if campaign.variant_bodies:
                summary["variants"] = variants_json(campaign)
            self.stdout.write(json.dumps(summary))
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
            for variant in variants_json(campaign):
                figures = " ".join(f"{k} {v}" for k, v in variant["counts"].items() if v)
                won = " (winner)" if variant["winner"] else ""
                self.stdout.write(
                    f"variant {variant['variant']}{won}: {figures or 'nothing yet'}; "
                    f"clicks {variant['clicks']['unique']} unique"
                )
            if campaign.ab_decision:
                self.stdout.write(f"winner {campaign.ab_winner}: {campaign.ab_decision['why']}")
        if clicks["total"]:
            delivered = counts[M.DELIVERED]
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


def variants_json(campaign: Campaign) -> list[dict[str, Any]]:
    """Each A/B variant's counts (the keys of `status --json`) and clicks."""
    found = variant_figures(campaign)
    return [
        {
            "variant": label,
            "counts": {key: figures["counts"].get(key, 0) for key in COUNT_KEYS},
            "clicks": figures["clicks"],
            "winner": label == campaign.ab_winner,
        }
        for label, figures in found.items()
    ]


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


def _provider(name: str) -> ProviderAccount:
    try:
        return ProviderAccount.objects.get(name=name)
    except ProviderAccount.DoesNotExist:
        known = ", ".join(ProviderAccount.objects.order_by("name").values_list("name", flat=True))
        hint = f"known: {known}" if known else "none yet; add one with `manage.py provider add`"
        raise CommandError(f"no provider account named {name!r} ({hint})") from None


def rows_named(model: type[Named], names: Iterable[str], noun: str) -> list[Named]:
    """The rows named `names`; a missing one is an error, never silently created."""
    wanted = list(dict.fromkeys(names))
    found = {row.name: row for row in model._default_manager.filter(name__in=wanted)}
    missing = [name for name in wanted if name not in found]
    if missing:
        plural = noun if len(missing) == 1 else noun + "s"
        raise CommandError(f"no {plural} named {', '.join(map(repr, missing))}")
    return [found[name] for name in wanted]


def _audience(options: dict[str, Any]) -> dict[str, list[Any]]:
    """The campaign's audience parts (AUDIENCE_FIELDS) from their names."""
    return {
        "groups": rows_named(Group, options["group"], "group"),
        "tags": rows_named(Tag, options["tag"], "tag"),
        "segments": rows_named(Segment, options["segment"], "segment"),
        "exclude_groups": rows_named(Group, options["exclude_group"], "group"),
        "exclude_tags": rows_named(Tag, options["exclude_tag"], "tag"),
        "exclude_segments": rows_named(Segment, options["exclude_segment"], "segment"),
    }


def _frequency_cap(text: str, user: User | None) -> dict[str, Any]:
    """The campaign's cap fields from `N/D`, `off` or `house`; only a user allowed to
    override the house cap may choose anything but `house`."""
    wanted = text.strip().lower()
    if wanted == FrequencyCap.HOUSE:
        return {"frequency_cap": FrequencyCap.HOUSE}
    found = FREQUENCY_CAP.fullmatch(wanted)
    if wanted != FrequencyCap.OFF and not found:
        raise CommandError(
            f"--frequency-cap is N/D (at most N messages in D days), off or house, not {text!r}"
        )
    if not may_override(user):
        who = f"user {user.get_username()!r}" if user else "a campaign created without --as"
        raise CommandError(
            f"--frequency-cap {text}: {who} may not override the house frequency cap "
            f"(it takes the {OVERRIDE_PERMISSION} permission, which the Approvers role has)"
        )
    if found is None:
        return {"frequency_cap": FrequencyCap.OFF}
    return {
        "frequency_cap": FrequencyCap.OWN,
        "cap_messages": int(found["messages"]),
        "cap_days": int(found["days"]),
    }


def _check_channel(account: ProviderAccount, channel: str, template_id: str | None) -> None:
    if channel == Channel.WHATSAPP and not template_id:
        raise CommandError("--channel whatsapp needs --template (the approved template id)")
    if channel != Channel.WHATSAPP and template_id:
        raise CommandError("--template is for WhatsApp campaigns (--channel whatsapp)")
    if channel not in backend_class(account.backend).channels:
        raise CommandError(f"{account} ({account.backend}) cannot send {channel} messages")


def _whatsapp_template(template_id: str, body: str) -> MessageTemplate:
    """The template carrying this approved id, made on first use."""
    existing = MessageTemplate.objects.filter(
        channel=Channel.WHATSAPP, whatsapp_template_id=template_id
    ).first()
    if existing:
        return existing
    template = MessageTemplate(
        name=f"WhatsApp {template_id}",
        channel=Channel.WHATSAPP,
        body=body,
        whatsapp_template_id=template_id,
    )
    _validate(template)
    template.save()
    return template


def _validate(instance: models.Model) -> None:
    # created_by may be None (a script acting as nobody); the field is not blank=True.
    try:
        instance.full_clean(exclude=["created_by"], validate_unique=True)
    except ValidationError as exc:
        problems = (f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items())
        raise CommandError("; ".join(problems)) from None
