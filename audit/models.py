"""Who did what, when, from where: sign-ins, campaign transitions, exports; and what the
sign-in area counts (lockouts, password-reset requests) to set its limits.

A bottom-level app: it imports none of Herald's others, they call `AuditEvent.record`.
Details hold ids, statuses and counts only, never a secret, a phone number or a body.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import salted_hmac

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
        OPT_OUT_ADDED = "opt_out_added", "added an opt-out"  # detail: channel, redacted number
        OPT_OUT_REMOVED = "opt_out_removed", "removed an opt-out"  # detail: as for OPT_OUT_ADDED
        CAMPAIGN_DUPLICATED = "campaign_duplicated", "duplicated a campaign"  # detail: from
        CAMPAIGN_DELETED = "campaign_deleted", "deleted a draft campaign"  # detail: name
        SEGMENT_SAVED = "segment_saved", "saved a segment"  # detail: created, match, rules
        SEGMENT_DELETED = "segment_deleted", "deleted a segment"  # detail: name, match, rules
        # detail: reply, message, channel, redacted number, template id
        INBOX_REPLY = "inbox_reply", "answered a reply"
        REPLIES_HANDLED = "replies_handled", "marked replies handled"  # detail: count, through
        # detail: answer (PasswordResetRequest.Answer); never the address that was typed
        PASSWORD_RESET_REQUESTED = "password_reset_requested", "asked for a password reset"
        PASSWORD_RESET_SENT = "password_reset_sent", "was sent a password reset link"
        AB_DECIDED = "ab_decided", "picked an A/B test's winner"  # detail: winner, why
        # detail: door, user, name, key_id (the token's public part), scopes, expires_at
        API_TOKEN_CREATED = "api_token_created", "created an API token"
        # detail: door, user, name, key_id
        API_TOKEN_REVOKED = "api_token_revoked", "revoked an API token"
        # detail: change (created, changed, secret_rotated, enabled, deleted), host, events
        WEBHOOK_CHANGED = "webhook_changed", "changed an outgoing webhook"

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


def digest(kind: str, value: str) -> str:
    """A keyed hash of a typed name or address, to count by without keeping what was typed."""
    return salted_hmac(f"herald.audit.{kind}", value.strip().casefold()).hexdigest()


class PasswordResetRequestQuerySet(models.QuerySet["PasswordResetRequest"]):
    def admit(self, email: str, ip: str | None) -> PasswordResetRequest:
        """Note a request for a reset link and decide its answer, the same for any address.

        The request is written before counting, so of any number arriving at once (on any
        web machine) no more than the limit find themselves within it.
        """
        window = timedelta(minutes=settings.HERALD_PASSWORD_RESET_WINDOW_MINUTES)
        since = timezone.now() - window
        self.filter(at__lt=since).delete()  # what the window no longer counts
        made = self.create(email=email, email_digest=digest("email", email), ip=ip)
        recent = self.filter(at__gte=since)
        answer = PasswordResetRequest.Answer.QUEUED
        if recent.filter(ip=ip).count() > settings.HERALD_PASSWORD_RESET_CLIENT_LIMIT:
            answer = PasswordResetRequest.Answer.CLIENT_LIMITED
        elif (
            recent.filter(email_digest=made.email_digest).count()
            > settings.HERALD_PASSWORD_RESET_EMAIL_LIMIT
        ):
            answer = PasswordResetRequest.Answer.EMAIL_LIMITED
        if answer != PasswordResetRequest.Answer.QUEUED:
            self.filter(pk=made.pk).update(email="", answer=answer)
            made.email, made.answer = "", answer
        return made


class PasswordResetRequest(models.Model):
    """One request for a reset link, kept for the rate limits' window (then deleted).

    The address typed is kept only until the worker has mailed it (or not: nobody has it);
    the limits count by its keyed hash.
    """

    class Answer(models.TextChoices):
        QUEUED = "queued", "handed to the worker"  # it mails the link if the address has users
        EMAIL_LIMITED = "email_limited", "too many for that address"  # same page, no mail
        CLIENT_LIMITED = "client_limited", "too many from that client"  # told to wait (429)

    at = models.DateTimeField(default=timezone.now, db_index=True)
    email = models.CharField(max_length=254, blank=True)
    email_digest = models.CharField(max_length=64, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True, unpack_ipv4=True, db_index=True)
    answer = models.CharField(max_length=20, choices=Answer.choices, default=Answer.QUEUED)

    objects = PasswordResetRequestQuerySet.as_manager()

    class Meta:
        ordering = ("-at", "-pk")

    def __str__(self) -> str:
        return f"password reset request {self.pk} ({self.get_answer_display()})"


#: How long a lockout is remembered for the next one's length.
LOCKOUT_MEMORY = timedelta(days=1)


class LockoutQuerySet(models.QuerySet["Lockout"]):
    def of(self, username: str, ip: str | None) -> LockoutQuerySet:
        """Lockouts of this username (from anywhere) or of this address (as anyone)."""
        return self.filter(Q(username_digest=digest("username", username)) | Q(ip=ip))

    def ended_recently(self) -> LockoutQuerySet:
        now = timezone.now()
        return self.filter(until__lte=now, until__gt=now - LOCKOUT_MEMORY)

    def begin(self, username: str, ip: str | None, until: Any) -> Lockout:
        self.filter(until__lte=timezone.now() - LOCKOUT_MEMORY).delete()
        return self.create(username_digest=digest("username", username), ip=ip, until=until)


class Lockout(models.Model):
    """A time signing in was paused (once, not for each refused attempt): the next pause of
    the same username or address within a day lasts twice as long (audit/lockout.py)."""

    at = models.DateTimeField(default=timezone.now)
    until = models.DateTimeField(db_index=True)
    # The name typed, hashed: it may be no user's (or someone's password, typed in the wrong box).
    username_digest = models.CharField(max_length=64, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True, unpack_ipv4=True, db_index=True)

    objects = LockoutQuerySet.as_manager()

    class Meta:
        ordering = ("-at", "-pk")

    def __str__(self) -> str:
        return f"lockout {self.pk} until {self.until:%Y-%m-%d %H:%M}"
