"""One account's rate limit holds for all worker processes together."""

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from messaging import ratelimit
from messaging.models import ProviderAccount
from tests.fakegateway import FakeGateway

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """The test database, as the helper processes must open it."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(db['NAME']).resolve()}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def busiest_second(stamps: list[float]) -> int:
    """Most requests that fell within any one-second window."""
    stamps = sorted(stamps)
    most, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize(
    ("backend", "path", "body_key"),
    [
        ("bulksmsrates", "/v1/sms/send", "body"),
        ("buzzbip", "/api/sms/", "message"),
        ("bwatmesaj", "/api/v3/sms/send", "message"),
    ],
)
def test_two_processes_together_stay_within_the_account_rate(
    make_account: Callable[..., ProviderAccount],
    gateway: FakeGateway,
    backend: str,
    path: str,
    body_key: str,
) -> None:
    # Our account is set to 20/s (BulkSMSRates' own bucket allows 25/s with a burst of
    # 25). Two processes sending 60 each, many requests in flight at once, as fast as they
    # can would need 120 in well under a second; paced together they take six.
    gateway.bulk_rate = 25
    account = make_account(backend, rate_limit=20, bulk=False)
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    started = time.time()
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.messaging.rate_limit_worker", account.name, "60", tag],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for tag in ("one", "two")
    ]
    accepted = [int(worker.communicate(timeout=60)[0].strip() or 0) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    assert accepted == [60, 60]
    assert gateway.rate_limited == 0
    sends = [r for r in gateway.requests if r.path == path]
    assert len(sends) == 120
    # Paced: the limiter hands out slots 50 ms apart, so any one second holds at most
    # rate + 1 of them (logins too). The gateway stamps a request when it arrives, and on
    # a busy machine a request can arrive up to ~100 ms late and land next to the one
    # after it: two slots of jitter are allowed. Unpaced, all 120 arrive within a second.
    assert busiest_second([r.at for r in gateway.requests]) <= 21 + 2
    # Over the whole run jitter only moves the ends: 120 sends at 20/s span ~5.95 s.
    stamps = sorted(r.at for r in sends)
    assert stamps[-1] - stamps[0] >= 119 / 20 - 0.25
    assert time.time() - started >= 5.9
    # And the two really were sending at the same time, interleaved.
    by_tag: dict[str, list[float]] = {"one": [], "two": []}
    for request in sends:
        by_tag[request.json[body_key].split()[0]].append(request.at)
    assert max(by_tag["one"]) > min(by_tag["two"]) and max(by_tag["two"]) > min(by_tag["one"])


def test_a_hold_delays_every_process(db: Any, simulator: ProviderAccount) -> None:
    simulator.rate_limit = 1000
    ratelimit.acquire(simulator)
    ratelimit.hold(simulator, 0.5)
    assert ratelimit.acquire(simulator) >= 0.45
    assert ratelimit.acquire(simulator) < 0.05
