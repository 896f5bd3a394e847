"""System checks of the contacts app."""

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def erasure_key_is_set(app_configs: Any, **kwargs: Any) -> list[Warning]:
    if settings.HERALD_ERASURE_KEY:
        return []
    return [
        Warning(
            "HERALD_ERASURE_KEY is not set: erased numbers are remembered by a hash keyed "
            "from SECRET_KEY, and would be forgotten (messageable again) if SECRET_KEY changed.",
            hint="Set HERALD_ERASURE_KEY to a long random string and never change it "
            "(see README.md, Data retention and erasure).",
            id="herald.W010",
        )
    ]
