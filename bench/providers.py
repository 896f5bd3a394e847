"""Provider send paths against the fake gateway running in its own process.

    DATABASE_URL=... python bench/providers.py --gateway URL [--bulk N] [--single N] [--raw N]

Prints key=value lines for bench/run.py:

- bulk_backend:   BulkSMSRates bulk recipients/s handed over by the backend alone
                  (in-memory messages, 10,000 a request, personalised bodies), measured
                  before and after bulk_engine in the same run: their mean
- bulk_engine:    the same recipients as a campaign's messages through the engine, as a
                  campaign's run drives it: claim rows -> send -> record, in this DB,
                  HERALD_DISPATCH_LANES lanes in this one process
- bulk_ratio:     bulk_engine / bulk_backend (goal >= 0.5)
- bulk_workers:   the same through two worker processes side by side on one campaign (as
                  Procfile.prod runs them), each with its lanes, from the moment both
                  start claiming to the last one's end
- bulk_workers_ratio: bulk_workers / bulk_backend
- bulk_worker_start_mb: the larger worker's memory before it claims (VmRSS: Python,
                  Django, the database driver, requests, cryptography), MB
- bulk_worker_mb: the larger of the two workers' peak memory (VmHWM), MB
- single_rate:    single sends/s with the account and the key both at 100 req/s
- single_429:     429 answers the gateway gave during that run
- single_clean:   single sends/s through the engine (account at 200 req/s), no faults
- single_faulty:  the same under issue 14's faults (5% 5xx, 2% 429, 1% dropped after accept)
- single_fault_ratio:  single_faulty / single_clean (goal >= 0.8)
- raw_ms:         one single send with plain requests.Session (no Herald code), ms
- layer_ms:       one single send through our backend + HTTP layer + rate limiter, ms
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import requests  # noqa: E402
from django.conf import settings  # noqa: E402

from campaigns.models import Campaign  # noqa: E402
from campaigns.sending import MAX_CLAIM  # noqa: E402
from messaging.concurrency import in_lanes, lanes_allowed  # noqa: E402
from messaging.dispatch import reconcile_in_doubt, send_claimed  # noqa: E402
from messaging.models import Message, ProviderAccount  # noqa: E402

KEY, SECRET = "bsms_test_key", "sk_test_secret"


def account(gateway: str, name: str, rate: float, **options: object) -> ProviderAccount:
    row, _ = ProviderAccount.objects.update_or_create(
        name=name,
        defaults={
            "backend": "bulksmsrates",
            "base_url": gateway,
            "sender": "Herald",
            "rate_limit": rate,
            "options": options,
        },
    )
    row.set_credentials({"api_key": KEY, "api_secret": SECRET})
    row.save()
    return row


def messages(owner: ProviderAccount, count: int, tag: str) -> list[Message]:
    return [
        Message(
            provider_account=owner,
            phone=f"+447{400000000 + i}",
            sender="Herald",
            body=f"Hi Name{i}, our spring sale starts today: 20% off with code SPRING{i % 97}",
            client_ref=f"{tag}-{i}",
        )
        for i in range(count)
    ]


def control(gateway: str, path: str, **body: object) -> dict[str, float]:
    answer = requests.post(f"{gateway}/_fake/{path}", json=body, timeout=10)
    answer.raise_for_status()
    return answer.json()


def stats(gateway: str) -> dict[str, float]:
    return requests.get(f"{gateway}/_fake/stats", timeout=10).json()


def sends_per_second(owner: ProviderAccount, count: int, label: str) -> float:
    """`count` messages handed to the backend in one call, all accepted: per second."""
    batch = messages(owner, count, label)
    backend = owner.get_backend()
    started = time.perf_counter()
    results = backend.send_messages(batch)
    elapsed = time.perf_counter() - started
    assert all(r.accepted for r in results), f"{label} send refused"
    return count / elapsed


def bench_bulk_backend(gateway: str, count: int) -> float:
    return sends_per_second(account(gateway, "bench-bulk", rate=100), count, "bulk")


def bench_bulk_engine(gateway: str, count: int) -> float:
    """The handover's recipients as one campaign's messages, sent as its run sends them."""
    campaign = engine_campaign(gateway, count, "bench-engine")
    due = Message.objects.filter(campaign=campaign)
    # As a campaign's run claims.
    size = min(campaign.provider_account.get_backend().rows_per_claim(), MAX_CLAIM)

    def lane(stop: threading.Event) -> None:
        while not stop.is_set() and (batch := due.claim(size)):
            assert send_claimed(batch) is None
            del batch  # as a run's dispatch_batch returns: one claim in memory a lane

    started = time.perf_counter()
    in_lanes([lane] * lanes_allowed(settings.HERALD_DISPATCH_LANES), "engine")
    elapsed = time.perf_counter() - started
    sent = due.filter(status=Message.Status.SENT).count()
    assert sent == count, f"only {sent} of {count} sent"
    return count / elapsed


def engine_campaign(gateway: str, count: int, name: str) -> Campaign:
    """`count` messages of one new campaign, due now."""
    owner = account(gateway, name, rate=100)
    campaign = Campaign.objects.create(name=name, provider_account=owner, body="Hi")
    rows = messages(owner, count, name)
    for row in rows:
        row.campaign = campaign
    Message.objects.bulk_create(rows, batch_size=5000)
    return campaign


def bench_bulk_workers(gateway: str, count: int, workers: int = 2) -> tuple[float, float, float]:
    """The handover's recipients through `workers` processes side by side: per second, and
    the larger worker's memory when ready and at its peak (MB). Each starts (Django, its
    connection) before the clock does, then claims, sends and records as a run does."""
    campaign = engine_campaign(gateway, count, "bench-workers")
    command = [sys.executable, __file__, "--gateway", gateway, "--work", str(campaign.pk)]
    children = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    starts: list[float] = []
    for child in children:
        assert child.stdout is not None
        starts.append(float(child.stdout.readline().split("=")[1]))
        assert child.stdout.readline().strip() == "ready"
    started = time.time()
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    ends, peaks = [], []
    for child in children:
        out, _ = child.communicate()
        assert child.returncode == 0, "a bench worker failed"
        values = dict(line.split("=") for line in out.split())
        ends.append(float(values["ended"]))
        peaks.append(float(values["peak_mb"]))
    sent = Message.objects.filter(campaign=campaign, status=Message.Status.SENT).count()
    assert sent == count, f"only {sent} of {count} sent"
    return count / (max(ends) - started), max(starts), max(peaks)


def work(campaign_id: int) -> None:
    """One bench worker (bench_bulk_workers): ready, then its lanes once told to go."""
    due = Message.objects.filter(campaign_id=campaign_id)
    size = min(
        Campaign.objects.get(pk=campaign_id).provider_account.get_backend().rows_per_claim(),
        MAX_CLAIM,
    )

    def lane(stop: threading.Event) -> None:
        while not stop.is_set() and (batch := due.claim(size)):
            assert send_claimed(batch) is None
            del batch  # as a run's dispatch_batch returns: one claim in memory a lane

    print(f"start_mb={memory_mb('VmRSS'):.1f}")  # Django, its connection, the backend
    print("ready", flush=True)
    sys.stdin.readline()
    in_lanes([lane] * lanes_allowed(settings.HERALD_DISPATCH_LANES), "engine")
    print(f"ended={time.time()}")
    print(f"peak_mb={memory_mb('VmHWM'):.1f}")


def memory_mb(field: str) -> float:
    """This process's VmRSS or VmHWM, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def bench_single(gateway: str, count: int) -> tuple[float, float]:
    control(gateway, "config", bulk_rate=100)
    time.sleep(1.1)  # let the key's bucket fill up again
    before = stats(gateway)["rate_limited"]
    owner = account(gateway, "bench-single", rate=100, bulk=False)
    rate = sends_per_second(owner, count, "single")
    return rate, stats(gateway)["rate_limited"] - before


