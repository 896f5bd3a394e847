"""Outgoing webhooks on their way: claimed in batches, posted side by side, recorded.

`run` is the django-q2 task. One worker at a time holds its lease (messaging's
TaskLease): it delivers what is due, batch after batch, and stays while the next row is
due within LINGER_SECONDS, waking every POLL_SECONDS, so the 5 s and 30 s retries are
made on time; django-q2's schedules fire at most twice a minute, and it has no delayed
tasks. It hands over to a fresh task after MAX_RUN_SECONDS. A task that finds the lease
held leaves at once: the holder will see its rows. New rows nudge a task as they commit
(at most once a second per process), and the minute tick (api.tasks) starts one should a
nudge be lost and for the later retries.

A batch is claimed with a lease on each row (WebhookDeliveryQuerySet.claim), so even two
holders could never post the same row at once; its requests go out over a pool of
threads sharing one keep-alive session, which do nothing but HTTP; the caller writes what
every answer said in one transaction: the attempts, each delivery's next step (conditional
on its claim), and each subscription's health, turning off one that has failed for a day.

A 2xx answer is a success. Anything else, a redirect (never followed), a refused
connection or a timeout is a failure, retried on the models' schedule (api.models).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from requests.adapters import HTTPAdapter
from standardwebhooks import Webhook

from api.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryQuerySet,
    WebhookSubscription,
    next_try,
)
from api.outgoing import signing
from config.logging import redact_text
from contacts.bulk import bulk_insert
from messaging.models import TaskLease

logger = logging.getLogger(__name__)

LEASE = "webhook-sender"
#: Rows claimed at once, and requests in flight at once.
BATCH = 256
THREADS = 32
#: A claimed row comes due again after this, should its worker die: longer than a batch
#: can wait and take (behind the batch before it, then BATCH / THREADS rounds of the
#: timeouts each), so its own worker never claims it again while it is still on its way.
CLAIM_LEASE = timedelta(minutes=10)
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
#: The sender's lease, renewed after every batch.
LEASE_SECONDS = 300.0
LINGER_SECONDS = 60.0
POLL_SECONDS = 0.5
MAX_RUN_SECONDS = 240.0
NUDGE_SECONDS = 1.0
#: How much of an answer's body is read, and how much of it is kept.
READ_LIMIT = 4096
EXCERPT_CHARS = 200
ERROR_CHARS = 200

ATTEMPT_COLUMNS = (
    "delivery_id",
    "attempted_at",
    "response_code",
    "response_excerpt",
    "error",
    "duration_ms",
)

#: A delivery's next step (_settle): all of a batch's on PostgreSQL, one on SQLite.
SETTLE_ALL = (
    "UPDATE {table} AS d SET status = v.status, next_attempt_at = v.due, "
    "delivered_at = v.delivered, attempts = d.attempts + 1, last_attempt_at = v.at, "
    "last_response_code = v.code, last_error = v.error, "
    "first_attempt_at = COALESCE(d.first_attempt_at, v.at), claim_token = NULL "
    "FROM unnest(%s::bigint[], %s::uuid[], %s::varchar[], %s::timestamptz[], "
    "%s::timestamptz[], %s::timestamptz[], %s::integer[], %s::varchar[]) "
    "AS v(id, token, status, due, delivered, at, code, error) "
    "WHERE d.id = v.id AND d.claim_token = v.token"
)
SETTLE_ONE = (
    "UPDATE {table} SET status = %s, next_attempt_at = %s, delivered_at = %s, "
    "attempts = attempts + 1, last_attempt_at = %s, last_response_code = %s, "
    "last_error = %s, first_attempt_at = COALESCE(first_attempt_at, %s), "
    "claim_token = NULL WHERE id = %s AND claim_token = %s"
)

_nudged_at = float("-inf")
_session: requests.Session | None = None


@dataclass(frozen=True)
class Outcome:
    """What one try of one delivery met."""

    delivery: WebhookDelivery
    attempted_at: datetime
    response_code: int | None
    excerpt: str
    error: str
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.response_code is not None and 200 <= self.response_code < 300


def nudge() -> None:
    """Queue the sender, unless this process did within NUDGE_SECONDS (that task, or the
    one lingering, will find what was written since)."""
    global _nudged_at
    now = time.monotonic()
    if now - _nudged_at < NUDGE_SECONDS:
        return
    _nudged_at = now
    from django_q.tasks import async_task

    try:
        async_task("api.tasks.deliver_webhooks", task_name="deliver webhooks")
    except Exception as exc:  # the rows are kept: the minute tick sends them
        _nudged_at = float("-inf")
        logger.warning("Could not queue the webhook sender (%s)", type(exc).__name__)


def send_again(deliveries: WebhookDeliveryQuerySet) -> int:
    """Deliver these once more (each door's "Send again"), now; how many."""
    again = deliveries.send_again()
    if again:
        transaction.on_commit(nudge)
    return again


def run(linger: float = LINGER_SECONDS) -> int:
    """The sender: delivers what is due while it holds the lease, lingering for what comes
    due within `linger` seconds. How many tries it made (0 at once when the lease is held)."""
    holder = uuid.uuid4().hex
    started = time.monotonic()
    tried = 0
    while TaskLease.objects.take(LEASE, holder, LEASE_SECONDS):
        while True:
            tried += deliver_due(holder, until=started + MAX_RUN_SECONDS)
            if time.monotonic() - started >= MAX_RUN_SECONDS:
                TaskLease.objects.release(LEASE, holder)
                _hand_over()
                return tried
            wait = _seconds_to_next_due()
            if wait is None or wait > linger:
                break
            time.sleep(min(max(wait, 0.0), POLL_SECONDS))
            TaskLease.objects.take(LEASE, holder, LEASE_SECONDS)
        TaskLease.objects.release(LEASE, holder)
        # A nudge that found the lease held relied on this look.
        if not WebhookDelivery.objects.due(timezone.now()).exists():
            break
    return tried


def deliver_due(holder: str = "", limit: int | None = None, until: float | None = None) -> int:
    """Post every delivery due now, a batch at a time (up to `limit` tries, claiming none
    after the monotonic time `until`); how many tries were made. While one batch's requests
    are out, the one before is recorded and the next claimed: the network and the database
    work at once. `holder` renews the sender's lease after each batch."""
    tried = 0
    with ThreadPoolExecutor(THREADS, thread_name_prefix="webhook") as pool:
        in_flight: list[Future[Outcome]] = []
        batch = _claim(limit, tried, until)
        while batch or in_flight:
            sent = _submit(pool, batch)
            tried += len(batch)
            if in_flight:
                record([future.result() for future in in_flight])
                if holder:
                    TaskLease.objects.take(LEASE, holder, LEASE_SECONDS)
            in_flight = sent
            batch = _claim(limit, tried, until) if batch else []
    return tried


def post_all(batch: Sequence[WebhookDelivery]) -> list[Outcome]:
    """Each delivery's try, THREADS at a time; their outcomes in order."""
    with ThreadPoolExecutor(min(THREADS, max(len(batch), 1))) as pool:
        return [future.result() for future in _submit(pool, batch)]


def _claim(limit: int | None, tried: int, until: float | None) -> list[WebhookDelivery]:
    size = BATCH if limit is None else min(BATCH, limit - tried)
    if size <= 0 or (until is not None and time.monotonic() >= until):
        return []
    return WebhookDelivery.objects.claim(size, CLAIM_LEASE)


def _submit(pool: ThreadPoolExecutor, batch: Sequence[WebhookDelivery]) -> list[Future[Outcome]]:
    """Hand each try to the pool, signed with its subscription's secrets (decrypted once a
    batch); the threads touch no database."""
    now = timezone.now()
    signers: dict[int, list[Webhook]] = {}
    proxies: dict[str, dict[str, str]] = {}
    for row in batch:
        if row.subscription_id not in signers:
            secrets = row.subscription.signing_secrets(now)
            signers[row.subscription_id] = signing.signers(secrets)
        url = row.subscription.url
        if url not in proxies:  # HTTP(S)_PROXY and NO_PROXY, as requests reads them
            proxies[url] = requests.utils.get_environ_proxies(url)
    return [
        pool.submit(post, row, signers[row.subscription_id], proxies[row.subscription.url])
        for row in batch
    ]


def post(
    row: WebhookDelivery, signers: Sequence[Webhook], proxies: dict[str, str] | None = None
) -> Outcome:
    """One try: the payload, signed now, posted to the subscription's URL."""
    body = row.payload.encode()
    at = timezone.now()
    started = time.monotonic()
    code: int | None = None
    excerpt = error = ""
    try:
        response = session().post(
            row.subscription.url,
            data=body,
            headers=signing.headers(row.event_id, at, body, signers),
            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
            allow_redirects=False,
            stream=True,
            proxies=proxies,
        )
        try:
            code = response.status_code
            excerpt = _excerpt(response)
        finally:
            response.close()
        if 300 <= code < 400:
            error = "redirected elsewhere: redirects are not followed"
    except requests.RequestException as exc:
        error = describe(exc)
    duration = int((time.monotonic() - started) * 1000)
    return Outcome(row, at, code, excerpt, error[:ERROR_CHARS], duration)


def record(outcomes: Sequence[Outcome]) -> None:
    """What the tries met, in one transaction: each attempt; each delivery delivered, due
    again, or given up (only while still held under its claim); each subscription's health."""
    if not outcomes:
        return
    now = timezone.now()
    with transaction.atomic():
        _keep_attempts(outcomes)
        _settle(outcomes)
        _note_health(outcomes, now)


def _keep_attempts(outcomes: Sequence[Outcome]) -> None:
    """Each try's row (COPY on PostgreSQL: bulk_create's per-field work was most of it)."""
    adapt = connection.ops.adapt_datetimefield_value
    rows = [
        (o.delivery.pk, adapt(o.attempted_at), o.response_code, o.excerpt, o.error, o.duration_ms)
        for o in outcomes
    ]
    bulk_insert(WebhookAttempt._meta.db_table, ATTEMPT_COLUMNS, rows)


def _settle(outcomes: Sequence[Outcome]) -> None:
    """Every delivery's next step, only where it is still held under its claim: one UPDATE
    joined to the batch's arrays on PostgreSQL (as many single UPDATEs were most of a
    batch's time there), one executemany on SQLite."""
    steps: list[tuple[Any, ...]] = []
    for o in outcomes:
        status, due = _next_step(o)
        delivered = o.attempted_at if o.succeeded else None
        token = _token(o.delivery)
        at, code, error = o.attempted_at, o.response_code, o.error
        steps.append((o.delivery.pk, token, status, due, delivered, at, code, error))
    table = connection.ops.quote_name(WebhookDelivery._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                SETTLE_ALL.format(table=table), [list(c) for c in zip(*steps, strict=True)]
            )
            return
        adapt = connection.ops.adapt_datetimefield_value
        adapted = [
            (status, adapt(due), adapt(delivered), adapt(at), code, error, adapt(at), pk, token)
            for pk, token, status, due, delivered, at, code, error in steps
        ]
        cursor.executemany(SETTLE_ONE.format(table=table), adapted)


def _next_step(outcome: Outcome) -> tuple[str, datetime]:
    """(status, next_attempt_at) after this try, by the models' schedule."""
    Status = WebhookDelivery.Status
    row = outcome.delivery
    if outcome.succeeded:
        return Status.DELIVERED, outcome.attempted_at
    first = row.first_attempt_at or outcome.attempted_at
    due = next_try(row.attempts + 1, first, outcome.attempted_at)
    if due is None:
        return Status.FAILED, outcome.attempted_at
    return Status.PENDING, due


def _token(row: WebhookDelivery) -> str | None:
    """The row's claim token as the database stores a UUID."""
    if row.claim_token is None:
        return None
    field = WebhookDelivery._meta.get_field("claim_token")
    return field.get_db_prep_value(row.claim_token, connection)  # type: ignore[no-any-return]


def _note_health(outcomes: Sequence[Outcome], now: datetime) -> None:
    """A success ends a subscription's run of failures; a failure starts one (or goes
    on with it), and one that has gone on for a day turns the subscription off."""
    succeeded = {o.delivery.subscription_id for o in outcomes if o.succeeded}
    failed = {o.delivery.subscription_id for o in outcomes if not o.succeeded} - succeeded
    subscriptions = WebhookSubscription.objects
    if succeeded:
        subscriptions.filter(pk__in=succeeded).update(failing_since=None, last_success_at=now)
    if failed:
        failing = subscriptions.filter(pk__in=failed)
        failing.update(last_failure_at=now)
        failing.filter(Q(failing_since__isnull=True)).update(failing_since=now)
        failing.disable_failing(now)


def session() -> requests.Session:
    """This process's pooled session, shared by the sender's threads (keep-alive)."""
    global _session
    if _session is None:
        made = requests.Session()
        # Proxies are looked up once per batch (_submit), not the environment and ~/.netrc
        # read again on every request, a third of what a request cost.
        made.trust_env = False
        adapter = HTTPAdapter(pool_connections=THREADS, pool_maxsize=THREADS, max_retries=0)
        made.mount("http://", adapter)
        made.mount("https://", adapter)
        _session = made
    return _session


def describe(error: requests.RequestException) -> str:
    """Why no answer came, in words that name no URL (it may carry a secret)."""
    if isinstance(error, requests.ConnectTimeout):
        return f"could not connect within {CONNECT_TIMEOUT:g} s"
    if isinstance(error, requests.ReadTimeout):
        return f"no answer within {READ_TIMEOUT:g} s"
    if isinstance(error, requests.exceptions.SSLError):
        return "TLS failed: the certificate or the handshake was refused"
    if isinstance(error, requests.ConnectionError):
        text = str(error).lower()
        if "refused" in text:
            return "connection refused"
        if "name or service not known" in text or "nodename nor servname" in text:
            return "no such host"
        return "connection failed or dropped"
    return f"request failed ({type(error).__name__})"


def _excerpt(response: requests.Response) -> str:
    """The start of the answer's body, its numbers and secrets masked."""
    read = b""
    for chunk in response.iter_content(1024):
        read += chunk
        if len(read) >= READ_LIMIT:
            break
    text = read[:READ_LIMIT].decode("utf-8", "replace").strip()
    return redact_text(text)[:EXCERPT_CHARS]


def _seconds_to_next_due() -> float | None:
    first = WebhookDelivery.objects.next_due_at()
    if first is None:
        return None
    return (first - timezone.now()).total_seconds()


def _hand_over() -> None:
    from django_q.tasks import async_task

    async_task("api.tasks.deliver_webhooks", task_name="deliver webhooks")


def sync_mode() -> bool:
    """django-q2 runs tasks inline (Q_SYNC, the tests): a sender must not linger then."""
    return bool(settings.Q_CLUSTER.get("sync"))
