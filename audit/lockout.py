"""Sign-in lockout: which failures pause signing in, for how long, and the page that says so.

django-axes keeps the failed sign-ins in the database (shared by every web machine), and
this handler (AXES_HANDLER) judges them by three counts, each with its own limit:

- a username from one address (HERALD_LOGIN_FAILURE_LIMIT): someone mistyping, or guessing;
- a username from every address (HERALD_LOGIN_USERNAME_FAILURE_LIMIT): guesses at one
  account spread over many addresses. It does not hold at an address the user signed in
  from lately (HERALD_LOGIN_KNOWN_ADDRESS_DAYS), so a stranger cannot lock them out there;
- an address, whatever the usernames (HERALD_LOGIN_ADDRESS_FAILURE_LIMIT): one machine
  trying a few passwords on many accounts.

Reaching a limit pauses signing in for the cool-off (`cool_off`): HERALD_LOGIN_COOLOFF_MINUTES,
doubled for each earlier pause of the username or address that ended in the last day, up to
HERALD_LOGIN_COOLOFF_MAX_MINUTES. A failure is remembered for the cool-off in force when it
happened; attempts refused during a pause are not counted, so hammering does not lengthen it.
"""

from datetime import timedelta
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt, AccessAttemptExpiration
from django.conf import settings
from django.db.models import Q, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from audit.context import client_ip
from audit.models import AuditEvent, Lockout


def cool_off(request: HttpRequest | None = None) -> timedelta:
    """How long a pause of this request's username and address lasts (AXES_COOLOFF_TIME)."""
    base = timedelta(minutes=settings.HERALD_LOGIN_COOLOFF_MINUTES)
    if request is None:
        return base
    known = getattr(request, "herald_cool_off", None)
    if known is None:
        earlier = Lockout.objects.ended_recently().of(username_of(request) or "", ip_of(request))
        longest = timedelta(minutes=settings.HERALD_LOGIN_COOLOFF_MAX_MINUTES)
        known = min(base * 2 ** min(earlier.count(), 20), max(longest, base))
        request.herald_cool_off = known  # type: ignore[attr-defined]
    return known


def username_of(request: HttpRequest, credentials: Any = None) -> str | None:
    """The username a sign-in gave, as axes stores it (None when the form had none)."""
    return get_client_username(request, credentials)


def ip_of(request: HttpRequest) -> str | None:
    return getattr(request, "axes_ip_address", None) or client_ip(request)


def failure_counts(username: str | None, ip: str | None) -> dict[str, int]:
    """Failures still remembered: of the pair, of the username anywhere, of the address."""
    pair, named, address = (
        Q(username=username, ip_address=ip),
        Q(username=username),
        Q(ip_address=ip),
    )
    sums = (
        remembered_failures()
        .filter(named | address)
        .aggregate(
            pair=Sum("failures_since_start", filter=pair),
            username=Sum("failures_since_start", filter=named),
            address=Sum("failures_since_start", filter=address),
        )
    )
    return {rule: count or 0 for rule, count in sums.items()}


def remembered_failures() -> QuerySet[AccessAttempt]:
    return AccessAttempt.objects.filter(expiration__expires_at__gt=timezone.now())


def limits() -> dict[str, int]:
    return {
        "pair": settings.HERALD_LOGIN_FAILURE_LIMIT,
        "username": settings.HERALD_LOGIN_USERNAME_FAILURE_LIMIT,
        "address": settings.HERALD_LOGIN_ADDRESS_FAILURE_LIMIT,
    }


def signed_in_from(username: str | None, ip: str | None) -> bool:
    """Whether this user signed in from this address lately (the audit log says)."""
    days = settings.HERALD_LOGIN_KNOWN_ADDRESS_DAYS
    if not days or not username or not ip:
        return False
    return AuditEvent.objects.filter(
        action=AuditEvent.Action.LOGIN,
        actor__username=username,
        ip=ip,
        at__gte=timezone.now() - timedelta(days=days),
    ).exists()


def reached_limits(username: str | None, ip: str | None) -> list[str]:
    """The counts at or over their limit for a sign-in as `username` from `ip`."""
    counts, limit = failure_counts(username, ip), limits()
    reached = [rule for rule, count in counts.items() if count >= limit[rule]]
    if "username" in reached and signed_in_from(username, ip):
        reached.remove("username")
    return reached


class HeraldLockoutHandler(AxesDatabaseHandler):
    """axes' database handler, judging by the three counts instead of one."""

    def get_failures(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        """What axes compares with AXES_FAILURE_LIMIT (the pair's limit): the pair's count,
        or that limit itself once the username or the address as a whole has reached its own.
        """
        username, ip = username_of(request, credentials), ip_of(request)
        if reached_limits(username, ip):
            return max(get_failure_limit(request, credentials), 1)
        return failure_counts(username, ip)["pair"]

    def get_user_attempts(self, request: Any, credentials: dict[str, Any] | None = None) -> Any:
        return [
            attempts.filter(expiration__expires_at__gt=timezone.now())
            for attempts in self.filter_user_attempts(request, credentials)
        ]

    def user_login_failed(
        self, sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
    ) -> None:
        refused = request is not None and request.axes_locked_out
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is not None and request.axes_locked_out and not refused:
            self.pause(request, credentials)

    def pause(self, request: Any, credentials: dict[str, Any] | None) -> None:
        """A limit was just reached: hold every failure it counted for the whole cool-off."""
        username, ip = username_of(request, credentials), ip_of(request)
        until = request.axes_attempt_time + get_cool_off(request)
        counted = {
            "pair": Q(username=username, ip_address=ip),
            "username": Q(username=username),
            "address": Q(ip_address=ip),
        }
        held = Q()
        for rule in reached_limits(username, ip):
            held |= counted[rule]
        AccessAttemptExpiration.objects.filter(
            access_attempt__in=remembered_failures().filter(held), expires_at__lt=until
        ).update(expires_at=until)
        Lockout.objects.begin(username or "", ip, until)

    def reset_user_attempts(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        """After a sign-in, forget that pair's failures only.

        Whoever signed in proved nothing about guesses at other accounts from their address,
        or at their account from elsewhere.
        """
        username = username_of(request, credentials)
        count, _ = AccessAttempt.objects.filter(
            username=username, ip_address=ip_of(request)
        ).delete()
        return count


def lockout_page(
    request: HttpRequest, response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """The page django-axes shows a sign-in it refuses (AXES_LOCKOUT_CALLABLE)."""
    pause = get_cool_off(request)
    context = {
        "title": "Signing in is paused",
        "username": get_client_username(request, credentials) or "",
        "minutes": round(pause.total_seconds() / 60) if pause else None,
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
