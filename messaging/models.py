"""Provider accounts, the Message rows that are the truth of sending, and delivery events."""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeAlias

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction
from django.db.models import Count, F, Subquery, sql
from django.db.models.base import ModelState
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from contacts.lookups import Among, Picked
from contacts.models import Channel, Contact, OptOut, PhoneNumberField
from messaging import backends, counts, events
from messaging.crypto import decrypt_credentials, encrypt_credentials

if TYPE_CHECKING:
    from messaging.backends.base import BaseBackend


class ProviderAccount(models.Model):
    """One set of credentials at one gateway; campaigns send through an account."""

    #: The gateways an account can use, listed once in messaging.backends.
    Backend: TypeAlias = backends.Backend

    name = models.SlugField(
        max_length=50, unique=True, help_text="Used in webhook URLs and the CLI."
    )
    backend = models.CharField(max_length=20, choices=Backend.choices)
    base_url = models.URLField(blank=True, help_text="Leave empty for the provider's own.")
    sender = models.CharField(max_length=20, blank=True, help_text="Default sender ID or number.")
    rate_limit = models.FloatField(
        default=10.0, help_text="Requests per second, all workers together."
    )
    price_per_segment = models.DecimalField(max_digits=10, decimal_places=5, default=0)
    currency = models.CharField(max_length=3, default="GBP")
    options = models.JSONField(
        default=dict, blank=True, help_text="Backend settings that are not secret."
    )
    encrypted_credentials = models.TextField(blank=True, editable=False)
    is_active = models.BooleanField(default=True)
    inbound_cursor = models.JSONField(
        default=dict, blank=True, editable=False, help_text="How far replies were polled."
    )
    inbound_polled_at = models.DateTimeField(null=True, blank=True, editable=False)
    balance_available = models.BigIntegerField(
        null=True, blank=True, editable=False, help_text="Last balance read, in minor units."
    )
    balance_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    balance_low_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When the balance was found too low."
    )
    balance_low_reason = models.CharField(max_length=300, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    @property
    def credentials(self) -> dict[str, Any]:
        return decrypt_credentials(self.encrypted_credentials)

    def set_credentials(self, values: dict[str, Any]) -> None:
        self.encrypted_credentials = encrypt_credentials(values)

    @property
    def has_credentials(self) -> bool:
        return bool(self.encrypted_credentials)

    def get_backend(self) -> BaseBackend:
        from messaging.backends import backend_class

        return backend_class(self.backend)(self)


#: Campaign statuses whose rows are still sent (a row sent again elsewhere would wait forever).
RESENDING_CAMPAIGNS = ("sending", "paused")


def _given_up() -> models.Q:
    since = timezone.now() - timedelta(seconds=settings.HERALD_IN_DOUBT_GIVE_UP_SECONDS)
    return models.Q(status=Message.Status.IN_DOUBT, updated_at__lte=since)


def _error(code: str, message: str) -> dict[str, str]:
    """A provider's error as Message columns, cut to their lengths."""
    return {"error_code": code[:50], "error_message": message[:500]}


class MessageQuerySet(models.QuerySet["Message"]):
    """Rows of Message; every status move is one of its methods, checked by Message.TRANSITIONS."""

    def due(self) -> MessageQuerySet:
        return self.filter(status=Message.Status.PENDING, next_attempt_at__lte=timezone.now())

    def claim(self, limit: int) -> list[Message]:
        """Atomically take up to `limit` due rows of this queryset for sending.

        Each row moves pending -> sending under a fresh claim token and lease in
        one conditional UPDATE, so two workers can never both take a row; on
        PostgreSQL SKIP LOCKED lets them take different rows without waiting.
        """
        token = uuid.uuid4()
        now = timezone.now()
        lease_ends = now + timedelta(seconds=settings.HERALD_SEND_LEASE_SECONDS)
        with transaction.atomic():
            # Due first; no tie-break on id: a campaign's rows are all due at the same
            # time, and PostgreSQL sorted every row left for each claim (0.45 s at the
            # start of a million) where the due index alone gives them in order (7 ms).
            candidates = self.due().order_by("next_attempt_at")
            if connection.features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True)
            # One statement picks the rows and moves them, reading each back as it
            # moves it (RETURNING): UPDATE ... WHERE id among (SELECT ... LIMIT n), the
            # pick run once (Picked: PostgreSQL could run an IN subquery again).
            taken = Message.objects.filter(
                Picked(F("pk"), Subquery(candidates.values("pk")[:limit]))
            )
            _moved, read = taken._moves(
                Message.Status.SENDING,
                [Message.Status.PENDING],
                Message.SEND_FIELDS,
                **_held_by(token, lease_ends),
            )
        if not read:
            return []
        held = {"claim_token": token, "status": Message.Status.SENDING}
        rows = Message.loaded(sorted(read), {**held, "lease_expires_at": lease_ends})
        # One account object per account, not one per row (a claim may hold 10,000 rows).
        accounts = ProviderAccount.objects.in_bulk({row.provider_account_id for row in rows})
        cache = Message.provider_account.field
        for row in rows:
            cache.set_cached_value(row, accounts[row.provider_account_id])
        return rows

    def among(self, pks: Iterable[int]) -> MessageQuerySet:
        """These rows of thousands of ids (a claim's), the ids sent as one parameter."""
        return self.filter(Among(F("pk"), pks))

    def mark_sending(self, token: uuid.UUID, lease_ends: datetime) -> int:
        """pending -> sending, held under `token` until `lease_ends`; the attempt is counted."""
        return self._move(
            Message.Status.SENDING, [Message.Status.PENDING], **_held_by(token, lease_ends)
        )

    def mark_sent(self, batch_id: str, at: datetime) -> int:
        """sending -> sent: the provider accepted them (in its request `batch_id`) at `at`."""
        return self._move(
            Message.Status.SENT,
            [Message.Status.SENDING],
            provider_batch_id=batch_id,
            sent_at=at,
            updated_at=at,
            lease_expires_at=None,
            error_code="",
            error_message="",
        )

    def retry_later(self, at: datetime, error_code: str, error_message: str) -> int:
        """sending -> pending, due again at `at`: a passing error, the attempt counted."""
        return self._move(
            Message.Status.PENDING,
            [Message.Status.SENDING],
            next_attempt_at=at,
            lease_expires_at=None,
            updated_at=timezone.now(),
            **_error(error_code, error_message),
        )

    def release(
        self, next_attempt_at: datetime | None = None, error_code: str = "", error_message: str = ""
    ) -> int:
        """sending -> pending, its attempt not counted: not tried (account refused, window shut)."""
        due: dict[str, Any] = (
            {} if next_attempt_at is None else {"next_attempt_at": next_attempt_at}
        )
        if error_code:
            due.update(_error(error_code, error_message))
        return self._move(
            Message.Status.PENDING,
            [Message.Status.SENDING],
            attempts=F("attempts") - 1,
            lease_expires_at=None,
            claim_token=None,
            updated_at=timezone.now(),
            **due,
        )

    def mark_in_doubt(self, error_code: str, error_message: str, request_ref: str = "") -> int:
        """sending -> in doubt: the request may have reached the provider; never resent blindly."""
        return self._move(
            Message.Status.IN_DOUBT,
            [Message.Status.SENDING],
            request_ref=request_ref,
            lease_expires_at=None,
            updated_at=timezone.now(),
            **_error(error_code, error_message),
        )

    def mark_expired_leases_in_doubt(self) -> int:
        """Rows whose worker vanished mid-send: they may have gone out, so never resend blindly."""
        return self.lease_expired()._move(
            Message.Status.IN_DOUBT,
            [Message.Status.SENDING],
            error_code="LEASE_EXPIRED",
            error_message="worker stopped while sending; not resent until reconciled",
            updated_at=timezone.now(),
        )

    def mark_failed(self, error_code: str, error_message: str) -> int:
        """sending -> failed: the provider refused them for good."""
        return self._move(
            Message.Status.FAILED,
            [Message.Status.SENDING],
            lease_expires_at=None,
            updated_at=timezone.now(),
            **_error(error_code, error_message),
        )

    def give_up(self, error_code: str | None = None, error_message: str | None = None) -> int:
        """pending -> failed: rows nothing will send again; an error given replaces the last one."""
        given = error_code is not None or error_message is not None
        error = _error(error_code or "", error_message or "") if given else {}
        return self._move(
            Message.Status.FAILED, [Message.Status.PENDING], updated_at=timezone.now(), **error
        )

    def skip(self, reason: str) -> int:
        """pending -> skipped for `reason`, never to be sent.

        `updated_at` is left as it was: reports date a row never handed over by it.
        """
        return self._move(Message.Status.SKIPPED, [Message.Status.PENDING], skip_reason=reason)

    def skip_at_send(self, reason: str) -> int:
        """sending -> skipped: claimed, then found not to be sent after all (an opt-out since)."""
        return self._move(
            Message.Status.SKIPPED,
            [Message.Status.SENDING],
            skip_reason=reason,
            updated_at=timezone.now(),
        )

    def cancel_unsent(self) -> int:
        """pending -> cancelled: their campaign was cancelled before they went."""
        return self._move(
            Message.Status.CANCELLED, [Message.Status.PENDING], updated_at=timezone.now()
        )

    def settle_found(self, provider_message_id: str, sent_at: datetime) -> int:
        """in doubt -> sent: the provider has them, under `provider_message_id`."""
        return self._move(
            Message.Status.SENT,
            [Message.Status.IN_DOUBT],
            provider_message_id=provider_message_id,
            sent_at=sent_at,
            lease_expires_at=None,
            error_code="",
            error_message="",
            updated_at=timezone.now(),
        )

    def resend(self) -> int:
        """in doubt -> pending, due now: the provider has no record of them."""
        return self._move(
            Message.Status.PENDING,
            [Message.Status.IN_DOUBT],
            next_attempt_at=timezone.now(),
            claim_token=None,
            lease_expires_at=None,
            error_code="NOT_AT_PROVIDER",
            error_message="in doubt, and the provider has no record of it: sent again",
            updated_at=timezone.now(),
        )

    def given_up(self) -> MessageQuerySet:
        """In doubt for longer than HERALD_IN_DOUBT_GIVE_UP_SECONDS: their campaign may finish.

        They stay in doubt (counted so, shown to staff) until staff decide, or a lookup
        finds them at the provider.
        """
        return self.filter(_given_up())

    def not_given_up(self) -> MessageQuerySet:
        return self.exclude(_given_up())

    def unfinished(self) -> MessageQuerySet:
        """Rows a campaign still waits for: pending, sending, or in doubt and not given up."""
        return self.filter(status__in=Message.UNFINISHED_STATUSES).not_given_up()

    def decide_in_doubt(self, decision: str, by: Any) -> int:
        """Staff decide on rows in doubt: "mark_sent" or "send_again"; audited; how many moved.

        Sending again is refused for rows whose campaign no longer sends (completed or
        cancelled): nothing would pick them up.
        """
        doubtful = self.filter(status=Message.Status.IN_DOUBT)
        if decision == "mark_sent":
            moved = doubtful._move(
                Message.Status.SENT,
                [Message.Status.IN_DOUBT],
                sent_at=timezone.now(),
                error_code="MARKED_SENT",
                error_message=f"in doubt; marked as sent by {by}",
                updated_at=timezone.now(),
            )
        elif decision == "send_again":
            moved = doubtful.filter(
                models.Q(campaign__isnull=True) | models.Q(campaign__status__in=RESENDING_CAMPAIGNS)
            )._move(
                Message.Status.PENDING,
                [Message.Status.IN_DOUBT],
                next_attempt_at=timezone.now(),
                claim_token=None,
                lease_expires_at=None,
                error_code="SENT_AGAIN_BY_STAFF",
                error_message=f"in doubt; sent again at the request of {by}",
                updated_at=timezone.now(),
            )
        else:
            raise ValueError(f"no such decision on messages in doubt: {decision}")
        if moved:
            from audit.models import AuditEvent

            campaigns = sorted({c for c in self.values_list("campaign_id", flat=True) if c})
            AuditEvent.record(
                AuditEvent.Action.IN_DOUBT_DECIDED,
                actor=by,
                detail={"decision": decision, "messages": moved, "campaigns": campaigns},
            )
        return moved

    def record_report(
        self, status: str, occurred_at: datetime, error_code: str = "", error_message: str = ""
    ) -> int:
        """A provider's report moves rows forward only: from sent or in doubt, as the table allows.

        A late "sent" never undoes "delivered": delivered rows are not among those it moves.
        """
        if status not in (Message.Status.SENT, Message.Status.DELIVERED, Message.Status.FAILED):
            raise ValueError(f"a report cannot move a message to {status}")
        changes: dict[str, Any] = {"updated_at": timezone.now()}
        if status == Message.Status.DELIVERED:
            changes["delivered_at"] = occurred_at
        if error_code or error_message:
            changes.update(_error(error_code, error_message))
        reported = (Message.Status.SENT, Message.Status.IN_DOUBT)
        sources = [s for s in reported if status in Message.TRANSITIONS[s]]
        return self._move(status, sources, **changes)

    def _move(self, to: str, sources: Sequence[str], **changes: Any) -> int:
        """Those of these rows now in `sources` to `to`, in one conditional UPDATE.

        The transitions table is the check: a move it does not list from each of
        `sources` is refused before anything is written.
        """
        return self._moves(to, sources, (), **changes)[0]

    def _moves(
        self, to: str, sources: Sequence[str], read: Sequence[str], **changes: Any
    ) -> tuple[int, list[tuple[Any, ...]]]:
        """_move, and the `read` fields of every row it moved (as read_rows gives them)."""
        refused = [s for s in sources if to not in Message.TRANSITIONS[s]]
        if refused or not sources:
            origin = ", ".join(refused) or "nowhere"
            raise ValueError(f"a message may not move from {origin} to {to}")
        moved = 0
        rows_read: list[tuple[Any, ...]] = []
        tally = counts.Tally()
        # Rows are read back for an announcement only while someone follows it.
        announced = events.on_move_to(to)
        told = events.MESSAGE_FIELDS if announced is not None and announced.wanted() else ()
        news: list[tuple[Any, ...]] = []
        # The kept counts change in the same transaction as the rows (no savepoint when
        # the caller has a transaction already: nothing here is to be undone alone).
        with transaction.atomic(savepoint=False):
            for source in sources:
                # A move only the status keys see (a claim, a release) needs each row's
                # campaign alone: nothing else it returns could change a count.
                returning = (
                    counts.CAMPAIGN_ONLY
                    if counts.status_only(source, to, changes)
                    else counts.RETURNED
                )
                extra = told if source != to else ()  # a restamped "sent" is no news
                rows, also = self.filter(status=source)._update_counted(
                    {"status": to, **changes}, returning, (*read, *extra)
                )
                tally.moved(source, to, changes, rows, returning)
                moved += sum(rows.values())
                rows_read += [row[: len(read)] for row in also] if extra else also
                news += [row[len(read) :] for row in also] if extra else []
            if announced is not None and news:
                announced.send(sender=Message, rows=news)
            tally.save()
        return moved, rows_read

    def _update_counted(
        self, values: dict[str, Any], returning: Sequence[str], read: Sequence[str] = ()
    ) -> tuple[Counter[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """QuerySet.update(**values): those columns of the rows it changed, each distinct
        set of values once with how many rows had it (a claim's 10,000 rows are a few);
        and the `read` fields of each row, when asked for (times and JSON as text)."""
        query = self.query.chain(sql.UpdateQuery)
        assert isinstance(query, sql.UpdateQuery)
        query.add_update_values(values)
        query.annotations = {}
        compiler = query.get_compiler(self.db)
        statement, params = compiler.as_sql()  # also narrows a joined filter to ids
        if not statement:
            return Counter(), []
        database = connections[self.db]
        columns = ", ".join(database.ops.quote_name(_column(name)) for name in returning)
        also: list[tuple[Any, ...]] = []
        with database.cursor() as cursor:
            if read:
                as_read = ", ".join(_as_text(database, name) for name in (*returning, *read))
                cursor.execute(f"{statement} RETURNING {as_read}", params)
                rows = cursor.fetchall()
                raw = Counter(tuple(row[: len(returning)]) for row in rows)
                also = [tuple(row[len(returning) :]) for row in rows]
            elif database.vendor == "postgresql":
                # Grouped where they are: reading each row's times back cost more than
                # the UPDATE itself.
                cursor.execute(
                    f"WITH moved AS ({statement} RETURNING {columns}) "  # noqa: S608 - columns from meta
                    f"SELECT {columns}, COUNT(*) FROM moved GROUP BY {columns}",
                    params,
                )
                raw = Counter({tuple(row[:-1]): row[-1] for row in cursor.fetchall()})
            else:
                # Times as text: SQLite's driver would parse each row's as it is read.
                as_read = ", ".join(_as_text(database, name) for name in returning)
                cursor.execute(f"{statement} RETURNING {as_read}", params)
                raw = Counter(tuple(row) for row in cursor.fetchall())
        converters = [_returned_converter(name) for name in returning]
        counted: Counter[tuple[Any, ...]] = Counter()
        for row, alike in raw.items():
            pairs = zip(converters, row, strict=True)
            counted[tuple(convert(value) for convert, value in pairs)] += alike
        return counted, also

    def lease_expired(self) -> MessageQuerySet:
        return self.filter(status=Message.Status.SENDING, lease_expires_at__lt=timezone.now())

    def awaiting_report(self, older_than: timedelta = timedelta(0)) -> MessageQuerySet:
        return self.filter(status=Message.Status.SENT, sent_at__lte=timezone.now() - older_than)

    def skip_reason_counts(self) -> dict[str, int]:
        """Skipped rows per reason, every reason present (zero when none)."""
        counts = dict.fromkeys(Message.SkipReason.values, 0)
        skipped = self.filter(status=Message.Status.SKIPPED).order_by()
        for row in skipped.values("skip_reason").annotate(n=Count("pk")):
            counts[row["skip_reason"]] = row["n"]
        return counts

    def status_counts(self) -> dict[str, int]:
        """Rows per status, every status present (zero when none)."""
        counts = dict.fromkeys(Message.Status.values, 0)
        for row in self.order_by().values("status").annotate(n=Count("pk")):
            counts[row["status"]] = row["n"]
        return counts


class Message(models.Model):
    """One message to one recipient: the unit of truth for sending."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # waiting to be sent, at or after next_attempt_at
        SENDING = "sending", "Sending"  # claimed by a worker whose lease has not run out
        SENT = "sent", "Sent"  # accepted by the provider, no delivery report yet
        DELIVERED = "delivered", "Delivered"  # the handset has it (final)
        FAILED = "failed", "Failed"  # refused or undeliverable (final)
        SKIPPED = "skipped", "Skipped"  # never sent: see skip_reason (final)
        IN_DOUBT = "in_doubt", "In doubt"  # may have reached the provider; never resent blindly
        CANCELLED = "cancelled", "Cancelled"  # its campaign was cancelled before it went (final)

    class SkipReason(models.TextChoices):
        OPTED_OUT = "opted_out", "Opted out"  # on the suppression list of the message's channel
        ERASED = "erased", "Number erased"  # erased at its owner's request (GDPR)
        INVALID_NUMBER = "invalid_number", "Invalid number"
        DUPLICATE = "duplicate", "Duplicate number"
        FREQUENCY_CAP = "frequency_cap", "Over the frequency cap"  # messaged enough lately
        NO_SEND_WINDOW = "no_send_window", "Never inside the send window"

    #: What sending reads of a claimed row (the rest is loaded only if asked for).
    SEND_FIELDS = (
        "id",
        "provider_account",
        "channel",
        "phone",
        "sender",
        "body",
        "client_ref",
        "attempts",
        "template_id",
        "template_params",
        "time_zones",
    )

    #: The only status moves a message makes, each by one MessageQuerySet method.
    TRANSITIONS: dict[str, frozenset[str]] = {
        # claim (mark_sending) · skip (erased) · cancel_unsent · give_up (a test send)
        Status.PENDING: frozenset(
            {Status.SENDING, Status.SKIPPED, Status.CANCELLED, Status.FAILED}
        ),
        # mark_sent · retry_later, release · mark_in_doubt, mark_expired_leases_in_doubt
        # · mark_failed · skip_at_send (opted out since it was queued)
        Status.SENDING: frozenset(
            {Status.SENT, Status.PENDING, Status.IN_DOUBT, Status.FAILED, Status.SKIPPED}
        ),
        # record_report: delivered or failed; a repeated "sent" report restamps it
        Status.SENT: frozenset({Status.SENT, Status.DELIVERED, Status.FAILED}),
        # settle_found · resend · record_report (a report settles the doubt too)
        Status.IN_DOUBT: frozenset({Status.SENT, Status.PENDING, Status.DELIVERED, Status.FAILED}),
        Status.DELIVERED: frozenset(),
        Status.FAILED: frozenset(),
        Status.SKIPPED: frozenset(),
        Status.CANCELLED: frozenset(),
    }
    FINAL_STATUSES = (Status.DELIVERED, Status.FAILED, Status.SKIPPED, Status.CANCELLED)
    UNFINISHED_STATUSES = (Status.PENDING, Status.SENDING, Status.IN_DOUBT)

    campaign = models.ForeignKey(
        "campaigns.Campaign",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="messages",
        db_index=False,  # covered by message_campaign_status, which starts with it
        # Deletes cascade through Django; a database constraint would check every one
        # of a million rows as a campaign is built (a third of the time it takes).
        db_constraint=False,
    )
    contact = models.ForeignKey(
        Contact,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        db_index=False,  # covered by message_contact_created, which starts with it
    )
    # Not indexed: per-account lookups (status polls, reconciling) go by status first.
    provider_account = models.ForeignKey(ProviderAccount, on_delete=models.PROTECT, db_index=False)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.SMS)
    phone = PhoneNumberField()
    sender = models.CharField(max_length=20, blank=True)
    body = models.TextField()
    encoding = models.CharField(max_length=8, blank=True)
    segments = models.PositiveSmallIntegerField(default=1)
    cost = models.DecimalField(max_digits=12, decimal_places=5, null=True, blank=True)
    client_ref = models.CharField(
        max_length=64, help_text="Our idempotency key, sent to the provider."
    )
    time_zones = models.TextField(
        blank=True, help_text="The recipient's zones, for the send window."
    )
    provider_message_id = models.CharField(max_length=100, blank=True)
    provider_batch_id = models.CharField(
        max_length=100, blank=True, help_text="The provider's id for the bulk request it went in."
    )
    request_ref = models.CharField(
        max_length=80,
        blank=True,
        help_text="In doubt: our reference of the request it went in, to find it at the provider.",
    )
    template_id = models.CharField(
        max_length=100, blank=True, help_text="WhatsApp: the provider's approved template id."
    )
    template_params = models.JSONField(
        default=list, blank=True, help_text="WhatsApp: the template's ordered parameters."
    )
    in_reply_to = models.ForeignKey(
        "InboundMessage",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="answers_sent",
        # Campaign rows never have one: no index and no constraint to pay for on each.
        db_index=False,
        db_constraint=False,
        help_text="A reply from the inbox or a HELP answer: the message it answers.",
    )
    is_test = models.BooleanField(
        default=False,
        db_default=False,  # rows built by bulk insert, which names no such column
        help_text="A test send to a staff member's own number: no campaign's recipient, "
        "counts or cost.",
    )
    is_transactional = models.BooleanField(
        default=False,
        db_default=False,  # rows built by bulk insert, which names no such column
        help_text="One message an integration asked for (POST /api/v1/messages): no "
        "campaign's, no reply; sent by messaging.transactional.",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        # Campaign rows never have one: no index and no constraint to pay for on each.
        db_index=False,
        db_constraint=False,
        help_text="A transactional message: the user whose API token asked for it.",
    )
    variant = models.CharField(
        max_length=1,
        blank=True,
        default="",
        db_default="",  # rows built by bulk insert name it only for A/B campaigns
        help_text="Which of its campaign's A/B variants it carries (A to D); empty: none.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    skip_reason = models.CharField(max_length=20, choices=SkipReason.choices, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claim_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    status_checked_at = models.DateTimeField(
        null=True, blank=True, help_text="When its status was last looked up at the provider."
    )
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ("pk",)
        permissions = (
            ("decide_in_doubt", "Can mark messages in doubt as sent or send them again"),
            ("send_transactional", "Can send transactional messages (API, messages:send)"),
        )
        # Every index is paid for twice per message (claimed, then recorded), so only
        # what lookups need: exact matches only, no LIKE indexes.
        constraints = [
            models.UniqueConstraint(
                fields=("campaign", "phone"),
                condition=models.Q(campaign__isnull=False),
                name="message_once_per_campaign_phone",
            ),
            models.UniqueConstraint(fields=("client_ref",), name="message_client_ref_unique"),
        ]
        indexes = [
            models.Index(fields=("status", "next_attempt_at"), name="message_due"),
            models.Index(fields=("campaign", "status"), name="message_campaign_status"),
            # A contact's page lists its messages newest first, a page at a time.
            models.Index(fields=("contact", "created_at"), name="message_contact_created"),
            # Partial: a row gets an entry only once the provider has named it, not as
            # it is built (a million empty strings would all go through the index).
            models.Index(
                fields=("provider_message_id",),
                name="message_provider_id",
                condition=~models.Q(provider_message_id=""),
            ),
            # Partial: only transactional rows waiting to go, what their sender claims
            # (the due index would walk every pending campaign row to find them).
            models.Index(
                fields=("next_attempt_at",),
                name="message_transactional_due",
                condition=models.Q(status="pending", is_transactional=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.client_ref} ({self.status})"

    @staticmethod
    def new_client_ref() -> str:
        return uuid.uuid4().hex

    @classmethod
    def loaded(cls, rows: Iterable[Sequence[Any]], known: dict[str, Any]) -> list[Message]:
        """`rows` of SEND_FIELDS values, JSON as text, with the `known` values set, as
        Message objects (of the default database).

        Built straight from the values: Model.__init__'s work on each field was most of
        the time of a 10,000-row claim. Fields not read load on first use, as with only().
        """
        attnames = {field.name: field.attname for field in cls._meta.concrete_fields}
        names = [attnames[name] for name in cls.SEND_FIELDS]
        params_at = cls.SEND_FIELDS.index("template_params")
        params: dict[str, Any] = {}  # decoded once per distinct text (nearly all are "[]")
        messages = []
        for values in rows:
            message = cls.__new__(cls)
            message.__dict__.update(zip(names, values, strict=True), **known)
            text = values[params_at]
            if text not in params:
                params[text] = json.loads(text)
            message.template_params = list(params[text])
            message._state = ModelState()
            message._state.adding, message._state.db = False, DEFAULT_DB_ALIAS
            messages.append(message)
        return messages

    def apply_status(self, update: Any) -> bool:
        """Record a StatusUpdate once; move the message forward if it is news. True if it moved."""
        _event, created = StatusEvent.objects.get_or_create(
            message=self,
            event_id=update.event_id,
            defaults={
                "status": update.status,
                "occurred_at": update.occurred_at,
                "error_code": update.error_code,
                "raw": update.raw,
            },
        )
        if not created:
            return False
        moved = Message.objects.filter(pk=self.pk).record_report(
            update.status, update.occurred_at, update.error_code, update.error_message
        )
        return moved == 1


@receiver(post_save, sender=Message)
def count_created_message(sender: Any, instance: Message, created: bool, **kwargs: Any) -> None:
    """A message created through the ORM (tests, fixtures, a reply) counts too; the engine's
    own builds and moves keep their counts where they write (messaging.counts)."""
    if created and not kwargs.get("raw"):
        counts.count_created(instance)


class Link(models.Model):
    """One short link in one message: `/r/<code>` redirects to `url` (messaging.links).

    A campaign's build writes one per URL per recipient; the code is 48 random bits, so
    it tells nothing of whose it is. Retention and erasure blank `url` (the link then
    answers 404) and keep the click figures, which are anonymous.
    """

    code = models.CharField(max_length=8, primary_key=True)
    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, related_name="links", db_constraint=False
    )
    url = models.TextField(blank=True)
    clicks = models.PositiveIntegerField(default=0)
    first_clicked_at = models.DateTimeField(null=True, blank=True)
    last_clicked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # Partial: only links someone followed (the `clicked` segment rule's lookup);
            # a build writes none.
            models.Index(
                fields=("last_clicked_at",),
                name="link_clicked",
                condition=models.Q(last_clicked_at__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return f"/r/{self.code}"


class Click(models.Model):
    """One counted click on a short link: when, and the kind of device (never the address
    or the whole user agent)."""

    class Agent(models.TextChoices):
        MOBILE = "mobile", "Mobile"
        DESKTOP = "desktop", "Desktop"
        OTHER = "other", "Other"

    link = models.ForeignKey(
        Link, on_delete=models.CASCADE, related_name="click_set", db_constraint=False
    )
    clicked_at = models.DateTimeField()
    agent = models.CharField(max_length=8, choices=Agent.choices)

    def __str__(self) -> str:
        return f"{self.link_id} at {self.clicked_at:%Y-%m-%d %H:%M}"


class StatusEvent(models.Model):
    """A delivery report or status lookup, kept raw, applied once to its Message."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="events")
    event_id = models.CharField(max_length=150, help_text="The provider's id for this report.")
    status = models.CharField(max_length=16, choices=Message.Status.choices)
    error_code = models.CharField(max_length=50, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    raw = models.JSONField(default=dict)

    class Meta:
        ordering = ("received_at",)
        constraints = [
            models.UniqueConstraint(fields=("message", "event_id"), name="statusevent_once")
        ]

    def __str__(self) -> str:
        return f"{self.status} at {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class WebhookEventQuerySet(models.QuerySet["WebhookEvent"]):
    def pending(self) -> WebhookEventQuerySet:
        """Recorded at the door, not applied yet: what a worker has still to do."""
        return self.filter(applied_at__isnull=True)


class WebhookEvent(models.Model):
    """A provider callback we have taken in, kept so a retried or replayed one is applied once.

    Each of its three keys is unique per account: the webhook id of the headers (the same
    on the provider's retries), the event id of the body, and the hash of the signed request
    (a replay under a new webhook id changes neither of the other two: the signature
    covers them).
    """

    provider_account = models.ForeignKey(ProviderAccount, on_delete=models.CASCADE)
    webhook_id = models.CharField(max_length=150)
    event_id = models.CharField(
        max_length=150, blank=True, help_text="The provider's id of the event, from its body."
    )
    request_hash = models.CharField(
        max_length=64,
        blank=True,
        help_text="SHA-256 of the signed timestamp and body (blank on records from before it).",
    )
    event = models.CharField(max_length=50, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(max_length=200, blank=True)
    raw = models.JSONField(default=dict)
    applied_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When a worker applied it to our records; empty while it waits for one.",
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Tries that failed with an error; given up after five."
    )

    objects = WebhookEventQuerySet.as_manager()

    class Meta:
        ordering = ("-received_at",)
        indexes = [
            # Only the waiting few: what the workers claim, oldest first.
            models.Index(
                fields=("id",),
                condition=models.Q(applied_at__isnull=True),
                name="webhookevent_pending",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=("provider_account", "webhook_id"), name="webhookevent_once"
            ),
            models.UniqueConstraint(
                fields=("provider_account", "event_id"),
                condition=~models.Q(event_id=""),
                name="webhookevent_event_once",
            ),
            models.UniqueConstraint(
                fields=("provider_account", "request_hash"),
                condition=~models.Q(request_hash=""),
                name="webhookevent_request_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event or 'event'} {self.webhook_id}"


class TaskLeaseQuerySet(models.QuerySet["TaskLease"]):
    def take(self, name: str, holder: str, seconds: float) -> bool:
        """Whether `holder` now holds the lease `name` for `seconds` (taken when free or
        expired, renewed when already its own). One UPDATE: two takers never both win."""
        now = timezone.now()
        self.get_or_create(name=name, defaults={"expires_at": now})
        free = models.Q(holder=holder) | models.Q(holder="") | models.Q(expires_at__lt=now)
        taken = self.filter(free, name=name).update(
            holder=holder, expires_at=now + timedelta(seconds=seconds)
        )
        return taken == 1

    def release(self, name: str, holder: str) -> None:
        self.filter(name=name, holder=holder).update(holder="", expires_at=timezone.now())


class TaskLease(models.Model):
    """A job only one worker process runs at a time, whoever it is (the webhook applier):
    held for a while and renewed, so a holder that died frees it when that runs out."""

    name = models.CharField(max_length=50, primary_key=True)
    holder = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField()

    objects = TaskLeaseQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder or 'nobody'}"


def _returned_converter(name: str) -> Any:
    """Turns a raw column value from RETURNING into what the model field holds."""
    field = Message._meta.get_field(name)
    if isinstance(field, models.DateTimeField):

        def moment(value: Any) -> Any:
            if value is None or isinstance(value, datetime):
                return _aware(value)
            return _aware(parse_datetime(str(value)))

        return moment
    if isinstance(field, models.DecimalField):
        return lambda value: None if value is None else Decimal(str(value))
    return lambda value: value


def _as_text(database: Any, name: str) -> str:
    """A column for RETURNING, cast to text when it is a time or JSON (the drivers would
    parse each row's as it is read)."""
    column = database.ops.quote_name(_column(name))
    if isinstance(Message._meta.get_field(name), models.DateTimeField | models.JSONField):
        return f"CAST({column} AS TEXT)"
    return column


def _held_by(token: uuid.UUID, lease_ends: datetime) -> dict[str, Any]:
    """What a claim writes on each row it takes (MessageQuerySet.mark_sending)."""
    return {
        "claim_token": token,
        "lease_expires_at": lease_ends,
        "attempts": F("attempts") + 1,
        "updated_at": timezone.now(),
    }


def _column(name: str) -> str:
    field = Message._meta.get_field(name)
    assert isinstance(field, models.Field) and field.column
    return field.column


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and timezone.is_naive(value):
        return timezone.make_aware(value, UTC)
    return value


class MessageCount(models.Model):
    """A delta of a campaign's kept counts (messaging.counts): summed on reading, squashed
    into one row per key every minute."""

    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=100)
    n = models.BigIntegerField()
    #: One example error text, on "failed:<code>" rows.
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        indexes = [models.Index(fields=("campaign", "key"), name="messagecount_campaign_key")]

    def __str__(self) -> str:
        return f"{self.key} {self.n:+d} (campaign {self.campaign_id})"


class RateBucket(models.Model):
    """Per-account send pacing shared by every worker process (see messaging.ratelimit)."""

    provider_account = models.OneToOneField(
        ProviderAccount, on_delete=models.CASCADE, related_name="rate_bucket"
    )
    #: GCRA "theoretical arrival time": unix seconds at which the next request is due.
    next_at = models.FloatField(default=0.0)

    def __str__(self) -> str:
        return f"rate bucket of {self.provider_account_id}"


class WorkerHeartbeatQuerySet(models.QuerySet["WorkerHeartbeat"]):
    def beat(self) -> None:
        """Record that this worker process is alive."""
        name = f"{socket.gethostname()}:{os.getpid()}"
        self.update_or_create(name=name, defaults={"seen_at": timezone.now()})

    def summary(self) -> dict[str, Any]:
        stale_after = timedelta(seconds=settings.HERALD_HEARTBEAT_STALE_SECONDS)
        latest = self.order_by("-seen_at").first()
        if latest is None:
            return {"status": "never_seen", "last_seen": None, "alive": 0}
        age = timezone.now() - latest.seen_at
        return {
            "status": "ok" if age <= stale_after else "stale",
            "last_seen": latest.seen_at.isoformat(),
            "age_seconds": int(age.total_seconds()),
            "alive": self.filter(seen_at__gte=timezone.now() - stale_after).count(),
        }


class WorkerHeartbeat(models.Model):
    """Last sign of life of each worker process, written by the periodic engine tick."""

    name = models.CharField(max_length=200, unique=True)
    seen_at = models.DateTimeField()

    objects = WorkerHeartbeatQuerySet.as_manager()

    def __str__(self) -> str:
        return self.name


class InboundMessage(models.Model):
    """A message a person sent us, from a gateway's webhook, its message list, or the CLI.

    Kept once per provider message id at an account. `contact` is empty for a number we do
    not know; `campaign` and `answers` are what it most likely replies to (the last message
    sent to the contact within HERALD_REPLY_ATTRIBUTION_DAYS). An opt-out or opt-in it made
    keeps it as evidence (messaging.inbound).
    """

    class Action(models.TextChoices):
        NONE = "none", "None"
        OPT_OUT = "opt_out", "Opted out"
        OPT_IN = "opt_in", "Opted back in"
        HELP = "help", "Asked for help"

    provider_account = models.ForeignKey(ProviderAccount, on_delete=models.PROTECT)
    provider_message_id = models.CharField(
        max_length=150, blank=True, help_text="The provider's id: each is stored once."
    )
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.SMS)
    phone = models.CharField(max_length=32, help_text="Who sent it (E.164 when it is a number).")
    to = models.CharField(max_length=32, blank=True, help_text="Our number or sender it went to.")
    body = models.TextField(blank=True)
    body_truncated = models.BooleanField(default=False)
    received_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound"
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replies",
    )
    answers = models.ForeignKey(
        Message,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replies",
        db_constraint=False,
    )
    action = models.CharField(max_length=10, choices=Action.choices, default=Action.NONE)
    keyword = models.CharField(max_length=100, blank=True, help_text="The keyword it matched.")
    language = models.CharField(max_length=10, blank=True)
    possible_opt_out = models.BooleanField(
        default=False, help_text="Asks to stop in other words: for a person to confirm."
    )
    note = models.CharField(max_length=200, blank=True)
    opt_out = models.ForeignKey(
        OptOut, null=True, blank=True, on_delete=models.SET_NULL, related_name="evidence"
    )
    auto_reply = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    read_at = models.DateTimeField(null=True, blank=True)
    handled_at = models.DateTimeField(null=True, blank=True)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ("-received_at", "-pk")
        verbose_name = "reply"
        verbose_name_plural = "replies"
        permissions = (("reply_inbound", "Can answer replies from the inbox"),)
        constraints = [
            models.UniqueConstraint(
                fields=("provider_account", "provider_message_id"),
                condition=~models.Q(provider_message_id=""),
                name="inbound_once_per_provider_id",
            ),
        ]
        indexes = [
            models.Index(fields=("phone", "received_at"), name="inbound_phone_received"),
            models.Index(fields=("campaign", "action"), name="inbound_campaign_action"),
            models.Index(fields=("received_at",), name="inbound_received"),
            models.Index(
                fields=("received_at",),
                name="inbound_unread",
                condition=models.Q(read_at__isnull=True),
            ),
            models.Index(
                fields=("received_at",),
                name="inbound_unhandled",
                condition=models.Q(handled_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"reply {self.pk} ({self.get_channel_display()})"


class Keyword(models.Model):
    """A word that makes a reply act: opt out, opt back in, or ask for help.

    Matched after messaging.keywords.normalise (case, accents, punctuation and spacing
    do not count), as the whole message or its first word. A phrase (`possible_opt_out`)
    is looked for anywhere in the message and only flags it for a person to confirm.
    """

    class Action(models.TextChoices):
        OPT_OUT = "opt_out", "Opt out (this channel)"
        OPT_OUT_ALL = "opt_out_all", "Opt out (every channel)"
        OPT_IN = "opt_in", "Opt back in"
        HELP = "help", "Help (auto-reply)"
        POSSIBLE_OPT_OUT = "possible_opt_out", "Possible opt-out (phrase, flag only)"

    word = models.CharField(max_length=100)
    normalised = models.CharField(max_length=100, unique=True, editable=False)
    language = models.CharField(max_length=10, help_text="ISO 639-1 code, e.g. en, fr, zh.")
    action = models.CharField(max_length=20, choices=Action.choices)
    reply = models.TextField(
        blank=True,
        help_text="HELP only: the auto-reply in this language (empty: HERALD_HELP_REPLY).",
    )
    is_active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("action", "language", "word")

    def __str__(self) -> str:
        return f"{self.word} ({self.language}, {self.get_action_display()})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        from messaging.keywords import normalise

        self.normalised = normalise(self.word)[:100]
        super().save(*args, **kwargs)
