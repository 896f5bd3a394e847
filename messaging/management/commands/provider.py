"""Configure, inspect and try out provider accounts from the shell.

    python manage.py provider add NAME --backend KIND [--base-url URL] [--sender ID]
                                       [--rate-limit PER_S] [--set KEY=VALUE]...
    python manage.py provider list
    python manage.py provider check NAME
    python manage.py provider send-test NAME --to E164 --body TEXT
                                             [--channel whatsapp --template ID] [--param VALUE]...
    python manage.py provider rotate-keys
    python manage.py provider webhooks NAME --public-url URL
    python manage.py provider events [--apply] [--json]

Secrets go in with `--set KEY=env:VAR` so they stay out of shell history; they are
stored encrypted and never printed back, only their names. `rotate-keys` re-encrypts
every account under the first of CREDENTIALS_KEYS, after which older keys may be dropped.
`webhooks` registers Herald's endpoint for a BulkSMSRates account,
URL/webhooks/bulksmsrates/NAME/, for every event Herald handles, and stores the signing
secret the provider returns (never printed); run again, it changes nothing.
`events` shows the webhook events each account has waiting for a worker, and the oldest's
age; `--apply` applies them now, in this process (no worker needed).
"""

import json
import math
import os
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import URLValidator, validate_slug
from django.db import transaction
from django.db.models import Count, Min
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from audit.models import AuditEvent
from contacts.models import ERASED_REFUSAL, Channel, ErasedNumber, normalise_phone
from contacts.phones import redact
from messaging.backends import Backend, backend_class
from messaging.backends.base import BaseBackend
from messaging.backends.bulksmsrates import BulkSMSRatesBackend, WebhookSync
from messaging.crypto import CredentialsUnreadable
from messaging.dispatch import send_claimed
from messaging.exceptions import ProviderError
from messaging.models import Message, ProviderAccount, WebhookEvent
from messaging.rendering import segments_of
from messaging.webhooks import queue

ENV_PREFIX = "env:"
LIST_COLUMNS = ("NAME", "BACKEND", "BASE_URL", "SENDER", "RATE/S", "ACTIVE", "CREDENTIALS")
# Statuses whose error fields say why the test message did not go out (yet).
STATUSES_WITH_ERROR = (Message.Status.FAILED, Message.Status.IN_DOUBT, Message.Status.PENDING)


