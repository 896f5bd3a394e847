"""Create, list and revoke personal API tokens from the shell.

    python manage.py api token create --user U --scope S... [--expires DAYS] [--name N]
    python manage.py api token list [--user U] [--json]
    python manage.py api token revoke ID

`create` prints the token on a line of its own, and nothing else on stdout, so a script
can capture it: this is the only time it is shown (Herald keeps a hash). What was made
goes to stderr. `--scope` may be repeated, or take several scopes at once
(`--scope contacts:read contacts:write`). Without `--expires` the token never expires.
A scope the user's permissions give no use is made all the same (an administrator may
grant the role afterwards), with a warning on stderr.

`list` shows every token, newest first, or one user's: id, name, user, scopes, state
(active, revoked or expired), when it expires, was last used and was created; with
--json, one JSON list of objects with those keys. Never a token's text or hash.

`revoke` stops a token at once; revoking one revoked already changes nothing.
Creating and revoking are audited, as from the dashboard.
With no subcommand the command prints its usage.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet

from api import tokens
from api.models import ApiToken, Scope

DOOR = "cli"
DEFAULT_NAME = "command line"
LIST_COLUMNS = ("ID", "NAME", "USER", "SCOPES", "STATE", "EXPIRES", "LAST USED", "CREATED")


class Command(BaseCommand):
    help = "Create, list and revoke personal API tokens."

    def add_arguments(self, parser: CommandParser) -> None:
        self.usage = parser.format_help
        kinds = parser.add_subparsers(dest="kind")
        token = kinds.add_parser("token", help="personal API tokens")
        self.token_usage = token.format_help
        actions = token.add_subparsers(dest="action")
        create = actions.add_parser("create", help="make a token; prints it, once")
        create.add_argument("--user", required=True, help="the username the token acts as")
        create.add_argument(
            "--scope",
            dest="scopes",
            action="extend",
            nargs="+",
            required=True,
            metavar="S",
            help=f"one or more of {', '.join(Scope.values)}; may be repeated",
        )
        create.add_argument(
            "--expires",
            type=int,
            metavar="DAYS",
            help=f"expire after DAYS days (1 to {tokens.MAX_EXPIRY_DAYS}); default: never",
        )
        create.add_argument("--name", default=DEFAULT_NAME, help="what the token is for")
        listing = actions.add_parser("list", help="tokens, newest first (never their text)")
        listing.add_argument("--user", help="only this user's tokens")
        listing.add_argument("--json", action="store_true", help="one JSON list for scripts")
        revoke = actions.add_parser("revoke", help="stop a token now")
        revoke.add_argument("id", type=int, help="the token's id (see `api token list`)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["kind"] is None:
            self.stdout.write(self.usage())
            raise CommandError("say what to do: api token create|list|revoke", returncode=2)
        if options["action"] is None:
            self.stdout.write(self.token_usage())
            raise CommandError("say what to do: api token create|list|revoke", returncode=2)
        {
            "create": self.create,
            "list": self.list_tokens,
            "revoke": self.revoke,
        }[options["action"]](options)

    def create(self, options: dict[str, Any]) -> None:
        user = _user_named(options["user"])
        if not user.is_active:
            raise CommandError(
                f"user {user.get_username()!r} is inactive: a token of theirs would never work"
            )
        scopes = _scopes(options["scopes"])
        try:
            token, text = tokens.issue(
                user, options["name"], scopes, options["expires"], by=None, door=DOOR
            )
        except ValidationError as exc:
            raise CommandError(_refusal(exc)) from None
        useless = sorted(
            set(token.scopes) - set(tokens.useful_scopes(user)), key=Scope.values.index
        )
        if useless:
            self.stderr.write(
                f"warning: {user.get_username()}'s permissions give {', '.join(useless)} "
                "no use yet; the token is refused whatever those scopes allow until they do"
            )
        expires = f"expires {_when(token.expires_at)}" if token.expires_at else "never expires"
        self.stderr.write(
            f"created API token {token.pk} {token.name!r} for {user.get_username()} "
            f"({', '.join(token.scopes)}); it {expires}. Copy it now: it is not shown again."
        )
        self.stdout.write(text)

    def list_tokens(self, options: dict[str, Any]) -> None:
        found: QuerySet[ApiToken] = ApiToken.objects.select_related("user").order_by("-pk")
        if options["user"]:
            found = found.filter(user=_user_named(options["user"]))
        rows = [summary(token) for token in found]
        if options["json"]:
            self.stdout.write(json.dumps(rows))
            return
        if not rows:
            self.stdout.write("no API tokens: make one with `api token create --user U --scope S`")
            return
        table = [LIST_COLUMNS, *(_list_row(row) for row in rows)]
        widths = [max(len(line[i]) for line in table) for i in range(len(LIST_COLUMNS))]
        for line in table:
            cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
            self.stdout.write("  ".join(cells).rstrip())

    def revoke(self, options: dict[str, Any]) -> None:
        token = ApiToken.objects.select_related("user").filter(pk=options["id"]).first()
        if token is None:
            raise CommandError(f"no API token with id {options['id']}")
        if tokens.revoke(token, by=None, door=DOOR):
            self.stdout.write(f"revoked API token {token.pk} {token.name!r} of {token.user}")
        else:
            self.stdout.write(f"API token {token.pk} {token.name!r} was revoked already")


def summary(token: ApiToken) -> dict[str, Any]:
    """What `list --json` says of a token: never its text or its hash."""
    return {
        "id": token.pk,
        "name": token.name,
        "shown": token.shown,
        "user": token.user.get_username(),
        "scopes": list(token.scopes),
        "state": token.state,
        "expires_at": _iso(token.expires_at),
        "last_used_at": _iso(token.last_used_at),
        "created_at": _iso(token.created_at),
    }


def _list_row(row: dict[str, Any]) -> tuple[str, ...]:
    return (
        str(row["id"]),
        row["name"],
        row["user"],
        ",".join(row["scopes"]),
        row["state"],
        _short(row["expires_at"], "never"),
        _short(row["last_used_at"], "never"),
        _short(row["created_at"], "-"),
    )


def _user_named(username: str) -> Any:
    user_model = get_user_model()
    try:
        return user_model._default_manager.get_by_natural_key(username)
    except user_model.DoesNotExist:
        raise CommandError(f"no user named {username!r}") from None


def _scopes(given: list[str]) -> list[str]:
    """Scopes as typed: repeated, several to a --scope, or one quoted "a b" or "a,b"."""
    scopes = [scope for text in given for scope in re.split(r"[\s,]+", text) if scope]
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown:
        raise CommandError(
            f"unknown scope {', '.join(unknown)}: scopes are {', '.join(Scope.values)}"
        )
    if not scopes:
        raise CommandError(f"give at least one --scope: {', '.join(Scope.values)}")
    return scopes


def _refusal(exc: ValidationError) -> str:
    """A refused request as one line, naming the options at fault."""
    options = {"name": "--name", "scopes": "--scope", "expires_in_days": "--expires"}
    return "; ".join(
        f"{options.get(field, field)}: {' '.join(messages)}"
        for field, messages in exc.message_dict.items()
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _short(iso: str | None, missing: str) -> str:
    return iso[:16].replace("T", " ") if iso else missing
