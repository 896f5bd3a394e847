"""The client address of the request being served, for audit records made deep in models.

Models that record an audit event (a campaign transition) have no request; the middleware
puts the address where they can find it, for this request only.
"""

from collections.abc import Callable
from contextvars import ContextVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse

_client_ip: ContextVar[str | None] = ContextVar("audit_client_ip", default=None)


def client_ip(request: HttpRequest) -> str | None:
    """The address that sent `request`: the peer, or behind our proxy, the one it saw.

    X-Forwarded-For is believed only with BEHIND_PROXY, and only its last entry (the one our
    proxy appended): anything before it the client may have written itself, and would then
    pick a fresh address for every guess at a password.
    """
    if settings.BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR") or None


def current_client_ip() -> str | None:
    return _client_ip.get()


class ClientAddressMiddleware:
    """Makes the request's client address known to audit records made while serving it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _client_ip.set(client_ip(request))
        try:
            return self.get_response(request)
        finally:
            _client_ip.reset(token)
