"""Replies from the shell: record one as if its gateway had sent it, list them, poll now.

    python manage.py inbound record --provider NAME --from E164 --body TEXT
                                    [--channel sms|whatsapp] [--id PROVIDER_ID] [--json]
    python manage.py inbound list [--json] [--limit N] [--unhandled] [--campaign ID]
    python manage.py inbound poll [--provider NAME] [--pages N]

`record` goes through exactly what a webhook or a polled message goes through
(messaging.inbound.receive: dedupe on --id, attribution, keywords) and prints what it
did; with --json one object: {"stored", "duplicate", "action", "contact", "reply",
"campaign", "possible_opt_out"}, action one of opt_out, opt_in, help, none.

`list` shows the newest replies first (numbers redacted, bodies cut to 60 characters);
--json gives the whole of each. `poll` reads the polled gateways' replies now rather
than at the next minute's tick.
"""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from contacts.models import Channel
from contacts.phones import redact
from messaging.exceptions import ProviderError
from messaging.inbound import Incoming, UnusableInbound, poll_account, poll_accounts, receive
from messaging.models import InboundMessage, ProviderAccount


class Command(BaseCommand):
    help = "Record a reply as if its gateway had sent it, list replies, or poll gateways now."

    def add_arguments(self, parser: CommandParser) -> None:
        self.usage = parser.format_help
        subcommands = parser.add_subparsers(dest="subcommand")
        record = subcommands.add_parser("record", help="handle one reply as its gateway would")
        record.add_argument("--provider", required=True, help="the provider account's name")
        record.add_argument("--from", dest="sender", required=True, help="the sender, E.164")
        record.add_argument("--body", required=True, help="the reply's text")
        record.add_argument("--channel", choices=Channel.values, default=Channel.SMS)
        record.add_argument("--id", dest="provider_id", default="", help="the provider's id")
        record.add_argument("--json", action="store_true", help="one JSON object for scripts")
        listing = subcommands.add_parser("list", help="the newest replies")
        listing.add_argument("--json", action="store_true", help="one JSON list for scripts")
        listing.add_argument("--limit", type=int, default=50, help="how many (default 50)")
        listing.add_argument("--unhandled", action="store_true", help="only those not handled")
        listing.add_argument("--campaign", type=int, help="only those put down to this campaign")
        poll = subcommands.add_parser("poll", help="read the polled gateways' replies now")
        poll.add_argument("--provider", help="one account (default: every polled one)")
        poll.add_argument("--pages", type=int, default=0, help="page budget (default: setting)")

    def handle(self, *args: Any, **options: Any) -> None:
        subcommand = options["subcommand"]
        if subcommand is None:
            self.stdout.write(self.usage())
            raise CommandError("say what to do: one of the subcommands above", returncode=2)
        {"record": self.record, "list": self.list_replies, "poll": self.poll}[subcommand](options)

    def record(self, options: dict[str, Any]) -> None:
        account = _account(options["provider"])
        incoming = Incoming(
            channel=options["channel"],
            phone=options["sender"],
            body=options["body"],
            provider_message_id=options["provider_id"],
        )
        try:
            outcome = receive(account, incoming)
        except UnusableInbound as unusable:
            raise CommandError(f"not recorded: {unusable}") from None
        if options["json"]:
            self.stdout.write(json.dumps(outcome.as_json()))
            return
        inbound = outcome.inbound
        if outcome.duplicate:
            self.stdout.write(f"reply {inbound.pk} was recorded before: nothing changed")
            return
        who = f"contact {outcome.contact}" if outcome.contact else "an unknown number"
        extra = " (possible opt-out: confirm it in the inbox)" if inbound.possible_opt_out else ""
        note = f" - {inbound.note}" if inbound.note else ""
        self.stdout.write(f"reply {inbound.pk} from {who}: {outcome.action}{note}{extra}")

    def list_replies(self, options: dict[str, Any]) -> None:
        if options["limit"] < 1:
            raise CommandError("--limit must be 1 or more")
        replies = InboundMessage.objects.select_related("provider_account")
        if options["unhandled"]:
            replies = replies.filter(handled_at__isnull=True)
        if options["campaign"] is not None:
            replies = replies.filter(campaign_id=options["campaign"])
        rows = list(replies[: options["limit"]])
        if options["json"]:
            self.stdout.write(json.dumps([_as_json(r) for r in rows], indent=2))
            return
        if not rows:
            self.stdout.write("No replies.")
            return
        for reply in rows:
            when = timezone.localtime(reply.received_at).strftime("%Y-%m-%d %H:%M")
            body = reply.body if len(reply.body) <= 60 else reply.body[:59] + "…"
            flags = " [possible opt-out]" if reply.possible_opt_out else ""
            flags += "" if reply.handled_at else " [unhandled]"
            self.stdout.write(
                f"{reply.pk:>6}  {when}  {reply.channel:<8} {_shown(reply.phone):<16} "
                f"{reply.action:<7} {json.dumps(body, ensure_ascii=False)}{flags}"
            )

    def poll(self, options: dict[str, Any]) -> None:
        pages = options["pages"] or None
        if options["provider"]:
            account = _account(options["provider"])
            if not getattr(account.get_backend(), "supports_inbound_polling", False):
                raise CommandError(f"{account.name}: its gateway is not polled for replies")
            try:
                stored = {account.name: poll_account(account, pages or 10)}
            except ProviderError as error:
                raise CommandError(f"{account.name}: {error}") from None
        else:
            stored = poll_accounts(pages)
        if not stored:
            self.stdout.write("No account is polled for replies.")
        for name, count in stored.items():
            self.stdout.write(f"{name}: {count} new repl{'y' if count == 1 else 'ies'}")


def _account(name: str) -> ProviderAccount:
    account = ProviderAccount.objects.filter(name=name).first()
    if account is None:
        known = ", ".join(ProviderAccount.objects.values_list("name", flat=True)) or "none"
        raise CommandError(f"no provider account named {name!r} (known: {known})")
    return account


def _shown(phone: str) -> str:
    return redact(phone) if phone.startswith("+") else phone


def _as_json(reply: InboundMessage) -> dict[str, Any]:
    return {
        "id": reply.pk,
        "provider": reply.provider_account.name,
        "provider_message_id": reply.provider_message_id,
        "channel": reply.channel,
        "from": reply.phone,
        "to": reply.to,
        "body": reply.body,
        "body_truncated": reply.body_truncated,
        "received_at": reply.received_at.isoformat(),
        "contact": reply.contact_id,
        "campaign": reply.campaign_id,
        "action": reply.action,
        "keyword": reply.keyword,
        "language": reply.language,
        "possible_opt_out": reply.possible_opt_out,
        "handled": reply.handled_at is not None,
    }
