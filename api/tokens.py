"""Issuing, revoking and listing API tokens, for every door (dashboard, admin, CLI).

Each door calls these, so a token is always created and revoked the same way: checked,
audited (never with its text), and seen only by its owner or a superuser.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from api.models import ApiToken, Scope
from audit.models import AuditEvent

#: What the dashboard's form suggests: long enough for an integration, short enough to
#: make a forgotten token stop by itself.
DEFAULT_EXPIRY_DAYS = 90
#: Ten years: longer is "never", which is asked for as such.
MAX_EXPIRY_DAYS = 3650
NAME_MAX_LENGTH = ApiToken._meta.get_field("name").max_length or 100

#: The permissions of which a user needs at least one for a scope to let their token do
#: anything: each route still checks its own (api.auth.require), as the UI does.
SCOPE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    Scope.CONTACTS_READ: (
        "contacts.view_contact",
        "contacts.view_group",
        "contacts.view_tag",
        "contacts.view_optout",
        "campaigns.view_segment",
    ),
    Scope.CONTACTS_WRITE: (
        "contacts.add_contact",
        "contacts.change_contact",
        "contacts.delete_contact",
        "contacts.add_optout",
        "contacts.delete_optout",
    ),
    Scope.CAMPAIGNS_READ: (
        "campaigns.view_campaign",
        "messaging.view_message",
        "messaging.view_inboundmessage",
    ),
    Scope.CAMPAIGNS_WRITE: ("campaigns.add_campaign", "campaigns.change_campaign"),
    Scope.MESSAGES_SEND: ("messaging.send_transactional",),
}


def useful_scopes(user: Any) -> list[str]:
    """The scopes the user's permissions give some use, in the order Scope lists them."""
    if not user.is_active:
        return []
    return [
        scope
        for scope in Scope.values
        if any(user.has_perm(permission) for permission in SCOPE_PERMISSIONS[scope])
    ]


def visible_to(user: Any) -> QuerySet[ApiToken]:
    """Superusers see (and may revoke) every token; anyone else only their own."""
    tokens = ApiToken.objects.select_related("user")
    return tokens if user.is_superuser else tokens.filter(user_id=user.pk)


def check_request(name: str, scopes: list[str], expires_in_days: int | None) -> None:
    """ValidationError, naming each field, unless a token could be issued with these."""
    errors: dict[str, str] = {}
    if not name.strip():
        errors["name"] = "Give the token a name that says what it is for."
    elif len(name) > NAME_MAX_LENGTH:
        errors["name"] = f"A name has at most {NAME_MAX_LENGTH} characters."
    unknown = sorted(set(scopes) - set(Scope.values))
    if unknown:
        errors["scopes"] = (
            f"Unknown scope: {', '.join(unknown)} (scopes are {', '.join(Scope.values)})."
        )
    elif not scopes:
        errors["scopes"] = "Give the token at least one scope."
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        errors["expires_in_days"] = f"A token expires after 1 to {MAX_EXPIRY_DAYS} days, or never."
    if errors:
        raise ValidationError(errors)


def issue(
    user: Any,
    name: str,
    scopes: list[str],
    expires_in_days: int | None,
    *,
    by: Any,
    door: str,
) -> tuple[ApiToken, str]:
    """A new token of `user` and its text (shown once, never stored), audited as made by
    `by` (None: the server's shell) through `door`."""
    check_request(name, scopes, expires_in_days)
    with transaction.atomic():
        token, text = ApiToken.objects.issue(user, name.strip(), scopes, expires_in_days, by=by)
        detail = {
            **_detail(token, door),
            "scopes": token.scopes,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        }
        AuditEvent.record(AuditEvent.Action.API_TOKEN_CREATED, actor=by, obj=token, detail=detail)
    return token, text


def revoke(token: ApiToken, *, by: Any, door: str) -> bool:
    """Revoke it now, audited; False (and nothing written) if it was revoked already."""
    with transaction.atomic():
        revoked = token.revoke()
        if revoked:
            AuditEvent.record(
                AuditEvent.Action.API_TOKEN_REVOKED,
                actor=by,
                obj=token,
                detail=_detail(token, door),
            )
    return revoked


def _detail(token: ApiToken, door: str) -> dict[str, Any]:
    """What the audit log says of a token: whose and which, by its public part alone."""
    return {
        "door": door,
        "user": token.user.get_username(),
        "name": token.name,
        "key_id": token.key_id,
    }
