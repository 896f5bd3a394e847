"""One request pace per provider account, shared by every worker process on every machine.

A token bucket kept in the database as GCRA (the generic cell rate algorithm):
each account has one row holding the time at which its next request is due.
Taking a token is one short locked update that reserves the next free slot,
`max(due, now)`, and moves `due` on by 1/rate; the caller then sleeps until its
slot. Reservations are serialised by the row lock (SELECT ... FOR UPDATE on
PostgreSQL, the IMMEDIATE write lock on SQLite), so N processes together make
at most `rate` requests a second, and each waits its turn rather than racing.

A provider that says "slow down" (429 + Retry-After, or X-RateLimit-Remaining: 0)
pushes the due time forward with `hold`, which every process then honours.
"""

from __future__ import annotations

import time

from django.db import IntegrityError, transaction

from messaging.models import ProviderAccount, RateBucket

#: Longest a hold may push an account's pace back (a provider asking for more is retried later).
MAX_HOLD_SECONDS = 300.0


def acquire(account: ProviderAccount, tokens: float = 1.0) -> float:
    """Wait for this account's next request slot; returns the seconds waited."""
    if account.rate_limit <= 0:
        return 0.0
    with transaction.atomic():
        bucket = _locked_bucket(account)
        now = time.time()
        slot = max(bucket.next_at, now)
        bucket.next_at = slot + tokens / account.rate_limit
        bucket.save(update_fields=["next_at"])
    wait = slot - now
    if wait > 0:
        time.sleep(wait)
    return max(wait, 0.0)


def hold(account: ProviderAccount, seconds: float) -> None:
    """Make every process wait `seconds` (capped) before this account's next request."""
    until = time.time() + min(max(seconds, 0.0), MAX_HOLD_SECONDS)
    with transaction.atomic():
        bucket = _locked_bucket(account)
        if until > bucket.next_at:
            bucket.next_at = until
            bucket.save(update_fields=["next_at"])


def _locked_bucket(account: ProviderAccount) -> RateBucket:
    """The account's bucket row, locked until the surrounding transaction ends."""
    rows = RateBucket.objects.select_for_update()
    bucket = rows.filter(provider_account_id=account.pk).first()
    if bucket is None:
        try:
            with transaction.atomic():
                bucket = RateBucket.objects.create(provider_account_id=account.pk)
        except IntegrityError:  # another process created it between our look and our insert
            bucket = rows.get(provider_account_id=account.pk)
    return bucket
