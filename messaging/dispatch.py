"""Hand claimed Message rows to their provider and write down what it said.

Callers (the campaign engine, `provider send-test`) claim rows first; this module
never picks rows itself, and knows nothing of why they are being sent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from contacts.bulk import chunked
from contacts.models import OptOut
from contacts.phones import redact
from messaging.backends import backend_class
from messaging.backends.base import LEASE_NEAR_END, SendResult
from messaging.concurrency import map_in_threads
from messaging.exceptions import (
    AccountError,
    InDoubtError,
    ProviderError,
    RecipientError,
    RetryableError,
)
from messaging.http import MESSAGE_RETRY, RetryPolicy
from messaging.models import Message, MessageQuerySet, ProviderAccount

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


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
            _held(message).skip_at_send(Message.SkipReason.OPTED_OUT)
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
        elif result.error.code == LEASE_NEAR_END:
            # Never tried: due again now, its attempt not counted.
            _held(result.message).release(
                error_code=LEASE_NEAR_END, error_message=result.error.message
            )
        else:
            _record_failure(result)
    _record_accepted(accepted)
    return account_error


def _record_accepted(results: list[SendResult]) -> None:
    """Mark accepted rows sent, set-based: a 10,000-recipient bulk answer is a few statements.

    Only rows still held under our claim are written: a row whose lease ran out
    (and is in doubt now) is not ours to write any more.
    """
    if not results:
        return
    now = timezone.now()
    tokens = {r.message.claim_token for r in results}
    by_batch: dict[str, list[int]] = defaultdict(list)
    for result in results:
        by_batch[result.provider_batch_id].append(result.message.pk)
    with transaction.atomic():
        _store_provider_ids([r for r in results if r.provider_message_id or r.cost is not None])
        for batch_id, pks in by_batch.items():
            Message.objects.among(pks).filter(claim_token__in=tokens).mark_sent(batch_id, at=now)


def _store_provider_ids(results: list[SendResult]) -> None:
    """Per-row provider ids and costs, in one executemany (Django's bulk_update is far slower)."""
    if not results:
        return
    table = connection.ops.quote_name(Message._meta.db_table)
    sql = (
        f"UPDATE {table} SET provider_message_id = %s, cost = COALESCE(%s, cost) "  # noqa: S608
        "WHERE id = %s AND status = %s"
    )
    rows = [
        (r.provider_message_id, r.cost, r.message.pk, Message.Status.SENDING.value) for r in results
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _record_failure(result: SendResult) -> None:
    message, error = result.message, result.error
    assert error is not None
    held = _held(message)
    if isinstance(error, RetryableError) and message.attempts < settings.HERALD_MAX_SEND_ATTEMPTS:
        delay = backoff_seconds(message.attempts, error.retry_after)
        held.retry_later(timezone.now() + timedelta(seconds=delay), error.code, error.message)
        logger.info("message %s: retry in %.0fs (%s)", message.client_ref, delay, error)
    elif isinstance(error, InDoubtError):
        held.mark_in_doubt(error.code, error.message, request_ref=error.request_ref)
        logger.warning("message %s: in doubt (%s)", message.client_ref, error)
    else:
        held.mark_failed(error.code, error.message)
        if isinstance(error, RecipientError) and error.opted_out:
            OptOut.objects.get_or_create(
                phone=message.phone,
                channel=message.channel,
                defaults={"source": OptOut.Source.PROVIDER, "note": error.message[:200]},
            )
        logger.info("message %s to %s failed: %s", message.client_ref, redact(message.phone), error)


def _release(message: Message) -> None:
    """Give a row back untouched: the account, not the message, was refused."""
    _held(message).release()


def release_until(due: dict[Message, datetime]) -> None:
    """Give claimed rows back to be sent at the given times (not counted as attempts)."""
    for message, at in due.items():
        _held(message).release(next_attempt_at=at)


def _held(message: Message) -> MessageQuerySet:
    """The row while our claim still holds it (a move on it writes nothing once it does not)."""
    return Message.objects.filter(pk=message.pk, claim_token=message.claim_token)


def backoff_seconds(attempts: int, retry_after: float | None = None) -> float:
    """The engine's wait before trying a message again (see messaging.http.RetryPolicy)."""
    return MESSAGE_RETRY.delay(attempts, retry_after)


def mark_expired_leases_in_doubt() -> int:
    """Rows whose worker vanished mid-send: they may have gone out, so never resend blindly."""
    return Message.objects.mark_expired_leases_in_doubt()


def reconcile_in_doubt(limit: int | None = None) -> dict[str, int]:
    """Settle messages in doubt by asking their provider; never resend what it has.

    For each account whose backend can look sends up, the messages in doubt for
    longer than HERALD_RECONCILE_AFTER_SECONDS are looked up (up to `limit`, by
    default a claim's worth), those asked about longest ago (or never) first, a
    few at a time (the backend's `lookup_batch`):
    those the provider has become `sent` with its id; those it has no record of go
    back to `pending` to be sent again. A lookup that fails is retried with backoff
    within the round and otherwise left for the next one; the others go on. Where
    the provider cannot tell, they stay in doubt, shown to staff. Returns
    {"sent": n, "resend": n}.
    """
    settled = {"sent": 0, "resend": 0}
    lookups = LookupRound()
    grace = timedelta(seconds=settings.HERALD_RECONCILE_AFTER_SECONDS)
    kinds = [k for k in ProviderAccount.Backend if backend_class(k).supports_reconcile]
    for account in ProviderAccount.objects.filter(is_active=True, backend__in=kinds):
        doubtful = Message.objects.filter(
            provider_account=account,
            status=Message.Status.IN_DOUBT,
            updated_at__lte=timezone.now() - grace,
        ).order_by(F("status_checked_at").asc(nulls_first=True), "updated_at")
        backend = account.get_backend()
        # At least what one claim holds: all a worker that died can have left in doubt.
        rows = list(doubtful[: limit or max(500, backend.rows_per_claim())])
        # Those the provider cannot tell about go to the back of the queue, for staff.
        unfindable = {row.pk for row in rows if not backend.can_find(row)}
        if unfindable:
            Message.objects.filter(pk__in=unfindable).update(status_checked_at=timezone.now())
            rows = [row for row in rows if row.pk not in unfindable]
        find, size = backend.find_sent, backend.reconcile_batch or backend.lookup_batch
        for chunk, found in lookups.answers(account, "sends in doubt", find, rows, size):
            if found is not None:
                _settle(chunk, found, settled)
    if settled["sent"] or settled["resend"]:
        logger.info("in-doubt messages settled: %s", settled)
    return settled


def _settle(rows: list[Message], found: dict[int, str], settled: dict[str, int]) -> None:
    now = timezone.now()
    for row in rows:
        # Only the row as it was read: another reconciler may have settled it (and it
        # may have been sent and gone in doubt again) while the provider was asked.
        still = Message.objects.filter(pk=row.pk, updated_at=row.updated_at)
        if row.pk in found:
            settled["sent"] += still.settle_found(found[row.pk], sent_at=row.sent_at or now)
        else:
            # Past the give-up time its campaign may have completed counting it: only
            # staff send it again then (Message.objects.decide_in_doubt).
            settled["resend"] += still.not_given_up().resend()


class _Stop:
    """What LookupRound.ask returns when the account itself was refused."""


_STOP = _Stop()
#: Within a lookup round: a failed lookup is asked again this many times, with backoff.
LOOKUP_RETRY = RetryPolicy(
    attempts=3, base=0.5, cap=8.0, base_setting="HERALD_REQUEST_RETRY_SECONDS"
)


class LookupRound:
    """One round of lookups at the providers, bounded by HERALD_LOOKUP_ROUND_SECONDS.

    Each lookup stands alone: one that fails is asked again after a backoff (never
    sooner than the provider's Retry-After) while the round has time for it, and is
    otherwise left for the next round; the rows it was about are stamped as looked
    at either way, so the next round starts with those it has not asked about yet.
    """

    def __init__(self, seconds: float | None = None) -> None:
        if seconds is None:
            # Within half the task timeout too: django-q2 would stop the round mid-lookup.
            seconds = min(settings.HERALD_LOOKUP_ROUND_SECONDS, settings.Q_CLUSTER["timeout"] / 2)
        self.deadline = time.monotonic() + seconds
        self.failed = 0
        self._counting = threading.Lock()

    @property
    def over(self) -> bool:
        return time.monotonic() >= self.deadline

    def answers(
        self,
        account: ProviderAccount,
        what: str,
        lookup: Callable[[Sequence[Message]], _T],
        rows: Sequence[Message],
        size: int,
    ) -> list[tuple[list[Message], _T | None]]:
        """Each batch of `size` of `rows` with its answer (None where it kept failing).

        Batches are asked the account's `concurrency` at a time (messaging.concurrency)
        while the round has time, and none once the account is refused; those asked
        about are stamped as looked at, so the next round starts with the others.
        """
        for row in rows:
            row.provider_account = account
        refused = threading.Event()

        def one(batch: list[Message]) -> tuple[list[Message], _T | _Stop | None] | None:
            if self.over or refused.is_set():
                return None
            answer = self.ask(account, what, lookup, batch)
            if isinstance(answer, _Stop):
                refused.set()
            return batch, answer

        workers = account.get_backend().concurrency()
        asked = [a for a in map_in_threads(one, chunked(rows, size), workers, "lookup") if a]
        stamped = [row.pk for batch, _ in asked for row in batch]
        for pks in chunked(stamped, 5000):
            Message.objects.filter(pk__in=pks).update(status_checked_at=timezone.now())
        return [(batch, answer) for batch, answer in asked if not isinstance(answer, _Stop)]

    def ask(
        self,
        account: ProviderAccount,
        what: str,
        lookup: Callable[[Sequence[Message]], _T],
        rows: Sequence[Message],
    ) -> _T | _Stop | None:
        """`lookup(rows)`, retried with backoff; None if it kept failing, _STOP if refused."""
        for attempt in range(1, LOOKUP_RETRY.attempts + 1):
            try:
                return lookup(rows)
            except RetryableError as exc:
                wait = LOOKUP_RETRY.delay(attempt, exc.retry_after)
                last = attempt == LOOKUP_RETRY.attempts
                if last or time.monotonic() + wait >= self.deadline:
                    self._left(account, what, rows, exc)
                    return None
                time.sleep(wait)
            except AccountError as exc:
                logger.warning("account %s: %s not looked up: %s", account.name, what, exc)
                return _STOP
            except ProviderError as exc:
                self._left(account, what, rows, exc)
                return None
        return None

    def _left(
        self, account: ProviderAccount, what: str, rows: Sequence[Message], exc: ProviderError
    ) -> None:
        with self._counting:  # lookups run in threads (answers)
            self.failed += 1
        logger.warning(
            "account %s: %s (%d) left for the next round: %s", account.name, what, len(rows), exc
        )


#: Before a first lookup, give a delivery report this long to arrive (account option
#: `status_poll_after` overrides it; the simulator reports at once).
STATUS_POLL_AFTER = timedelta(seconds=60)
#: Messages still without a report after this long are left as sent.
STATUS_POLL_MAX_AGE = timedelta(days=3)
#: Lookups per account per poll; the account's rate limit paces them.
STATUS_POLL_LIMIT = 500


def poll_statuses(limit: int = STATUS_POLL_LIMIT) -> int:
    """Ask providers that support lookups about messages still `sent`; returns how many moved.

    Per account, the messages looked up longest ago (or never) come first, so a
    backlog is worked through over several polls rather than asked about again
    and again. Each lookup request goes through the account's rate limiter; one
    that fails is retried or left for the next poll while the others go on
    (LookupRound), and a poll stops at its time budget.
    """
    lookup_kinds = [k for k in ProviderAccount.Backend if backend_class(k).supports_status_lookup]
    accounts = ProviderAccount.objects.filter(is_active=True, backend__in=lookup_kinds)
    lookups = LookupRound()
    return sum(_poll_account(account, limit, lookups) for account in accounts)


def _poll_account(account: ProviderAccount, limit: int, lookups: LookupRound) -> int:
    now = timezone.now()
    default_delay = 0 if account.backend == ProviderAccount.Backend.SIMULATOR else None
    delay = account.options.get("status_poll_after", default_delay)
    after = STATUS_POLL_AFTER if delay is None else timedelta(seconds=float(delay))
    waiting = (
        Message.objects.awaiting_report(older_than=after)
        .filter(provider_account=account, sent_at__gte=now - STATUS_POLL_MAX_AGE)
        .order_by(F("status_checked_at").asc(nulls_first=True), "sent_at")
    )
    messages = list(waiting[:limit])
    backend = account.get_backend()
    moved = 0
    lookup, size = backend.lookup_statuses, backend.lookup_batch
    for _batch, updates in lookups.answers(account, "statuses", lookup, messages, size):
        for update in updates or []:
            moved += update.message.apply_status(update)
    return moved
