"""Provider requests several at a time, and sending loops side by side, in threads.

A provider takes milliseconds to seconds to answer, and a request that failed waits
before it is asked again: one worker sending one message per request would spend
nearly all its time waiting. The threads of `map_in_threads` do nothing but HTTP and
the account's pace (messaging.ratelimit), whose one statement per request runs on the
caller's database connection under that module's lock. So a worker holds one
connection however many requests it has in flight, the pace is kept inside the
caller's transaction where there is one, and the caller, which waits for every thread
before it goes on, is the only one to write what the answers said.

`in_lanes` is for whole loops of claim, send and record: each lane has a database
connection of its own, so one lane writes while another's request is out.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
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


def lanes_allowed(wanted: int) -> int:
    """`wanted` lanes, or one inside a transaction (another connection could not see its
    rows)."""
    return 1 if connections[DEFAULT_DB_ALIAS].in_atomic_block else max(1, wanted)


def in_lanes(lanes: Sequence[Callable[[threading.Event], _R]], name: str = "lane") -> list[_R]:
    """Run the lanes at once, each in a thread on a database connection of its own (closed
    when it ends); their results, in order. A single lane runs in the caller's thread.

    A loop that claims, sends and records batches waits on the provider for the answer
    and on the database for each write; two such loops side by side keep both busy. When
    a lane raises, the `stop` event every lane was given is set, so the others end after
    the batch they are on, and the first error is raised again.
    """
    stop = threading.Event()
    if len(lanes) == 1:
        return [lanes[0](stop)]

    def run(lane: Callable[[threading.Event], _R]) -> _R:
        try:
            return lane(stop)
        except BaseException:
            stop.set()
            raise
        finally:
            connections.close_all()  # this thread's own

    with ThreadPoolExecutor(len(lanes), thread_name_prefix=name) as pool:
        futures = [pool.submit(run, lane) for lane in lanes]
    return [future.result() for future in futures]
