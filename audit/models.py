"""Who did what, when, from where: sign-ins, campaign transitions, exports.

A bottom-level app: it imports none of Herald's others, they call `AuditEvent.record`.
Details hold ids, statuses and counts only, never a secret, a phone number or a body.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from audit.context import current_client_ip


class AuditEvent(models.Model):
    class Action(models.TextChoices):
        LOGIN = "login", "signed in"
        LOGIN_FAILED = "login_failed", "failed to sign in"
        LOGOUT = "logout", "signed out"
        LOCKED_OUT = "locked_out", "locked out after failed sign-ins"
        CAMPAIGN_TRANSITION = "campaign_transition", "moved a campaign"  # detail: from, to, action
        EXPORT = "export", "exported data"  # detail: what was exported and how
        IN_DOUBT_DECIDED = (
            "in_doubt_decided",
            "decided on messages in doubt",
        )  # detail: decision, counts
        TEST_SEND = "test_send", "sent a test message"  # detail: campaign, message, redacted number

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Empty for the engine, and for sign-ins as someone who does not exist.",
    )
    # Kept when the user is deleted, so the log still says who it was.
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=30, choices=Action.choices, db_index=True)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True, unpack_ipv4=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("-at", "-pk")
        indexes = [models.Index(fields=("object_type", "object_id"))]

    def __str__(self) -> str:
        who = self.actor_name or "Herald"
        target = f" {self.object_type} {self.object_id}" if self.object_type else ""
        return f"{who} {self.get_action_display()}{target}"

    @classmethod
    def record(
        cls,
        action: str,
        *,
        actor: Any = None,
        obj: models.Model | None = None,
        ip: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> AuditEvent:
        """Write one event; `ip` defaults to the address of the request being served."""
        user = actor if getattr(actor, "is_authenticated", False) else None
        return cls.objects.create(
            action=action,
            actor=user,
            actor_name=user.get_username() if user else "",
            object_type=obj._meta.label_lower if obj is not None else "",
            object_id=str(obj.pk) if obj is not None else "",
            ip=ip or current_client_ip(),
            detail=detail or {},
        )
