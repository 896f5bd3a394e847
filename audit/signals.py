"""Sign-ins, failed sign-ins, sign-outs and lockouts, from Django's and django-axes' signals."""

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from audit.context import client_ip
from audit.models import AuditEvent


def known_user(username: Any) -> Any:
    """The user a failed sign-in named, or None.

    What was typed for an unknown name is not stored: people type their password
    into the username box, and the log must not keep it.
    """
    if not isinstance(username, str) or not username:
        return None
    return get_user_model()._default_manager.filter(username=username).first()


def address(request: HttpRequest | None) -> str | None:
    return client_ip(request) if request is not None else None


@receiver(user_logged_in, dispatch_uid="audit_login")
def record_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    AuditEvent.record(AuditEvent.Action.LOGIN, actor=user, ip=address(request))


@receiver(user_logged_out, dispatch_uid="audit_logout")
def record_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    AuditEvent.record(AuditEvent.Action.LOGOUT, actor=user, ip=address(request))


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def record_login_failure(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    user = known_user(credentials.get("username"))
    AuditEvent.record(
        AuditEvent.Action.LOGIN_FAILED,
        actor=user,
        ip=address(request),
        detail={"known_user": user is not None},
    )


@receiver(user_locked_out, dispatch_uid="audit_locked_out")
def record_lockout(
    sender: Any, request: HttpRequest | None, username: Any = None, **kwargs: Any
) -> None:
    user = known_user(username)
    AuditEvent.record(
        AuditEvent.Action.LOCKED_OUT,
        actor=user,
        ip=address(request),
        detail={"known_user": user is not None},
    )
