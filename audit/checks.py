"""System checks of the sign-in area: where password-reset mails go in production."""

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

UNCONFIGURED = "config.mail.UnconfiguredEmailBackend"
# Backends that print mail into the server's output, or keep it in memory or nowhere.
PRINTED_OR_DROPPED = {
    "django.core.mail.backends.console.EmailBackend": "prints them into the server's output",
    "django.core.mail.backends.dummy.EmailBackend": "drops them",
    "django.core.mail.backends.locmem.EmailBackend": "keeps them in memory, unread",
}


@register(Tags.security, deploy=True)
def password_reset_mail_is_configured(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    backend = settings.EMAIL_BACKEND
    if backend == UNCONFIGURED:
        return [
            Error(
                "EMAIL_URL is not set: password-reset mails cannot be sent.",
                hint="Set EMAIL_URL to your mail server, e.g. smtp+tls://user:password@host:587 "
                "(see README.md, Configuration).",
                id="herald.E020",
            )
        ]
    if backend in PRINTED_OR_DROPPED:
        return [
            Warning(
                f"EMAIL_URL chooses a mail backend that {PRINTED_OR_DROPPED[backend]}: "
                "password-reset links are then not delivered, and printed ones let whoever "
                "reads the logs take over the account.",
                hint="Set EMAIL_URL to your mail server, e.g. smtp+tls://user:password@host:587.",
                id="herald.W021",
            )
        ]
    return []
