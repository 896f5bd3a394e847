"""Provider requests several at a time, in threads that borrow the caller's connection.

A provider takes milliseconds to seconds to answer, and a request that failed waits
before it is asked again: one worker sending one message per request would spend
nearly all its time waiting. These threads do nothing but HTTP and the account's pace
(messaging.ratelimit), whose one statement per request runs on the caller's database
connection under that module's lock. So a worker holds one connection however many
requests it has in flight, the pace is kept inside the caller's transaction where
there is one, and the caller, which waits for every thread before it goes on, is the
only one to write what the answers said.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from django.db import DEFAULT_DB_ALIAS, connections

_T = TypeVar("_T")
_R = TypeVar("_R")


def map_in_threads(
    func: Callable[[_T], _R], items: Iterable[_T], workers: int, name: str = "provider"
) -> list[_R]:
    """[func(item) for item in items], up to `workers` at once; in order, all done."""
    work = list(items)
    workers = min(workers, len(work))
    if workers <= 1:
        return [func(item) for item in work]
    shared = connections[DEFAULT_DB_ALIAS]
    shared.inc_thread_sharing()

    def borrow() -> None:
        connections[DEFAULT_DB_ALIAS] = shared

    try:
        with ThreadPoolExecutor(workers, thread_name_prefix=name, initializer=borrow) as pool:
            return list(pool.map(func, work))
    finally:
        shared.dec_thread_sharing()
