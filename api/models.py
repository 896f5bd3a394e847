"""What integrations hold and receive: personal API tokens, the requests they may not
repeat (Idempotency-Key), and the outgoing webhooks' subscriptions and deliveries.

The top of the layout: this app reads campaigns, messaging and contacts; none of them
imports it (they announce events, which this app follows).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import connection, models, transaction
from django.db.models import Exists, F, Min, OuterRef, Q, Subquery
from django.utils import timezone

from audit.models import AuditEvent
from contacts.lookups import Picked
from contacts.rows import Columns
from messaging.crypto import decrypt_credentials, encrypt_credentials

#: Every token starts with this, so a leaked one is recognisable (secret scanners, logs).
TOKEN_PREFIX = "hrld_"  # noqa: S105 - a public marker, not a secret
#: What authenticating a request reads of the token's owner (the rest loads when asked for).
OWNER_FIELDS = ("username", "is_active", "is_superuser", "is_staff")
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


@functools.cache
def _token_columns() -> Columns[ApiToken]:
    return Columns(ApiToken, [f.attname for f in ApiToken._meta.concrete_fields])


@functools.cache
def _owner_columns() -> Columns[Any]:
    return Columns(get_user_model(), ("id", *OWNER_FIELDS))


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
        # Every request asks this: one hand-written SELECT of the token's row and what is
        # needed of its owner (the ORM's compiling of the same join, or a raw queryset's
        # working out of its columns, took most of the cheapest route's time); the owner's
        # other fields load if anything asks for them.
        quote = connection.ops.quote_name
        token_columns, owner_columns = _token_columns(), _owner_columns()
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {token_columns.select(connection, 't')}, "  # noqa: S608 - names from the models
                f"{owner_columns.select(connection, 'u')} "
                f"FROM {quote(self.model._meta.db_table)} t "
                f"JOIN {quote(owner_columns.model._meta.db_table)} u ON u.id = t.user_id "
                "WHERE t.key_id = %s",
                [key_id],
            )
            row = cursor.fetchone()
        if row is None:
            return None
        token = token_columns.build(row, connection)
        token.user = owner_columns.build(row[len(token_columns) :], connection)
        if not (token.is_usable and hmac.compare_digest(token.digest, _digest(text))):
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

    @property
    def is_usable(self) -> bool:
        """What `usable()` asks in SQL, asked of this row."""
        return self.state == "active" and self.user.is_active

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


class IdempotentRequestQuerySet(models.QuerySet["IdempotentRequest"]):
    def purge_expired(self) -> int:
        """Delete the keys older than KEPT_FOR; how many went."""
        cutoff = timezone.now() - IdempotentRequest.KEPT_FOR
        return self.filter(created_at__lt=cutoff).delete()[0]


class IdempotentRequest(models.Model):
    """A transactional send made with an Idempotency-Key: a retry gets this message back."""

    #: How long a key is kept: an older one is forgotten (api.idempotency).
    KEPT_FOR = timedelta(hours=24)

    # No index of its own: the unique (user, key) below starts with it. One index fewer
    # for every transactional send to write.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    key = models.CharField(max_length=255)
    # The request's body, hashed: the same key with another body is refused, not replayed.
    request_hash = models.CharField(max_length=64)
    message = models.ForeignKey(
        "messaging.Message", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = IdempotentRequestQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=("user", "key"), name="idempotent_request_user_key")
        ]

    def __str__(self) -> str:
        return self.key


# Outgoing webhooks.


class EventType(models.TextChoices):
    """What a subscription may ask to be told of (the payload's "type")."""

    MESSAGE_SENT = "message.sent", "Message sent"  # the provider accepted a message
    MESSAGE_DELIVERED = "message.delivered", "Message delivered"  # the handset has it
    MESSAGE_FAILED = "message.failed", "Message failed"  # refused or undeliverable, for good
    INBOUND_MESSAGE = "inbound.message", "Inbound message"  # a reply or other message to us
    OPT_OUT = "opt_out", "Opt-out"  # a number went on a channel's suppression list
    LINK_CLICKED = "link.clicked", "Link clicked"  # a short link was followed
    CAMPAIGN_STATUS_CHANGED = "campaign.status_changed", "Campaign status changed"


#: Who may see and change webhooks: they ship phone numbers and replies out of Herald.
MANAGE_WEBHOOKS = "api.manage_webhooks"
#: Standard Webhooks' secret form: this prefix, then base64 of the key.
SECRET_PREFIX = "whsec_"  # noqa: S105 - a public marker, not a secret
SECRET_BYTES = 32
#: After a rotation the old secret signs too, for this long, so receivers can switch over.
ROTATION_GRACE = timedelta(hours=24)
#: Retries wait this long after each failed attempt, then hourly (the last value).
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
)
#: Deliveries deleted at once (with their tries) when a log is pruned or a subscription goes.
FORGET_CHUNK = 5000
#: A delivery is given up when its next try would be later than this after its first one;
#: a subscription is disabled when all it was sent has failed for this long.
GIVE_UP_AFTER = timedelta(hours=24)


