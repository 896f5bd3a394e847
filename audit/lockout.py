"""The page django-axes shows a sign-in it refuses (AXES_LOCKOUT_CALLABLE)."""

from typing import Any

from axes.helpers import get_client_username, get_cool_off
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def lockout_page(
    request: HttpRequest, response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    cool_off = get_cool_off(request)
    context = {
        "title": "Signing in is paused",
        "username": get_client_username(request, credentials) or "",
        "failure_limit": settings.HERALD_LOGIN_FAILURE_LIMIT,
        "minutes": round(cool_off.total_seconds() / 60) if cool_off else None,
    }
    return render(
        request,
        "registration/locked_out.html",
        context,
        status=429,  # Too Many Requests, as axes answers by default
    )


def client_str(
    username: str, ip_address: str, user_agent: str, path_info: Any, request: Any
) -> str:
    """How axes names a client in its log lines: the address, never what was typed as a name."""
    path = path_info[0] if isinstance(path_info, tuple) else path_info
    return f"{{ip_address: {ip_address!r}, path_info: {path!r}}}"
