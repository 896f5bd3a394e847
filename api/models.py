"""What integrations hold and receive: personal API tokens, the requests they may not
repeat (Idempotency-Key), and the outgoing webhooks' subscriptions and deliveries.

The top of the layout: this app reads campaigns, messaging and contacts; none of them
imports it (they announce events, which this app follows).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

#: Every token starts with this, so a leaked one is recognisable (secret scanners, logs).
TOKEN_PREFIX = "hrld_"  # noqa: S105 - a public marker, not a secret
#: How often a token's "last used" is written: not on every request of a busy integration.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class Scope(models.TextChoices):
    CONTACTS_READ = "contacts:read", "Read contacts, groups, tags, opt-outs and segments"
    CONTACTS_WRITE = "contacts:write", "Add, change and erase contacts; add and remove opt-outs"
    CAMPAIGNS_READ = "campaigns:read", "Read campaigns, messages and inbound messages"
    CAMPAIGNS_WRITE = "campaigns:write", "Create draft campaigns and submit them for approval"
    MESSAGES_SEND = "messages:send", "Send transactional messages"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def usable(self) -> ApiTokenQuerySet:
        """Not revoked, not expired, and its owner still allowed to sign in."""
        now = timezone.now()
        return self.filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now),
            revoked_at__isnull=True,
            user__is_active=True,
        )

    def issue(
        self,
        user: Any,
        name: str,
        scopes: list[str],
        expires_in_days: int | None = None,
        by: Any = None,
    ) -> tuple[ApiToken, str]:
        """A new token for `user` and its text: the only time the text exists in clear."""
        unknown = sorted(set(scopes) - set(Scope.values))
        if unknown or not scopes:
            raise ValueError(f"unknown scope: {', '.join(unknown)}" if unknown else "no scope")
        key_id = secrets.token_hex(4)
        text = f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        token = self.create(
            user=user,
            name=name,
            key_id=key_id,
            digest=_digest(text),
            scopes=sorted(set(scopes), key=Scope.values.index),
            expires_at=expires_at,
            created_by=by or user,
        )
        return token, text

    def authenticate(self, text: str) -> ApiToken | None:
        """The usable token `text` is, or None (a wrong, revoked or expired one alike)."""
        if not text.startswith(TOKEN_PREFIX):
            return None
        key_id = text[len(TOKEN_PREFIX) :].partition("_")[0]
        token = self.usable().select_related("user").filter(key_id=key_id).first()
        if token is None or not hmac.compare_digest(token.digest, _digest(text)):
            return None
        token.touch()
        return token


class ApiToken(models.Model):
    """A personal API token: acts as its user, within its scopes, until revoked or expired."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What it is for, e.g. the shop's checkout.")
    # Shown in lists and logs: finds the row; the rest of the token is only ever hashed.
    key_id = models.CharField(max_length=8, unique=True, editable=False)
    # SHA-256 of the whole token: 256 random bits need no slow hash.
    digest = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        verbose_name = "API token"
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.name} ({self.shown})"

    @property
    def shown(self) -> str:
        """How the token is named on pages: its public start, never its secret."""
        return f"{TOKEN_PREFIX}{self.key_id}_…"

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    def revoke(self) -> bool:
        """Revoke it now; False if it was revoked already."""
        return bool(
            ApiToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
                revoked_at=timezone.now()
            )
        )

    def touch(self) -> None:
        """Note that it was used, at most once a minute (a conditional update, no read)."""
        now = timezone.now()
        if self.last_used_at and now - self.last_used_at < LAST_USED_RESOLUTION:
            return
        ApiToken.objects.filter(pk=self.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        self.last_used_at = now


class IdempotentRequest(models.Model):
    """A transactional send made with an Idempotency-Key: a retry gets this message back."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # The request's body, hashed: the same key with another body is refused, not replayed.
    request_hash = models.CharField(max_length=64)
    message = models.ForeignKey(
        "messaging.Message", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=("user", "key"), name="idempotent_request_user_key")
        ]

    def __str__(self) -> str:
        return self.key