def may_manage_webhooks(user: Any) -> bool:
    return bool(user.has_perm(MANAGE_WEBHOOKS))


def http_url(value: str) -> None:
    URLValidator(schemes=["http", "https"])(value)


def _new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _sealed(secret: str) -> str:
    return encrypt_credentials({"secret": secret})


def _opened(sealed: str) -> str:
    return str(decrypt_credentials(sealed).get("secret", ""))


class SubscribedTypes:
    """The event types with an active subscription, as this process last read them: the
    sending path asks on every status move, so the answer comes from memory, read again
    every INTEREST_SECONDS, and at once after a change this process made."""

    def __init__(self) -> None:
        self.types: frozenset[str] = frozenset()
        self.read_at = float("-inf")
        self.lock = threading.Lock()

    def wants(self, event_type: str) -> bool:
        if time.monotonic() - self.read_at >= INTEREST_SECONDS:
            with self.lock:
                if time.monotonic() - self.read_at >= INTEREST_SECONDS:
                    self.types = WebhookSubscription.objects.subscribed_types()
                    self.read_at = time.monotonic()
        return event_type in self.types

    def forget(self) -> None:
        self.read_at = float("-inf")


#: How long a process trusts what it read of which event types have subscribers: a
#: subscription made in one process is followed by every other within this many seconds.
INTEREST_SECONDS = 5.0
interest = SubscribedTypes()


class WebhookSubscriptionQuerySet(models.QuerySet["WebhookSubscription"]):
    def create_with_secret(
        self,
        url: str,
        events: list[str],
        description: str = "",
        by: Any = None,
        is_active: bool = True,
    ) -> tuple[WebhookSubscription, str]:
        """A new subscription and its signing secret: the only time the secret is given."""
        secret = _new_secret()
        subscription = self.model(
            url=url,
            events=events,
            description=description,
            is_active=is_active,
            encrypted_secret=_sealed(secret),
            created_by=by,
        )
        subscription.full_clean()
        subscription.save()
        return subscription, secret

    def subscribed_types(self) -> frozenset[str]:
        """The event types some active subscription asks for."""
        lists = self.filter(is_active=True).values_list("events", flat=True)
        return frozenset(kind for kinds in lists for kind in kinds)

    def listening_to(self, event_type: str) -> list[int]:
        """Ids of the active subscriptions to `event_type` (a handful: read, then picked)."""
        active = self.filter(is_active=True).values_list("pk", "events")
        return [pk for pk, kinds in active if event_type in kinds]

    def delete(self) -> tuple[int, dict[str, int]]:
        """Their logs first, a chunk at a time (see WebhookDeliveryQuerySet.forget)."""
        WebhookDelivery.objects.filter(subscription__in=self).forget()
        return super().delete()

    def disabled(self) -> WebhookSubscriptionQuerySet:
        """Turned off by Herald after a day of failures, not yet turned back on."""
        return self.filter(is_active=False, disabled_at__isnull=False)

    def disable_failing(self, now: datetime) -> int:
        """Turn off those of these whose every delivery has failed for GIVE_UP_AFTER."""
        turned = self.filter(is_active=True, failing_since__lte=now - GIVE_UP_AFTER).update(
            is_active=False,
            disabled_at=now,
            disabled_reason="Every delivery to it failed for 24 hours.",
        )
        if turned:
            interest.forget()
        return turned


