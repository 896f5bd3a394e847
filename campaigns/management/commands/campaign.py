"""Create campaigns, take them through approval and watch them send, from the shell.

    python manage.py campaign create --name N --provider NAME --body TEXT
                                     [--group G]... [--tag T]... [--sender S]
                                     [--channel sms|whatsapp] [--template ID] [--as USERNAME]
    python manage.py campaign submit|approve|reject|pause|resume|cancel ID --as USERNAME
                                     [--reason TEXT]
    python manage.py campaign status ID [--json]

`create` prints nothing but the new id, so scripts can capture it. Every change of
state goes through the campaign's own methods, so the shell obeys the same rules as
the admin: a submitter cannot approve their own campaign, a rejection needs a reason.
"""

import json
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import models, transaction

from campaigns.models import Campaign, MessageTemplate, TransitionNotAllowed
from contacts.models import Channel, Group, Tag
from messaging.backends import backend_class
from messaging.models import Message, ProviderAccount

M = Message.Status
# The counts `status --json` reports, in this order; scripts rely on exactly these keys.
COUNT_KEYS: tuple[str, ...] = tuple(
    status.value
    for status in (M.PENDING, M.SENDING, M.SENT, M.DELIVERED, M.FAILED, M.SKIPPED, M.IN_DOUBT)
)
# Transitions whose note (`--reason`) the campaign's log keeps.
TRANSITIONS_WITH_REASON = {
    "approve": "a note for the log",
    "reject": "why it is rejected (required), shown to the submitter",
    "pause": "why it is paused, shown to staff",
    "cancel": "why it is cancelled, for the log",
}
Named = TypeVar("Named", Group, Tag)
TRANSITIONS = ("submit", "approve", "reject", "pause", "resume", "cancel")


class Command(BaseCommand):
    help = "Create campaigns, move them through approval, and show how they are sending."

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", required=True)
        _add_create_parser(subcommands)
        for action in TRANSITIONS:
            transition = subcommands.add_parser(action, help=f"{action} a campaign")
            transition.add_argument("id", type=int, help="the campaign's id")
            transition.add_argument(
                "--as", dest="username", required=True, help="the staff user acting"
            )
            if action in TRANSITIONS_WITH_REASON:
                transition.add_argument(
                    "--reason", default="", help=TRANSITIONS_WITH_REASON[action]
                )
        status = subcommands.add_parser("status", help="show a campaign's state and counts")
        status.add_argument("id", type=int, help="the campaign's id")
        status.add_argument("--json", action="store_true", help="one line of JSON for scripts")

    def handle(self, *args: Any, **options: Any) -> None:
        subcommand = options["subcommand"]
        if subcommand == "create":
            self.create(options)
        elif subcommand == "status":
            self.status(options)
        else:
            self.transition(subcommand, options)

    # create

    def create(self, options: dict[str, Any]) -> None:
        account = _provider(options["provider"])
        channel = options["channel"]
        _check_channel(account, channel, options["template"])
        groups = _by_name(Group, options["group"], "group")
        tags = _by_name(Tag, options["tag"], "tag")
        created_by = _user(options["username"]) if options["username"] else None
        with transaction.atomic():
            campaign = Campaign(
                name=options["name"],
                channel=channel,
                provider_account=account,
                sender=options["sender"],
                body=options["body"],
                created_by=created_by,
            )
            if options["template"]:
                campaign.template = _whatsapp_template(options["template"], options["body"])
            _validate(campaign)
            campaign.save()
            campaign.groups.set(groups)
            campaign.tags.set(tags)
        self.stdout.write(str(campaign.pk))

    # submit, approve, reject, pause, resume, cancel

    def transition(self, action: str, options: dict[str, Any]) -> None:
        campaign = _campaign(options["id"])
        reason = options.get("reason", "")
        if action == "reject" and not reason.strip():
            raise CommandError("reject needs --reason: say why, so the submitter can fix it")
        user = _user(options["username"])
        old_status = campaign.status
        move = _transition_call(campaign, action, reason)
        try:
            move(user)
        except (PermissionDenied, TransitionNotAllowed) as exc:
            raise CommandError(str(exc)) from None
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"campaign {campaign.pk}: {old_status} -> {campaign.status}")

    # status

    def status(self, options: dict[str, Any]) -> None:
        campaign = _campaign(options["id"])
        all_counts = Message.objects.filter(campaign=campaign).status_counts()
        counts = {key: all_counts[key] for key in COUNT_KEYS}
        if options["json"]:
            summary = {"id": campaign.pk, "status": campaign.status, "counts": counts}
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


def _add_create_parser(subcommands: Any) -> None:
    create = subcommands.add_parser("create", help="create a draft campaign; prints its id")
    create.add_argument("--name", required=True)
    create.add_argument("--provider", required=True, help="the provider account's name")
    create.add_argument("--body", required=True, help="the text; {{first_name}} and the like work")
    create.add_argument("--group", action="append", default=[], help="send to this group (by name)")
    create.add_argument("--tag", action="append", default=[], help="send to this tag (by name)")
    create.add_argument("--sender", default="", help="empty for the provider account's sender")
    create.add_argument("--channel", choices=Channel.values, default=Channel.SMS)
    create.add_argument("--template", help="WhatsApp: the provider's approved template id")
    create.add_argument("--as", dest="username", help="the staff user creating it (optional)")


def _campaign(pk: int) -> Campaign:
    try:
        return Campaign.objects.select_related("provider_account").get(pk=pk)
    except Campaign.DoesNotExist:
        raise CommandError(f"no campaign with id {pk}") from None


def _user(username: str) -> User:
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


def _by_name(model: type[Named], names: Iterable[str], noun: str) -> list[Named]:
    """The rows named `names`; a missing one is an error, never silently created."""
    wanted = list(dict.fromkeys(names))
    found = {row.name: row for row in model._default_manager.filter(name__in=wanted)}
    missing = [name for name in wanted if name not in found]
    if missing:
        plural = noun if len(missing) == 1 else noun + "s"
        raise CommandError(f"no {plural} named {', '.join(map(repr, missing))}")
    return [found[name] for name in wanted]


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


def _transition_call(campaign: Campaign, action: str, reason: str) -> Callable[[Any], None]:
    """The campaign method for `action`, with the reason bound where the log keeps one."""
    calls: dict[str, Callable[[Any], None]] = {
        "submit": campaign.submit,
        "approve": lambda by: campaign.approve(by, note=reason),
        "reject": lambda by: campaign.reject(by, reason),
        "pause": lambda by: campaign.pause(by, reason),
        "resume": campaign.resume,
        "cancel": lambda by: campaign.cancel(by, reason),
    }
    return calls[action]
