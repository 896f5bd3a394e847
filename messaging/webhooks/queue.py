"""Webhook events recorded at the door, applied by the workers.

The webhook view keeps a verified event (messaging.webhooks.base) and nudges: at most
once a second per web process it queues `apply_webhooks`. One worker at a time holds the
applier's lease; it applies what waits, oldest first, in batches, and keeps looking for
HERALD_WEBHOOK_LINGER_SECONDS after the last event it found, so a stream of webhooks is
applied by one task, not a task each. A task that finds the lease held leaves at once:
the holder will see its events (it looks again after letting the lease go, and takes it
back when it finds any). The minute tick applies whatever is left over, should a nudge
be lost (a web process killed between its INSERT and its nudge).

Each event is applied in its own savepoint inside its batch's transaction. One that
raises is retried by later runs, up to MAX_ATTEMPTS, then kept with the error as its
outcome; the error's class is logged, never its message (it may quote a number).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from messaging import counts
from messaging.models import ProviderAccount, TaskLease, WebhookEvent

logger = logging.getLogger(__name__)

LEASE = "webhook-applier"
BATCH = 100
MAX_ATTEMPTS = 5
#: A web process queues the applier at most this often.
NUDGE_SECONDS = 1.0
#: How often a lingering applier looks for new events.
POLL_SECONDS = 0.2
#: An applier hands over to a fresh task after this long, well inside the task timeout.
MAX_RUN_SECONDS = 60.0
OUTCOME_MAX_LENGTH = WebhookEvent._meta.get_field("outcome").max_length or 200

Applier = Callable[[ProviderAccount, str, dict], str]

_nudged_at = float("-inf")


def nudge_applier() -> None:
    """Queue the applier, unless this process did within NUDGE_SECONDS (that task, or the
    one lingering, will find what was recorded since)."""
    global _nudged_at
    if settings.HERALD_WEBHOOK_APPLY == "inline":
        return
    now = time.monotonic()
    if now - _nudged_at < NUDGE_SECONDS:
        return
    _nudged_at = now
    from django_q.tasks import async_task

    try:
        async_task("messaging.tasks.apply_webhooks", task_name="apply webhooks")
    except Exception as exc:  # the event is kept: the minute tick applies it
        _nudged_at = float("-inf")
        logger.warning("Could not queue the webhook applier (%s)", type(exc).__name__)


def appliers() -> dict[str, Applier]:
    """Each backend's way of applying one of its verified events."""
    from messaging.webhooks.bulksmsrates import BulkSMSRatesWebhookView

    views = (BulkSMSRatesWebhookView,)
    return {view.backend: view().apply for view in views}


def apply_webhooks() -> int:
    """The queued applier: applies what waits while it holds the lease, lingering for more.
    Returns how many events it applied (0 at once when another worker holds the lease)."""
    holder = uuid.uuid4().hex
    linger = float(settings.HERALD_WEBHOOK_LINGER_SECONDS)
    lease_seconds = linger + MAX_RUN_SECONDS
    started = time.monotonic()
    failed: set[int] = set()
    applied = 0
    while TaskLease.objects.take(LEASE, holder, lease_seconds):
        quiet_since = time.monotonic()
        while True:
            found = apply_pending(failed)
            applied += found
            now = time.monotonic()
            if now - started >= MAX_RUN_SECONDS:
                TaskLease.objects.release(LEASE, holder)
                from django_q.tasks import async_task

                async_task("messaging.tasks.apply_webhooks", task_name="apply webhooks")
                return applied
            if found:
                quiet_since = now
            elif now - quiet_since >= linger:
                break
            else:
                time.sleep(POLL_SECONDS)
            TaskLease.objects.take(LEASE, holder, lease_seconds)
        TaskLease.objects.release(LEASE, holder)
        # A nudge that found the lease held relied on this look.
        found = apply_pending(failed)
        applied += found
        if not found:
            break
    return applied


def apply_pending(failed: set[int] | None = None, limit: int | None = None) -> int:
    """Apply the events waiting now, oldest first, skipping those another worker holds and
    those in `failed` (which gains the ones that fail here). Returns how many were applied."""
    failed = set() if failed is None else failed
    appliers_by_backend = appliers()
    applied = 0
    while limit is None or applied < limit:
        size = BATCH if limit is None else min(BATCH, limit - applied)
        done = _apply_batch(appliers_by_backend, failed, size)
        if done is None:
            break
        applied += done
    return applied


def _apply_batch(
    appliers_by_backend: dict[str, Applier], failed: set[int], size: int
) -> int | None:
    """One transaction: claim up to `size` waiting events and apply them. None when there
    were none to claim."""
    with transaction.atomic():
        events = list(
            WebhookEvent.objects.pending()
            .exclude(pk__in=failed)
            .select_related("provider_account")
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("pk")[:size]
        )
        if not events:
            return None
        applied = 0
        # A batch of reports moves many messages one at a time: their kept counts are
        # appended once for the batch (a row per key), with it.
        batch = counts.Tally()
        for event in events:
            with counts.collected() as tally:
                done = _apply_one(appliers_by_backend, event)
            if done:
                batch.merge(tally)  # an event that failed was rolled back: so are its counts
                applied += 1
            else:
                failed.add(event.pk)
        batch.save()
        WebhookEvent.objects.bulk_update(events, ["outcome", "applied_at", "attempts"])
    return applied


def _apply_one(appliers_by_backend: dict[str, Applier], event: WebhookEvent) -> bool:
    """Apply one claimed event in a savepoint and set its outcome; False when it failed."""
    account = event.provider_account
    apply = appliers_by_backend.get(account.backend)
    if apply is None:
        event.outcome = f"ignored: {account.backend} accounts take no webhooks"
        event.applied_at = timezone.now()
        return True
    for attempt in range(2):
        try:
            with transaction.atomic():
                outcome = apply(account, event.webhook_id, event.raw)
        except IntegrityError:
            # What it writes met a copy committed a moment ago (a reply's provider id under
            # another event id): once more, and it finds it.
            if attempt == 0:
                continue
            return _failed(event, IntegrityError)
        except Exception as exc:  # one bad event must not stop the others
            return _failed(event, type(exc))
        event.outcome = outcome[:OUTCOME_MAX_LENGTH]
        event.applied_at = timezone.now()
        return True
    raise AssertionError("unreachable")


def _failed(event: WebhookEvent, error: type[BaseException]) -> bool:
    event.attempts += 1
    name = error.__name__
    if event.attempts >= MAX_ATTEMPTS:
        event.outcome = f"failed after {event.attempts} tries: {name}"[:OUTCOME_MAX_LENGTH]
        event.applied_at = timezone.now()
    else:
        event.outcome = f"error: {name}; tried {event.attempts} times, will retry"
    logger.error(
        "Webhook event %s (%s) of %s failed with %s (try %d of %d)",
        event.pk,
        event.event or "event",
        event.provider_account.name,
        name,
        event.attempts,
        MAX_ATTEMPTS,
    )
    return False
