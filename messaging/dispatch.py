"""Hand claimed Message rows to their provider and write down what it said.

Callers (the campaign engine, `provider send-test`) claim rows first; this module
never picks rows itself, and knows nothing of why they are being sent.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from contacts.models import OptOut
from contacts.phones import redact
from messaging.backends import BACKEND_CLASSES, backend_class
from messaging.backends.base import SendResult
from messaging.exceptions import AccountError, InDoubtError, RecipientError, RetryableError
from messaging.models import Message

logger = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 3600


def send_claimed(messages: Sequence[Message]) -> AccountError | None:
    """Send rows this worker has claimed; returns the account error that stopped them, if any.

    Rows refused for an account-level reason go back to pending untouched, so
    the caller can pause whatever they belong to and resume later.
    """
    by_account: dict[int, list[Message]] = defaultdict(list)
    for message in _drop_suppressed(messages):
        by_account[message.provider_account_id].append(message)
    stopped_by: AccountError | None = None
    for batch in by_account.values():
        backend = batch[0].provider_account.get_backend()
        results = backend.send_messages(batch)
        stopped_by = record_results(results) or stopped_by
    return stopped_by


def _drop_suppressed(messages: Sequence[Message]) -> list[Message]:
    """Opt-outs win over any list: checked again at the moment of sending."""
    suppressed: set[tuple[str, str]] = set()
    for channel in {m.channel for m in messages}:
        phones = [m.phone for m in messages if m.channel == channel]
        suppressed |= {(channel, p) for p in OptOut.objects.phones(channel, phones)}
    sendable = []
    for message in messages:
        if (message.channel, message.phone) in suppressed:
            Message.objects.filter(
                pk=message.pk, claim_token=message.claim_token, status=Message.Status.SENDING
            ).update(
                status=Message.Status.SKIPPED,
                skip_reason=Message.SkipReason.OPTED_OUT,
                updated_at=timezone.now(),
            )
        else:
            sendable.append(message)
    return sendable


def record_results(results: Iterable[SendResult]) -> AccountError | None:
    accepted: list[SendResult] = []
    account_error: AccountError | None = None
    for result in results:
        if result.error is None:
            accepted.append(result)
        elif isinstance(result.error, AccountError):
            account_error = result.error
            _release(result.message)
        else:
            _record_failure(result)
    _record_accepted(accepted)
    return account_error


def _record_accepted(results: list[SendResult]) -> None:
    if not results:
        return
    now = timezone.now()
    rows = []
    for result in results:
        message = result.message
        message.status = Message.Status.SENT
        message.provider_message_id = result.provider_message_id
        message.sent_at = now
        message.updated_at = now
        message.lease_expires_at = None
        message.error_code = message.error_message = ""
        if result.cost is not None:
            message.cost = result.cost
        rows.append(message)
    fields = ["status", "provider_message_id", "sent_at", "updated_at", "lease_expires_at"]
    fields += ["error_code", "error_message", "cost"]
    tokens = {m.claim_token for m in rows}
    # Only rows still held under our claim: a row whose lease ran out and was
    # taken over is not ours to write any more.
    with transaction.atomic():
        Message.objects.filter(claim_token__in=tokens, status=Message.Status.SENDING).bulk_update(
            rows, fields, batch_size=1000
        )


def _record_failure(result: SendResult) -> None:
    message, error = result.message, result.error
    assert error is not None
    held = Message.objects.filter(
        pk=message.pk, claim_token=message.claim_token, status=Message.Status.SENDING
    )
    common = {
        "error_code": error.code[:50],
        "error_message": error.message[:500],
        "updated_at": timezone.now(),
        "lease_expires_at": None,
    }
    if isinstance(error, RetryableError) and message.attempts < settings.HERALD_MAX_SEND_ATTEMPTS:
        delay = backoff_seconds(message.attempts, error.retry_after)
        held.update(
            status=Message.Status.PENDING,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            **common,
        )
        logger.info("message %s: retry in %.0fs (%s)", message.client_ref, delay, error)
    elif isinstance(error, InDoubtError):
        held.update(status=Message.Status.IN_DOUBT, **common)
        logger.warning("message %s: in doubt (%s)", message.client_ref, error)
    else:
        held.update(status=Message.Status.FAILED, **common)
        if isinstance(error, RecipientError) and error.opted_out:
            OptOut.objects.get_or_create(
                phone=message.phone,
                channel=message.channel,
                defaults={"source": OptOut.Source.PROVIDER, "note": error.message[:200]},
            )
        logger.info("message %s to %s failed: %s", message.client_ref, redact(message.phone), error)


def _release(message: Message) -> None:
    """Give a row back untouched: the account, not the message, was refused."""
    Message.objects.filter(
        pk=message.pk, claim_token=message.claim_token, status=Message.Status.SENDING
    ).update(
        status=Message.Status.PENDING,
        attempts=F("attempts") - 1,
        lease_expires_at=None,
        claim_token=None,
        updated_at=timezone.now(),
    )


def backoff_seconds(attempts: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter, never sooner than the provider asked."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


def mark_expired_leases_in_doubt() -> int:
    """Rows whose worker vanished mid-send: they may have gone out, so never resend blindly."""
    return Message.objects.lease_expired().update(
        status=Message.Status.IN_DOUBT,
        error_code="LEASE_EXPIRED",
        error_message="worker stopped while sending; not resent until reconciled",
        updated_at=timezone.now(),
    )


def poll_statuses(batch_size: int = 500) -> int:
    """Ask providers that support lookups about messages still awaiting a report."""
    lookup_kinds = [k for k in BACKEND_CLASSES if backend_class(k).supports_status_lookup]
    waiting = Message.objects.awaiting_report().filter(provider_account__backend__in=lookup_kinds)
    waiting = waiting.select_related("provider_account").order_by("sent_at")
    moved = 0
    for message_batch in _batches_by_account(waiting[: batch_size * 10], batch_size):
        backend = message_batch[0].provider_account.get_backend()
        for update in backend.lookup_statuses(message_batch):
            moved += update.message.apply_status(update)
    return moved


def _batches_by_account(messages: Iterable[Message], size: int) -> Iterable[list[Message]]:
    by_account: dict[int, list[Message]] = defaultdict(list)
    for message in messages:
        bucket = by_account[message.provider_account_id]
        bucket.append(message)
        if len(bucket) == size:
            yield bucket
            by_account[message.provider_account_id] = []
    yield from (bucket for bucket in by_account.values() if bucket)
