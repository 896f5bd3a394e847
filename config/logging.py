"""Logging for Herald: JSON lines in production, and no phone number, body or secret in any line.

Every handler carries `RedactingFilter`, so a record is cleaned whichever logger wrote it
(ours, Django's, urllib3's debug lines with a number in a query string, a provider's error
in a traceback). Sentry events go through the same `redact` via `sentry_before_send`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from pythonjsonlogger.json import JsonFormatter

PHONE_MASK = "[phone]"
SECRET_MASK = "[redacted]"  # noqa: S105 (the mask, not a secret)

# A number: seven or more digits in a row (447911123456, 07911123456), or an international
# or national spelling with single spaces or dashes (+44 7911 123456, %2B44... in a URL,
# 07911-123456, (020) 7946 0958). Spaced digits not starting so ("400 1067", a status and a
# length) are left alone, and so are digits with letters or digits right beside them (an
# identifier such as a uuid's hex).
_SPACED = r"\d(?:[ -]?\d){5,}"
_PHONE = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    rf"(?:\+|%2[Bb])\d{{1,3}}[ -]?(?:\(\d{{1,5}}\)[ -]?)?{_SPACED}"
    rf"|\(\d{{1,5}}\)[ -]?{_SPACED}"
    rf"|0{_SPACED}"
    r"|\d{7,}"
    r")(?![A-Za-z0-9])"
)
# A timestamp's date has eight digits too; it stays readable.
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

# Extra fields, mapping arguments and Sentry data under these names are never shown: the
# whole key, or its last word (sms_body, webhook_secret, access_token).
_SECRET_WORDS = frozenset(
    {
        "authorization",
        "body",
        "cookie",
        "credentials",
        "message",
        "msg",
        "password",
        "phone",
        "secret",
        "signature",
        "text",
        "token",
    }
)
_SECRET_KEYS = frozenset({"api_key", "apikey", "private_key", "access_key", "dsn", "sessionid"})

# What LogRecord sets by itself: everything else on a record came in through `extra`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


# A secret written out in free text, as exception messages and tracebacks carry them: a value
# after a name like a secret ("api_key=...", "'api_secret': '...'", "Authorization: Bearer
# ...", JSON's "token": "..."), a bearer token on its own, a password in a URL.
_CONCEALED_NAME = (
    r"[A-Za-z0-9_.-]*?(?:password|passwd|secret|token|signature|credentials?|authorization"
    r"|cookie|sessionid|api[_-]?key|apikey|access[_-]?key|private[_-]?key|body)"
)
_CONCEALED_VALUE = (
    r"(?P<quote>[\"'])(?:\\.|(?!(?P=quote)).)*(?P=quote)"  # quoted: all of it, spaces too
    r"|(?:(?:Bearer|Basic|Token)\s+)?[^\s\"',;&(){}\[\]<>]+"
)
_SECRET_IN_TEXT = re.compile(
    rf"(?P<name>(?<![A-Za-z0-9]){_CONCEALED_NAME}[\"']?\s*[:=]\s*)(?P<value>{_CONCEALED_VALUE})",
    flags=re.IGNORECASE,
)
_BEARER = re.compile(r"\b(?P<scheme>Bearer|Basic)\s+[A-Za-z0-9._~+/|=-]{6,}")
_URL_PASSWORD = re.compile(r"(?P<user>://[^\s:/@]+):[^\s/@]+@")


def redact_text(text: str) -> str:
    """The text with every secret and phone number in it masked ([redacted], [phone])."""
    text = _SECRET_IN_TEXT.sub(_mask_secret, text)
    text = _BEARER.sub(rf"\g<scheme> {SECRET_MASK}", text)
    text = _URL_PASSWORD.sub(rf"\g<user>:{SECRET_MASK}@", text)
    return _PHONE.sub(_mask_number, text)


def _mask_secret(match: re.Match[str]) -> str:
    quote = match.group("quote") or ""
    return f"{match.group('name')}{quote}{SECRET_MASK}{quote}"


def _mask_number(match: re.Match[str]) -> str:
    found = match.group()
    date = _ISO_DATE.match(found)
    if date:  # "2026-11-23 1234567": keep the date, look at the rest again
        return date.group() + redact_text(found[date.end() :])
    return PHONE_MASK


def is_secret_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    name = key.lower().replace("-", "_")
    return name in _SECRET_KEYS or name.rsplit("_", 1)[-1] in _SECRET_WORDS


def redact(value: Any) -> Any:
    """A copy of `value` fit for a log: numbers masked in strings, secret keys' values hidden."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    if isinstance(value, Mapping):
        return {k: SECRET_MASK if is_secret_key(k) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(item) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    # A request, a model instance...: its text, cleaned (a URL may carry a number).
    return redact_text(str(value))


class RedactingFilter(logging.Filter):
    """Cleans every record in place; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_text(_message_of(record))
        record.args = None
        # exc_info stays (Sentry's handler, after this one, reads the exception from it);
        # formatters use the cleaned exc_text, and JsonLinesFormatter cleans its own.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        for key in set(vars(record)) - _RECORD_ATTRIBUTES:
            value = getattr(record, key)
            setattr(record, key, SECRET_MASK if is_secret_key(key) else redact(value))
        return True


def _message_of(record: logging.LogRecord) -> str:
    args = record.args
    if isinstance(args, Mapping):  # logger.info("%(to)s: %(body)s", {...})
        record.args = {k: SECRET_MASK if is_secret_key(k) else v for k, v in args.items()}
    try:
        return record.getMessage()
    except (TypeError, ValueError, KeyError):  # arguments that do not fit: show both, cleaned
        return f"{record.msg} {redact(args)!r}"


class JsonLinesFormatter(JsonFormatter):
    """One JSON object a line; it renders tracebacks afresh, so it masks them itself."""

    def formatException(self, ei: Any) -> str:
        return redact_text(str(super().formatException(ei)))


def logging_config(*, json_lines: bool, level: str) -> dict[str, Any]:
    """The LOGGING setting: one console handler, JSON lines or plain text, always redacted."""
    formatters = {
        "json": {
            "()": "config.logging.JsonLinesFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": "config.logging.RedactingFilter"}},
        "formatters": formatters,
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json" if json_lines else "plain",
                "filters": ["redact"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
    }


def sentry_before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """Sentry's last look at an event: the same redaction as the log lines."""
    return _redact_event(event)


def _redact_event(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _redact_event_field(key, item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_event(item) for item in value]
    return redact(value)


def _redact_event_field(key: str, value: Any) -> Any:
    if key == "modules":  # package versions: 20241021 is no phone number
        return value
    if key in ("message", "formatted"):  # Sentry's text of an event or breadcrumb: keep it
        return _redact_event(value)
    return SECRET_MASK if is_secret_key(key) else _redact_event(value)


def init_sentry(dsn: str, *, environment: str, release: str | None) -> None:
    """Start Sentry (only called when SENTRY_DSN is set, so the SDK is imported only then)."""
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        integrations=[DjangoIntegration()],
        send_default_pii=False,
        # Frames' local variables and request bodies hold numbers, bodies and credentials.
        include_local_variables=False,
        max_request_body_size="never",
        before_send=sentry_before_send,  # type: ignore[arg-type]
        before_send_transaction=sentry_before_send,  # type: ignore[arg-type]
    )