class WebhookSubscription(models.Model):
    """An integration's URL and the events it is told of, each delivery signed with its secret."""

    url = models.URLField(
        "URL", max_length=500, validators=[http_url], help_text="http:// or https://"
    )
    events = models.JSONField(default=list, help_text="The event types it is sent.")
    description = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField("active", default=True)
    # Standard Webhooks' whsec_… text, Fernet-encrypted (messaging.crypto); never shown again.
    encrypted_secret = models.TextField(editable=False)
    # The secret before the last rotation, still signing until previous_secret_expires_at.
    encrypted_previous_secret = models.TextField(blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    failing_since = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="First failure since the last success."
    )
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_failure_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When Herald turned it off."
    )
    disabled_reason = models.CharField(max_length=300, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WebhookSubscriptionQuerySet.as_manager()

    class Meta:
        verbose_name = "webhook subscription"
        ordering = ("pk",)
        permissions = (("manage_webhooks", "Can manage outgoing webhooks"),)

    def __str__(self) -> str:
        return self.description or self.url

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        """Its log first, a chunk at a time (see WebhookDeliveryQuerySet.forget)."""
        self.deliveries.all().forget()
        return super().delete(*args, **kwargs)

    def clean(self) -> None:
        events = self.events if isinstance(self.events, list) else None
        if not events:
            raise ValidationError({"events": "Choose at least one event."})
        unknown = sorted(set(map(str, events)) - set(EventType.values))
        if unknown:
            raise ValidationError({"events": f"Unknown event types: {', '.join(unknown)}."})
        self.events = sorted(set(events), key=EventType.values.index)

    @property
    def health(self) -> str:
        """disabled (by Herald), paused (by staff), failing, healthy, or unused (never tried)."""
        if not self.is_active:
            return "disabled" if self.disabled_at else "paused"
        if self.failing_since:
            return "failing"
        return "healthy" if self.last_success_at else "unused"

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets each delivery is signed with: the current one, and the one before a
        rotation while its grace lasts."""
        found = [_opened(self.encrypted_secret)]
        expires = self.previous_secret_expires_at
        if self.encrypted_previous_secret and expires and expires > now:
            found.append(_opened(self.encrypted_previous_secret))
        return found

    def rotate_secret(self) -> str:
        """A new secret, returned once; the current one keeps signing for ROTATION_GRACE."""
        secret = _new_secret()
        self.encrypted_previous_secret = self.encrypted_secret
        self.previous_secret_expires_at = timezone.now() + ROTATION_GRACE
        self.encrypted_secret = _sealed(secret)
        self.save(
            update_fields=[
                "encrypted_secret",
                "encrypted_previous_secret",
                "previous_secret_expires_at",
                "updated_at",
            ]
        )
        return secret

    def audit(self, change: str, by: Any) -> None:
        """Who made, changed, rotated, turned on or deleted it: a webhook ships phone
        numbers out. The URL's host only (its path or query may hold a key)."""
        detail = {
            "change": change,
            "host": urlsplit(self.url).hostname or "",
            "events": self.events,
        }
        AuditEvent.record(AuditEvent.Action.WEBHOOK_CHANGED, actor=by, obj=self, detail=detail)

    def enable(self) -> bool:
        """Turn it (back) on; what waited for it is due now, with a day of retries again.
        False when it was on already."""
        now = timezone.now()
        with transaction.atomic():
            turned = WebhookSubscription.objects.filter(pk=self.pk, is_active=False).update(
                is_active=True,
                disabled_at=None,
                disabled_reason="",
                failing_since=None,
                updated_at=now,
            )
            if turned:
                self.deliveries.filter(status=WebhookDelivery.Status.PENDING).update(
                    next_attempt_at=now, first_attempt_at=None, attempts=0, claim_token=None
                )
        interest.forget()
        self.refresh_from_db()
        return bool(turned)


def next_try(failed_attempts: int, first_attempt_at: datetime, now: datetime) -> datetime | None:
    """When a delivery that failed `failed_attempts` times in all is tried again, or None:
    given up (that would be more than GIVE_UP_AFTER after its first attempt)."""
    delay = RETRY_DELAYS[min(failed_attempts, len(RETRY_DELAYS)) - 1]
    due = now + delay
    return None if due - first_attempt_at > GIVE_UP_AFTER else due


class WebhookDeliveryQuerySet(models.QuerySet["WebhookDelivery"]):
    def due(self, now: datetime) -> WebhookDeliveryQuerySet:
        """Waiting, due, for a subscription that is on (which drops rows of a deleted one)."""
        return self.filter(
            status=WebhookDelivery.Status.PENDING,
            next_attempt_at__lte=now,
            subscription__is_active=True,
        )

    def claim(self, limit: int, lease: timedelta) -> list[WebhookDelivery]:
        """Take up to `limit` due rows for one worker: each is moved past its lease under a
        fresh claim token in one conditional UPDATE, so no other worker takes it meanwhile
        (SKIP LOCKED on PostgreSQL: two workers take different rows without waiting); a
        worker that dies lets its rows come due again when the lease runs out."""
        token = uuid.uuid4()
        now = timezone.now()
        held = {"claim_token": token, "next_attempt_at": now + lease}
        with transaction.atomic():
            candidates = self.due(now).order_by("next_attempt_at")
            if connection.features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True, of=("self",))
            taken = WebhookDelivery.objects.filter(
                Picked(F("pk"), Subquery(candidates.values("pk")[:limit]))
            ).update(**held)
        if not taken:
            return []
        # Found again through the due index: every row taken now waits until the same moment.
        rows = list(WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, **held))
        subscriptions = WebhookSubscription.objects.in_bulk({r.subscription_id for r in rows})
        cache = WebhookDelivery.subscription.field
        for row in rows:
            cache.set_cached_value(row, subscriptions[row.subscription_id])
        return rows

    def send_again(self) -> int:
        """Deliver these once more, due now, with a day of retries (the same webhook-id)."""
        return self.update(
            status=WebhookDelivery.Status.PENDING,
            next_attempt_at=timezone.now(),
            first_attempt_at=None,
            attempts=0,
            claim_token=None,
        )

    def next_due_at(self) -> datetime | None:
        """When the first waiting row of an active subscription is due."""
        waiting = self.filter(status=WebhookDelivery.Status.PENDING, subscription__is_active=True)
        return waiting.aggregate(first=Min("next_attempt_at"))["first"]

    def prune(self, before: datetime, limit: int = 10_000) -> int:
        """Forget up to `limit` deliveries made before `before` that are settled, or whose
        subscription was deleted while they were written; how many went."""
        subscribed = WebhookSubscription.objects.filter(pk=OuterRef("subscription_id"))
        old = self.filter(created_at__lt=before).filter(
            ~Q(status=WebhookDelivery.Status.PENDING) | ~Exists(subscribed)
        )
        ids = list(old.order_by("created_at").values_list("pk", flat=True)[:limit])
        return WebhookDelivery.objects.filter(pk__in=ids).forget()

    def forget(self, chunk: int = FORGET_CHUNK) -> int:
        """Delete these and their tries, `chunk` at a time; how many deliveries went. One
        DELETE of a month's log would name more tries than PostgreSQL takes parameters."""
        forgotten = 0
        while ids := list(self.order_by().values_list("pk", flat=True)[:chunk]):
            WebhookAttempt.objects.filter(delivery_id__in=ids).delete()
            forgotten += WebhookDelivery.objects.filter(pk__in=ids).delete()[0]
        return forgotten