class Command(BaseCommand):
    help = "Add, list, check and test provider accounts; register their webhooks."

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(dest="subcommand", required=True)
        add = subcommands.add_parser("add", help="create or update an account")
        add.add_argument("name", help="account name (a slug; used in webhook URLs)")
        add.add_argument("--backend", required=True, help=f"one of {', '.join(Backend.values)}")
        add.add_argument("--base-url", help="the gateway's address; empty for the provider's own")
        add.add_argument("--sender", help="default sender ID or number; empty to clear")
        add.add_argument("--rate-limit", type=float, help="requests per second, all workers")
        add.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="a credential or option; VALUE env:VAR reads the environment variable VAR",
        )
        subcommands.add_parser("list", help="show every account (never a secret)")
        check = subcommands.add_parser("check", help="log in at the provider and report")
        check.add_argument("name")
        send_test = subcommands.add_parser("send-test", help="send one message now")
        send_test.add_argument("name")
        send_test.add_argument("--to", required=True, help="the recipient, e.g. +447911123456")
        send_test.add_argument("--body", required=True)
        send_test.add_argument("--channel", choices=Channel.values, default=Channel.SMS)
        send_test.add_argument("--template", help="WhatsApp: the provider's approved template id")
        send_test.add_argument(
            "--param", action="append", default=[], help="WhatsApp: next template parameter"
        )
        subcommands.add_parser(
            "rotate-keys", help="re-encrypt every account's credentials under the newest key"
        )
        webhooks = subcommands.add_parser(
            "webhooks",
            help="register or update Herald's webhook at the provider (BulkSMSRates); "
            "stores the secret it returns; run twice, changes nothing",
        )
        webhooks.add_argument("name")
        webhooks.add_argument(
            "--public-url",
            required=True,
            help="Herald's address as the provider reaches it, e.g. https://herald.example.com",
        )

        events = subcommands.add_parser(
            "events", help="webhook events waiting for a worker; --apply applies them now"
        )
        events.add_argument("--apply", action="store_true", help="apply them in this process")
        events.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        run = {
            "add": self.add_account,
            "list": self.list_accounts,
            "check": self.check_account,
            "send-test": self.send_test,
            "rotate-keys": self.rotate_keys,
            "webhooks": self.register_webhooks,
            "events": self.waiting_events,
        }[options["subcommand"]]
        try:
            run(options)
        except CredentialsUnreadable as exc:
            raise CommandError(str(exc)) from None

    # add

    def add_account(self, options: dict[str, Any]) -> None:
        name, kind = options["name"], options["backend"]
        backend = _backend_class(kind)
        _check_add_options(name, backend, options)
        credentials, option_values = _split_settings(backend, options["set"])
        with transaction.atomic():
            account = ProviderAccount.objects.select_for_update().filter(name=name).first()
            created = account is None
            if account is None:
                account = ProviderAccount(name=name, backend=kind)
            elif account.backend != kind:
                raise CommandError(
                    f"{name} is a {account.backend} account; its backend cannot change to {kind}. "
                    "Pick another name for the new account."
                )
            _apply(account, options, credentials, option_values)
            account.save()
        line = f"{'created' if created else 'updated'} {name} ({kind})"
        if credentials:
            line += f"; credentials set: {', '.join(credentials)}"
        self.stdout.write(line)

    # list

    def list_accounts(self, options: dict[str, Any]) -> None:
        accounts = list(ProviderAccount.objects.order_by("name"))
        if not accounts:
            self.stdout.write("no provider accounts")
            return
        rows = [LIST_COLUMNS, *(_list_row(account) for account in accounts)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(LIST_COLUMNS))]
        for row in rows:
            cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            self.stdout.write("  ".join(cells).rstrip())

    # check

    def check_account(self, options: dict[str, Any]) -> None:
        account = _account(options["name"])
        try:
            summary = account.get_backend().check()
        except ProviderError as exc:
            raise CommandError(f"{account.name}: {exc}") from exc
        self.stdout.write(f"{account.name}: OK - {summary}")

    # send-test

    def send_test(self, options: dict[str, Any]) -> None:
        account = _account(options["name"])
        message = _test_message(account, options)
        self.stdout.write(
            f"sending a test {message.channel} message to {redact(message.phone)} via {account}"
        )
        claimed = Message.objects.filter(pk=message.pk).claim(1)
        if not claimed:
            raise CommandError(f"{account}: the test message was taken by another process")
        account_error = send_claimed(claimed)
        message.refresh_from_db()
        self._report(message)
        if account_error is not None:
            raise CommandError(f"{account}: {account_error}")
        if message.status == Message.Status.FAILED:
            raise CommandError(f"{account}: the test message failed ({_error_text(message)})")

    # rotate-keys

    def rotate_keys(self, options: dict[str, Any]) -> None:
        rotated: list[str] = []
        changed: list[str] = []
        unreadable: list[str] = []
        for account in ProviderAccount.objects.exclude(encrypted_credentials="").order_by("name"):
            try:
                outcome = _reencrypt(account)
            except CredentialsUnreadable:
                unreadable.append(account.name)
                continue
            (rotated if outcome else changed).append(account.name)
        self.stdout.write(
            f"re-encrypted {len(rotated)} account(s) under the newest key"
            + (f": {', '.join(rotated)}" if rotated else "")
        )
        if changed:
            self.stdout.write(f"changed meanwhile, run again: {', '.join(changed)}")
        if unreadable:
            raise CommandError(
                f"no configured key reads the credentials of {', '.join(unreadable)}: keep the "
                "key they were stored under in CREDENTIALS_KEYS, or set them again"
            )

    # webhooks

    def register_webhooks(self, options: dict[str, Any]) -> None:
        account = _account(options["name"])
        backend = account.get_backend()
        if not isinstance(backend, BulkSMSRatesBackend):
            raise CommandError(
                f"{account.name} is a {account.backend} account: only BulkSMSRates accounts "
                "register webhooks (the other providers post none)"
            )
        url = _webhook_url(options["public_url"], account.name)
        try:
            sync = backend.ensure_webhook(url)
        except ProviderError as exc:
            raise CommandError(f"{account.name}: {exc}") from exc
        if sync.secret:
            _store_webhook_secret(account, sync.secret)
        self.stdout.write(_webhook_report(sync))

    # events

    def waiting_events(self, options: dict[str, Any]) -> None:
        applied = queue.apply_pending() if options["apply"] else None
        now = timezone.now()
        waiting = [
            {
                "account": row["provider_account__name"],
                "waiting": row["waiting"],
                "oldest_seconds": round((now - row["oldest"]).total_seconds(), 1),
            }
            for row in WebhookEvent.objects.pending()
            .values("provider_account__name")
            .annotate(waiting=Count("pk"), oldest=Min("received_at"))
            .order_by("provider_account__name")
        ]
        if options["json"]:
            summary: dict[str, Any] = {"waiting": waiting}
            if applied is not None:
                summary["applied"] = applied
            self.stdout.write(json.dumps(summary))
            return
        if applied is not None:
            self.stdout.write(f"applied {applied} webhook event(s)")
        if not waiting:
            self.stdout.write("no webhook events waiting")
        for row in waiting:
            self.stdout.write(
                f"{row['account']}: {row['waiting']} waiting, oldest {row['oldest_seconds']} s"
            )

    def _report(self, message: Message) -> None:
        self.stdout.write(f"provider message id: {message.provider_message_id or '-'}")
        self.stdout.write(f"status: {message.status}")
        if message.status in STATUSES_WITH_ERROR and (message.error_code or message.error_message):
            self.stdout.write(f"error: {_error_text(message)}")
        if message.skip_reason == Message.SkipReason.OPTED_OUT:
            self.stdout.write("skipped: opted out")


