"""System checks: a missing credential key is a warning, not a crash at import."""

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def credentials_key_is_set(app_configs: Any, **kwargs: Any) -> list[Warning]:
    if settings.CREDENTIALS_KEYS:
        return []
    return [
        Warning(
            "CREDENTIALS_KEYS is not set: provider credentials are encrypted with a key "
            "derived from SECRET_KEY, and would become unreadable if SECRET_KEY changed.",
            hint="Set CREDENTIALS_KEYS to a Fernet key (see README.md, Configuration).",
            id="herald.W001",
        )
    ]