class WebhookDelivery(models.Model):
    """One event for one subscription: the outbox row, written with the change it tells of,
    then tried until the endpoint answers 2xx or a day of retries has passed."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # waiting for its first try, or a retry at next_attempt_at
        DELIVERED = "delivered", "Delivered"  # the endpoint answered 2xx
        FAILED = "failed", "Failed"  # given up after a day of retries (or its contact erased)

    subscription = models.ForeignKey(
        WebhookSubscription,
        on_delete=models.CASCADE,
        related_name="deliveries",
        # Written inside sending's transactions: a subscription deleted meanwhile must
        # not fail that commit. Its rows are then never due (due() joins it) and pruned.
        db_constraint=False,
    )
    #: The `webhook-id` header: the same on every try of this event, and for each subscriber.
    event_id = models.CharField(max_length=40, editable=False)
    event_type = models.CharField(max_length=40, choices=EventType.choices)
    #: The JSON body, exactly as signed and sent on every try.
    payload = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    first_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="Where its day of retries began."
    )
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = WebhookDeliveryQuerySet.as_manager()

    class Meta:
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        ordering = ("-pk",)
        indexes = [
            # Only the waiting rows: what the workers claim, due first.
            models.Index(
                fields=("next_attempt_at",),
                name="webhookdelivery_due",
                condition=models.Q(status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class WebhookAttempt(models.Model):
    """One try of a delivery: what the endpoint answered, or why nothing came back."""

    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    attempted_at = models.DateTimeField()
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    #: The start of the answer's body, numbers and secrets masked.
    response_excerpt = models.CharField(max_length=200, blank=True)
    error = models.CharField(max_length=200, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("-attempted_at", "-pk")

    def __str__(self) -> str:
        return f"{self.response_code or self.error or 'attempt'} at {self.attempted_at:%H:%M:%S}"

    @property
    def succeeded(self) -> bool:
        return self.response_code is not None and 200 <= self.response_code < 300