def _backend_class(kind: str) -> type[BaseBackend]:
    try:
        return backend_class(kind)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _account(name: str) -> ProviderAccount:
    try:
        account = ProviderAccount.objects.get(name=name)
    except ProviderAccount.DoesNotExist:
        raise CommandError(f"no provider account named {name!r}") from None
    _backend_class(account.backend)
    return account


def _check_add_options(name: str, backend: type[BaseBackend], options: dict[str, Any]) -> None:
    try:
        validate_slug(name)
    except ValidationError:
        raise CommandError(
            f"{name!r} is not a valid name: use letters, digits, hyphens and underscores"
        ) from None
    if options["sender"]:
        problem = backend.validate_sender(options["sender"])
        if problem:
            raise CommandError(f"--sender {options['sender']!r}: {problem}")
    if options["base_url"]:
        try:
            URLValidator(schemes=["http", "https"])(options["base_url"])
        except ValidationError:
            raise CommandError(
                f"--base-url {options['base_url']!r} is not an http(s) URL"
            ) from None
    rate = options["rate_limit"]
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise CommandError("--rate-limit must be a number of requests per second above 0")


def _split_settings(
    backend: type[BaseBackend], assignments: list[str]
) -> tuple[dict[str, str], dict[str, Any]]:
    """Sort `--set KEY=VALUE` into (credentials, options); an unknown key is refused.

    Refusing unknown keys matters: a misspelt secret must never land in the
    plain-text options.
    """
    credentials: dict[str, str] = {}
    option_values: dict[str, Any] = {}
    for assignment in assignments:
        key, separator, raw = assignment.partition("=")
        key = key.strip()
        if not separator or not key:
            raise CommandError(f"--set {assignment!r}: expected KEY=VALUE")
        value = _resolve(key, raw)
        if key in backend.credential_keys:
            if not value:
                raise CommandError(f"--set {key}: a credential cannot be empty")
            credentials[key] = value
        elif key in backend.option_keys:
            option_values[key] = _option_value(value)
        else:
            raise CommandError(f"--set {key}: unknown key; {_allowed_keys(backend)}")
    return credentials, option_values


def _resolve(key: str, raw: str) -> str:
    if not raw.startswith(ENV_PREFIX):
        return raw
    variable = raw.removeprefix(ENV_PREFIX)
    try:
        return os.environ[variable]
    except KeyError:
        raise CommandError(f"--set {key}: environment variable {variable} is not set") from None