#: Issue 14's faults: 5% 5xx, 2% 429, 1% of connections dropped after the message was accepted.
FAULTS = {"seed": 14, "rates": {"5xx": 0.05, "429": 0.02, "drop": 0.01}, "methods": ["POST", "GET"]}
FAULTS["paths"] = ["/v1/sms/", "/v1/reports/"]


def engine_single_rate(gateway: str, count: int, label: str) -> float:
    """Single sends through the engine until every message is settled: messages per second.

    As a campaign's run does it: claim and send what is due, wait for the next retry,
    look up sends in doubt (at once here: no reconcile grace), until none is left.
    """
    owner = account(gateway, f"bench-{label}", rate=200, bulk=False, read_timeout=2)
    Message.objects.bulk_create(messages(owner, count, label), batch_size=5000)
    rows = Message.objects.filter(provider_account=owner)
    size = min(owner.get_backend().rows_per_claim(), MAX_CLAIM)  # as a campaign's run claims
    started = time.perf_counter()
    while rows.filter(status__in=Message.UNFINISHED_STATUSES).exists():
        if batch := rows.claim(size):
            send_claimed(batch)
        elif rows.filter(status=Message.Status.IN_DOUBT).exists():
            reconcile_in_doubt()
        else:
            time.sleep(0.05)  # the next retry is not due yet
    elapsed = time.perf_counter() - started
    sent = rows.filter(status=Message.Status.SENT).count()
    assert sent == count, f"{label}: only {sent} of {count} sent ({rows.status_counts()})"
    return count / elapsed


