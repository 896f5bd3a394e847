"""One request pace per provider account, shared by every worker process on every machine.

A token bucket kept in the database as GCRA (the generic cell rate algorithm):
each account has one row holding the time at which its next request is due.
Taking a token is one UPDATE ... RETURNING that reserves the next free slot,
`max(due, now)`, and moves `due` on by 1/rate; the caller then sleeps until its
slot. Each reservation is atomic (the row lock on PostgreSQL, the write lock on
SQLite), so N processes together make at most `rate` requests a second, and
each waits its turn rather than racing.

A provider that says "slow down" (429 + Retry-After, or X-RateLimit-Remaining: 0)
pushes the due time forward with `hold`, which every process then honours.
"""

from __future__ import annotations

import threading
import time

from django.db import IntegrityError, connection, transaction

from messaging.models import ProviderAccount, RateBucket

#: Threads sending for one worker share its connection (messaging.concurrency): one at a time.
_connection_lock = threading.RLock()
#: Longest a hold may push an account's pace back (a provider asking for more is retried later).
MAX_HOLD_SECONDS = 300.0


def acquire(account: ProviderAccount, tokens: float = 1.0) -> float:
    """Wait for this account's next request slot; returns the seconds waited."""
    if account.rate_limit <= 0:
        return 0.0
    interval = tokens / account.rate_limit
    now = time.time()
    # One statement, so one round trip: reserve max(due, now) and move `due` on.
    due = _update(account, "next_at = {greatest}(next_at, %s) + %s", [now, interval])
    wait = due - interval - now
    if wait > 0:
        time.sleep(wait)
    return max(wait, 0.0)


def hold(account: ProviderAccount, seconds: float) -> None:
    """Make every process wait `seconds` (capped) before this account's next request."""
    until = time.time() + min(max(seconds, 0.0), MAX_HOLD_SECONDS)
    _update(account, "next_at = {greatest}(next_at, %s)", [until])


def _update(account: ProviderAccount, assignment: str, params: list[float]) -> float:
    """Apply `assignment` to the account's bucket row (made on first use); the new next_at."""
    table = connection.ops.quote_name(RateBucket._meta.db_table)
    greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    sql = (
        f"UPDATE {table} SET {assignment.format(greatest=greatest)} "  # noqa: S608
        "WHERE provider_account_id = %s RETURNING next_at"
    )
    with _connection_lock:
        for _ in range(2):
            with connection.cursor() as cursor:
                cursor.execute(sql, [*params, account.pk])
                row = cursor.fetchone()
            if row is not None:
                return float(row[0])
            try:
                with transaction.atomic():
                    RateBucket.objects.create(provider_account_id=account.pk)
            except IntegrityError:
                pass  # another process made it between our look and our insert
    raise RuntimeError(f"no rate bucket for account {account.pk}")