def _option_value(text: str) -> Any:
    """JSON when it parses (true, 0.5, 3), otherwise the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _allowed_keys(backend: type[BaseBackend]) -> str:
    credential_keys = ", ".join(backend.credential_keys) or "none"
    option_keys = ", ".join(backend.option_keys) or "none"
    return f"credential keys: {credential_keys}; option keys: {option_keys}"


def _apply(
    account: ProviderAccount,
    options: dict[str, Any],
    credentials: dict[str, str],
    option_values: dict[str, Any],
) -> None:
    """Write what was given onto `account`; what was not given keeps its value."""
    if options["base_url"] is not None:
        account.base_url = options["base_url"]
    if options["sender"] is not None:
        account.sender = options["sender"]
    if options["rate_limit"] is not None:
        account.rate_limit = options["rate_limit"]
    account.options = {**account.options, **option_values}
    if credentials:
        account.set_credentials({**account.credentials, **credentials})
    try:
        account.full_clean()
    except ValidationError as exc:
        problems = (f"{field}: {' '.join(errors)}" for field, errors in exc.message_dict.items())
        raise CommandError("; ".join(problems)) from None


def _reencrypt(account: ProviderAccount) -> bool:
    """Store `account`'s credentials again under the newest key; False if they changed meanwhile.

    A conditional update: credentials saved by someone else since they were read are kept.
    """
    stored = account.encrypted_credentials
    account.set_credentials(account.credentials)
    updated = ProviderAccount.objects.filter(pk=account.pk, encrypted_credentials=stored).update(
        encrypted_credentials=account.encrypted_credentials
    )
    return bool(updated)


def _list_row(account: ProviderAccount) -> tuple[str, ...]:
    try:
        credential_names = ", ".join(sorted(account.credentials)) or "-"
    except CredentialsUnreadable:
        credential_names = "(unreadable)"
    return (
        account.name,
        account.backend,
        account.base_url or "(provider default)",
        account.sender or "-",
        f"{account.rate_limit:g}",
        "yes" if account.is_active else "no",
        credential_names,
    )


def _test_message(account: ProviderAccount, options: dict[str, Any]) -> Message:
    channel = options["channel"]
    if channel == Channel.WHATSAPP and not options["template"]:
        raise CommandError("--channel whatsapp needs --template (the approved template id)")
    if channel not in backend_class(account.backend).channels:
        raise CommandError(f"{account} ({account.backend}) cannot send {channel} messages")
    if not options["body"].strip():
        raise CommandError("--body is empty")
    try:
        phone = normalise_phone(options["to"])
    except ValidationError as exc:
        raise CommandError(f"--to: {' '.join(exc.messages)}") from None
    if ErasedNumber.objects.includes(phone):
        raise CommandError(f"--to: {ERASED_REFUSAL}")
    encoding, segments = segments_of(options["body"])
    with transaction.atomic():
        message = Message.objects.create(
            campaign=None,
            contact=None,
            provider_account=account,
            channel=channel,
            phone=phone,
            sender=account.sender,
            body=options["body"],
            template_id=options["template"] or "",
            template_params=options["param"],
            client_ref=Message.new_client_ref(),
            encoding=encoding,
            segments=segments,
            is_test=True,
        )
        # An operator's check of the account, from the server's shell: audited like the
        # dashboard's tests, with no user to count it against.
        AuditEvent.record(
            AuditEvent.Action.TEST_SEND,
            obj=account,
            detail={"message": message.pk, "to": redact(phone), "door": "provider send-test"},
        )
    return message


def _webhook_url(public_url: str, name: str) -> str:
    """Herald's endpoint for account `name` under `public_url` (absolute http(s))."""
    try:
        URLValidator(schemes=["http", "https"])(public_url)
    except ValidationError:
        raise CommandError(
            f"--public-url {public_url!r} is not an absolute http(s) URL, "
            "e.g. https://herald.example.com"
        ) from None
    if "?" in public_url or "#" in public_url:
        raise CommandError(f"--public-url {public_url!r}: give the address without ? or #")
    try:
        path = reverse("messaging:bulksmsrates-webhook", kwargs={"account": name})
    except NoReverseMatch:
        raise CommandError(f"{name!r} cannot be part of a webhook URL (not a slug)") from None
    return public_url.rstrip("/") + path


def _store_webhook_secret(account: ProviderAccount, secret: str) -> None:
    """Keep the new signing secret with the account's other credentials (read fresh)."""
    with transaction.atomic():
        locked = ProviderAccount.objects.select_for_update().get(pk=account.pk)
        locked.set_credentials({**locked.credentials, "webhook_secret": secret})
        locked.save(update_fields=["encrypted_credentials", "updated_at"])


def _webhook_report(sync: WebhookSync) -> str:
    webhook = sync.webhook
    where = f"{webhook.url} ({webhook.id})"
    return {
        "unchanged": f"unchanged: {where} already receives {', '.join(webhook.events)}",
        "updated": f"updated {where}: events {', '.join(webhook.events)}, active",
        "created": f"created {where}; its signing secret is stored as webhook_secret",
        "recreated": (
            f"recreated {where}: no webhook_secret was stored for the one there, and the "
            "provider shows a secret only once, so it was deleted and made again; the new "
            "secret is stored as webhook_secret"
        ),
    }[sync.action]


def _error_text(message: Message) -> str:
    return f"{message.error_code or '-'}: {message.error_message}"