def bench_single_under_faults(gateway: str, count: int) -> tuple[float, float]:
    """Single-send rate without faults, then with them, in the same run."""
    settings.HERALD_RECONCILE_AFTER_SECONDS = 0
    control(gateway, "config", bulk_rate=1_000_000)
    clean = engine_single_rate(gateway, count, "clean")
    control(gateway, "config", chaos=FAULTS)
    try:
        faulty = engine_single_rate(gateway, count, "faulty")
    finally:
        control(gateway, "config", chaos=None)
    return clean, faulty


def bench_overhead(gateway: str, count: int) -> tuple[float, float]:
    """Milliseconds per single send: plain requests vs our whole HTTP path."""
    control(gateway, "config", bulk_rate=1_000_000)
    headers = {"X-API-Key": KEY, "X-API-Secret": SECRET}
    session = requests.Session()
    raw = []
    for i in range(count):
        body = {"to": f"+447{410000000 + i}", "from": "Herald", "body": "Hi", "client_ref": f"r{i}"}
        started = time.perf_counter()
        answer = session.post(f"{gateway}/v1/sms/send", json=body, headers=headers, timeout=10)
        answer.json()
        raw.append(time.perf_counter() - started)
    owner = account(gateway, "bench-layer", rate=1_000_000, bulk=False)
    backend = owner.get_backend()
    ours = []
    for message in messages(owner, count, "layer"):
        message.body = "Hi"
        started = time.perf_counter()
        (result,) = backend.send_messages([message])
        ours.append(time.perf_counter() - started)
        assert result.accepted
    return statistics.median(raw) * 1000, statistics.median(ours) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--bulk", type=int, default=100_000)
    parser.add_argument("--single", type=int, default=1500)
    parser.add_argument("--raw", type=int, default=1000)
    parser.add_argument("--faults", type=int, default=3000)
    parser.add_argument("--work", type=int, help=argparse.SUPPRESS)  # a bench worker
    args = parser.parse_args()
    if args.work:
        work(args.work)
        return

    # The handover before and after the engine: the machine's speed drifts within a run.
    control(args.gateway, "config", bulk_rate=100)
    before = bench_bulk_backend(args.gateway, args.bulk)
    control(args.gateway, "reset")
    engine = bench_bulk_engine(args.gateway, args.bulk)
    control(args.gateway, "reset")
    control(args.gateway, "config", bulk_rate=100)
    workers, worker_start_mb, worker_mb = bench_bulk_workers(args.gateway, args.bulk)
    control(args.gateway, "reset")
    after = bench_bulk_backend(args.gateway, args.bulk)
    control(args.gateway, "reset")
    handover = (before + after) / 2
    print(f"bulk_backend={handover:.0f}")
    print(f"bulk_engine={engine:.0f}")
    print(f"bulk_ratio={engine / handover:.3f}")
    print(f"bulk_workers={workers:.0f}")
    print(f"bulk_workers_ratio={workers / handover:.3f}")
    print(f"bulk_worker_start_mb={worker_start_mb:.1f}")
    print(f"bulk_worker_mb={worker_mb:.1f}")
    rate, limited = bench_single(args.gateway, args.single)
    print(f"single_rate={rate:.1f}")
    print(f"single_429={limited:.0f}")
    control(args.gateway, "reset")
    clean, faulty = bench_single_under_faults(args.gateway, args.faults)
    print(f"single_clean={clean:.1f}")
    print(f"single_faulty={faulty:.1f}")
    print(f"single_fault_ratio={faulty / clean:.2f}")
    control(args.gateway, "reset")
    raw_ms, layer_ms = bench_overhead(args.gateway, args.raw)
    print(f"raw_ms={raw_ms:.3f}")
    print(f"layer_ms={layer_ms:.3f}")
    control(args.gateway, "reset")


if __name__ == "__main__":
    main()
