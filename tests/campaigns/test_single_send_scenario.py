"""Issue 14's scenario, run to completion: single sends through a faulty gateway, workers killed.

"Single sends -- BulkSMSRates with `bulk=false`, 3,000 recipients, rate limit 200/s --
against a gateway that answers 5% of requests with 5xx, 2% with 429 and drops 1% of
connections after accepting the message, with the worker SIGKILLed twice in the first 12
seconds": every eligible recipient gets exactly one message at the fake, none goes to an
opted-out number, and the campaign completes. On SQLite with one cluster, on PostgreSQL
with two, with django-q2's ORM broker and with Redis.

Unlike the chaos test, the faults meet the lookups too (GET /v1/reports/messages for sends
in doubt, GET /v1/sms/{id} for statuses): that is what kept campaigns from finishing.
This process plays the scheduler (campaigns.tasks.tick every second), as there.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django_q.conf import Conf

from campaigns.models import Campaign
from contacts.models import Channel, Contact, Group, OptOut
from messaging.models import Message, ProviderAccount
from tests.campaigns.test_chaos import Cluster, Ticker, database_url
from tests.fakegateway import BULKSMSRATES, FakeGateway

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

RECIPIENTS = 3000
OPTED_OUT = 60
RATE_LIMIT = 200
#: The issue's faults, on sends and lookups alike.
FAULT_RATES = {"5xx": 0.05, "429": 0.02, "drop": 0.01}
FAULTY_PATHS = ("/v1/sms/", "/v1/reports/")
KILLS_WITHIN_SECONDS = 12.0
LEASE_SECONDS = 15
RECONCILE_AFTER_SECONDS = 2
BATCH = 50  # rows a run claims at a time: well within the lease, faults and all
DEADLINE_SECONDS = 300.0
SEED = int(os.environ.get("HERALD_SCENARIO_SEED", "14"))


def phone(i: int) -> str:
    return f"+4479{i:08d}"


@pytest.fixture(params=["orm", "redis"])
def broker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """This process enqueues where the clusters read: the test database, or a Redis db."""
    monkeypatch.setattr(Conf, "SYNC", False)
    if request.param == "orm":
        yield ""
        return
    url = f"redis://127.0.0.1:6379/{1 + os.getpid() % 15}"
    client = redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip(f"no Redis at {url}")
    client.flushdb()
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", url)
    yield url
    client.flushdb()


def worker_env(redis_url: str) -> dict[str, str]:
    if connection.vendor == "postgresql":
        url = database_url()
    else:
        url = f"sqlite:///{connection.settings_dict['NAME']}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": url,
        "SECRET_KEY": settings.SECRET_KEY,
        "CREDENTIALS_KEYS": ",".join(settings.CREDENTIALS_KEYS),
        "DEBUG": "False",
        "Q_SYNC": "False",
        "Q_WORKERS": "2",
        "Q_TIMEOUT": "20",
        "Q_RETRY": "25",
        "Q_BROKER": "redis" if redis_url else "orm",
        "HERALD_SEND_LEASE_SECONDS": str(LEASE_SECONDS),
        "HERALD_RECONCILE_AFTER_SECONDS": str(RECONCILE_AFTER_SECONDS),
        "HERALD_DISPATCH_BATCH_SIZE": str(BATCH),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.pop("HERALD_REQUIRE_POSTGRES", None)
    return env


def audience(rng: random.Random) -> tuple[Group, set[str], set[str]]:
    group = Group.objects.create(name="Scenario")
    phones = [phone(i) for i in range(RECIPIENTS)]
    contacts = Contact.objects.bulk_create([Contact(phone=p, first_name="Ana") for p in phones])
    membership = Contact.groups.through
    membership.objects.bulk_create(
        [membership(contact_id=c.pk, group_id=group.pk) for c in contacts]
    )
    opted_out = set(rng.sample(phones, OPTED_OUT))
    OptOut.objects.bulk_create(
        [OptOut(phone=p, channel=Channel.SMS, source=OptOut.Source.IMPORT) for p in opted_out]
    )
    return group, set(phones) - opted_out, opted_out


def test_single_sends_through_faults_and_kills_reach_everyone_once_and_complete(
    broker: str,
    gateway: FakeGateway,
    make_account: Callable[..., ProviderAccount],
    make_user: Callable[..., User],
    settings: Any,
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    # This process ticks (expired leases, reconciling) with the workers' short times.
    settings.HERALD_SEND_LEASE_SECONDS = LEASE_SECONDS
    settings.HERALD_RECONCILE_AFTER_SECONDS = RECONCILE_AFTER_SECONDS
    gateway.bulk_rate = 100_000  # every 429 is one the faults dealt
    group, eligible, opted_out = audience(rng)
    account = make_account(BULKSMSRATES, rate_limit=RATE_LIMIT, bulk=False, read_timeout=2)
    marketer, approver = make_user("mia", "Marketers"), make_user("arno", "Approvers")
    campaign = Campaign.objects.create(
        name="Scenario", provider_account=account, body="Hi {{first_name}}!", created_by=marketer
    )
    campaign.groups.add(group)
    campaign.submit(by=marketer)

    names = ("one", "two") if connection.vendor == "postgresql" else ("one",)
    clusters = [Cluster(name, worker_env(broker), tmp_path) for name in names]
    kills = sorted(rng.uniform(2.0, KILLS_WITHIN_SECONDS) for _ in range(2))
    ticker = Ticker()
    killed: list[str] = []
    for cluster in clusters:
        cluster.start()
    gateway.chaos(seed=SEED, rates=FAULT_RATES, paths=FAULTY_PATHS, methods=("POST", "GET"))
    started = time.monotonic()
    try:
        campaign.approve(by=approver)
        ticker.start()
        while True:
            at = time.monotonic() - started
            if kills and at >= kills[0]:
                kills.pop(0)
                victim = rng.choice(clusters)
                victim.kill()
                killed.append(f"{victim.name} at {at:.1f}s")
                victim.start()
            campaign.refresh_from_db()
            if campaign.status == Campaign.Status.COMPLETED:
                break
            assert at < DEADLINE_SECONDS, (
                f"not completed after {at:.0f}s: {campaign.status} {campaign.pause_reason!r}, "
                f"rows {Message.objects.filter(campaign=campaign).status_counts()}; "
                f"kills {killed}; tick errors {ticker.errors[:3]}\n"
                + "\n".join(c.log_tail() for c in clusters)
            )
            time.sleep(0.2)
    finally:
        ticker.stop()
        for cluster in clusters:
            cluster.kill()
        gateway.calm()
    took = time.monotonic() - started

    received = Counter(m.to for m in list(gateway.messages.values()))
    rows = Message.objects.filter(campaign=campaign)
    faults = Counter(r.fault for r in list(gateway.requests) if r.fault)
    print(
        f"\nscenario ({connection.vendor}, {len(clusters)} cluster(s), broker "
        f"{'redis' if broker else 'orm'}, seed {SEED}): completed in {took:.1f}s from approval; "
        f"faults {dict(faults)}; kills {killed}; rows {rows.status_counts()}"
    )
    assert len(killed) == 2
    assert faults["drop"] and faults["5xx"] and faults["429"]
    assert {p: n for p, n in received.items() if n > 1} == {}
    assert eligible == set(received), (
        len(eligible - set(received)),
        len(received.keys() - eligible),
    )
    assert not opted_out & set(received)
    assert campaign.final_counts[Message.Status.IN_DOUBT] == 0
    assert set(rows.filter(status=Message.Status.SKIPPED).values_list("phone", flat=True)) == (
        opted_out
    )
