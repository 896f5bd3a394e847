"""Who is calling: a Bearer token, its scopes, its owner's permissions, and its pace."""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from ninja.security import HttpBearer
from ninja.throttling import BaseThrottle, SimpleRateThrottle

from api.errors import forbidden
from api.models import ApiToken


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`: the token's row, or 401."""

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken | None:
        found = ApiToken.objects.authenticate(token)
        if found is not None:
            # Object permissions are the owner's, exactly as in the UI.
            request.user = found.user
        return found


@functools.lru_cache(maxsize=8)
def pace(rate: str) -> tuple[int, int]:
    """ "600/min" as (600, 60), read by ninja's own parser."""
    allowed, seconds = SimpleRateThrottle(rate).parse_rate(rate)
    assert allowed is not None and seconds is not None
    return allowed, seconds


class TokenThrottle(BaseThrottle):
    """Each token's own pace (HERALD_API_RATE, read on every request), counted in fixed
    windows with the cache's atomic increment: shared by every web process when the cache
    is (REDIS_URL), per process otherwise. Nothing per request is kept on this object,
    which every thread shares; the wait goes through a thread-local."""

    def __init__(self) -> None:
        self._local = threading.local()

    def allow_request(self, request: HttpRequest) -> bool:
        token = getattr(request, "auth", None)
        if token is None:
            return True
        allowed, seconds = pace(settings.HERALD_API_RATE)
        now = time.time()
        window = int(now // seconds)
        key = f"api-pace:{token.pk}:{window}"
        cache.add(key, 0, seconds + 1)
        try:
            used = cache.incr(key)
        except ValueError:  # the window's key expired between the two calls
            cache.add(key, 1, seconds + 1)
            used = 1
        self._local.wait = (window + 1) * seconds - now
        return used <= allowed

    def wait(self) -> float | None:
        return getattr(self._local, "wait", None)


def token_of(request: HttpRequest) -> ApiToken:
    token = getattr(request, "auth", None)
    assert isinstance(token, ApiToken), "the API's routes all authenticate"
    return token


def require(request: HttpRequest, scope: str, *permissions: str) -> Any:
    """The token's user, if the token has `scope` and the user every permission; else 403."""
    token = token_of(request)
    if not token.allows(scope):
        raise forbidden(f"This token lacks the {scope} scope.")
    missing = [p for p in permissions if not token.user.has_perm(p)]
    if missing:
        raise forbidden(f"The token's user may not do this in Herald (needs {', '.join(missing)}).")
    return token.user
