"""Outgoing webhooks: deliveries per second to a receiver on loopback, and what the outbox
costs a status move.

    DATABASE_URL=... SECRET_KEY=... python bench/webhooks.py [--deliveries N] [--moves N]

On a migrated database: a receiver in a process of its own (a threading HTTP/1.1 server
keeping connections alive, as an integration's endpoint would),
checking every signature with the standardwebhooks library; one active subscription to it;
--deliveries message.delivered events written to the outbox by the code the engine's moves
call (api.outgoing.events.record, timed: outbox_rows_per_s). Then the sender posts them as
its task does (api.outgoing.delivery.deliver_due: batches of 256 over 32 threads and one
keep-alive session, every try recorded), timed until none is left. Checks that the receiver
got each event once, every signature verified, and every row is delivered.

Last, what writing the outbox costs sending: --moves messages moved sent -> delivered in one
statement (a batch of delivery reports, MessageQuerySet.record_report) with nobody
subscribed, and again with a subscription to message.delivered, which reads each row back
and writes a delivery each in the same transaction; alternating, three rounds.

Prints key=value lines (bench/run.py's format):

- deliveries_per_s:    deliveries posted and recorded per second (target >= 500)
- outbox_rows_per_s:   outbox rows written per second
- move_nobody_ms:      the --moves messages' move with nobody subscribed (median of 3)
- move_subscribed_ms:  the same with a subscriber (median of 3)
- move_share:          move_subscribed_ms / move_nobody_ms

`command()` and `FIGURES` are for bench/run.py: the line to run on a database, and each
figure's description.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.web import free_port  # noqa: E402

#: (key, what it measures, unit, target, higher is better, limit or None), for bench/run.py.
FIGURES = [
    (
        "deliveries_per_s",
        "outgoing webhooks posted to a loopback receiver, one worker",
        "deliveries/s",
        ">= 500",
        True,
        500.0,
    ),
    ("outbox_rows_per_s", "  outbox rows written", "rows/s", "-", True, None),
    (
        "move_nobody_ms",
        "10,000 messages sent -> delivered, nobody subscribed",
        "ms",
        "-",
        False,
        None,
    ),
    (
        "move_subscribed_ms",
        "  the same, a subscriber (outbox rows written)",
        "ms",
        "-",
        False,
        None,
    ),
    ("move_share", "  subscribed / nobody", "x", "(no target)", False, None),
]
ROUNDS = 3


def command(python: str = sys.executable, deliveries: int = 10_000) -> list[str]:
    """The line bench/run.py runs on a migrated database (DATABASE_URL in its environment)."""
    return [python, str(Path(__file__).resolve()), "--deliveries", str(deliveries)]


def receive(port: int) -> None:
    """The receiver process: an asyncio HTTP/1.1 server keeping connections alive, so one
    process answers far faster than the sender posts (a threading server was the bottleneck
    on two cores). Checks every signature with standardwebhooks, keeps each webhook-id,
    answers 200; GET / answers what it got."""
    import asyncio

    from standardwebhooks import Webhook, WebhookVerificationError

    signer = Webhook(os.environ["BENCH_WEBHOOK_SECRET"])
    seen: set[str] = set()
    tally = {"received": 0, "verified": 0}

    def answer(status: str, body: bytes) -> bytes:
        head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n\r\n"
        return head.encode() + body

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request := await reader.readline():
                headers = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                if request.startswith(b"GET"):
                    counts = {**tally, "unique": len(seen)}
                    writer.write(answer("200 OK", json.dumps(counts).encode()))
                    continue
                tally["received"] += 1
                seen.add(headers.get("webhook-id", ""))
                try:
                    signer.verify(body, headers)
                    tally["verified"] += 1
                except WebhookVerificationError:
                    pass
                writer.write(answer("200 OK", b"ok"))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def start_receiver(secret: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "BENCH_WEBHOOK_SECRET": secret}
    process = subprocess.Popen(
        [sys.executable, __file__, "receive", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    ends = time.monotonic() + 30
    while time.monotonic() < ends:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the receiver did not start")


def stats(base: str) -> dict[str, int]:
    with urllib.request.urlopen(base + "/", timeout=30) as answer:  # noqa: S310 - loopback
        return dict(json.loads(answer.read()))


def fan_out(deliveries: int) -> dict[str, float]:
    from django.db import transaction

    from api.models import WebhookDelivery, WebhookSubscription, interest
    from api.outgoing import delivery
    from api.outgoing.events import message_data, record
    from messaging.models import TaskLease

    subscription, secret = WebhookSubscription.objects.create_with_secret(
        "http://127.0.0.1:9/", ["message.delivered"], description="bench"
    )
    receiver, base = start_receiver(secret)
    try:
        WebhookSubscription.objects.filter(pk=subscription.pk).update(url=base + "/hooks")
        interest.forget()
        # No nudge's task may post them first: the timing below is the sender's alone.
        TaskLease.objects.take(delivery.LEASE, "bench", 3600)
        rows = [
            (n, None, None, f"+4479112{n:05d}", "sms", f"prov-{n}", "", False)
            for n in range(1, deliveries + 1)
        ]
        started = time.perf_counter()
        with transaction.atomic():
            written = record("message.delivered", [message_data("delivered", r) for r in rows])
        outbox_seconds = time.perf_counter() - started

        started = time.perf_counter()
        tried = 0
        while WebhookDelivery.objects.filter(status="pending").exists():
            tried += delivery.deliver_due()
        seconds = time.perf_counter() - started
        got = stats(base)
    finally:
        receiver.terminate()
        receiver.wait()
    delivered = WebhookDelivery.objects.filter(status="delivered").count()
    if not (written == tried == delivered == got["unique"] == got["verified"] == deliveries):
        raise SystemExit(f"written={written} tried={tried} delivered={delivered} got={got}")
    return {
        "deliveries": float(deliveries),
        "seconds": seconds,
        "deliveries_per_s": deliveries / seconds,
        "outbox_rows_per_s": written / outbox_seconds,
    }


def move_costs(moves: int) -> dict[str, float]:
    """The same move of `moves` sent messages to delivered, with nobody subscribed and with
    a subscriber, alternating."""
    from django.db import transaction
    from django.utils import timezone

    from api.models import WebhookSubscription, interest
    from messaging.models import Message, ProviderAccount

    account, _ = ProviderAccount.objects.get_or_create(name="bench-mem", backend="locmem")
    subscription, _secret = WebhookSubscription.objects.create_with_secret(
        "http://127.0.0.1:9/", ["message.delivered"], is_active=False
    )
    timings: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(ROUNDS):
        for subscribed in (False, True) if round_ % 2 == 0 else (True, False):
            WebhookSubscription.objects.filter(pk=subscription.pk).update(is_active=subscribed)
            interest.forget()
            interest.wants("message.delivered")  # read before the clock starts, as in a worker
            now = timezone.now()
            batch = [
                Message(
                    provider_account=account,
                    phone=f"+4479113{n:05d}",
                    body="Hi",
                    client_ref=Message.new_client_ref(),
                    status=Message.Status.SENT,
                    sent_at=now,
                )
                for n in range(moves)
            ]
            made = Message.objects.bulk_create(batch, batch_size=2000)
            ids = [m.pk for m in made]
            started = time.perf_counter()
            with transaction.atomic():
                moved = Message.objects.among(ids).record_report(Message.Status.DELIVERED, now)
            timings[subscribed].append((time.perf_counter() - started) * 1000)
            if moved != moves:
                raise SystemExit(f"moved {moved} of {moves}")
    nobody, subscribed_ms = (statistics.median(timings[k]) for k in (False, True))
    return {
        "move_nobody_ms": nobody,
        "move_subscribed_ms": subscribed_ms,
        "move_share": subscribed_ms / nobody,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", nargs="?", default="bench", choices=("bench", "receive"))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--moves", type=int, default=10_000)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if args.mode == "receive":
        receive(args.port)
        return
    import django

    django.setup()
    values: dict[str, Any] = {**fan_out(args.deliveries), **move_costs(args.moves)}
    for key, value in values.items():
        print(f"{key}={value:.3f}")


if __name__ == "__main__":
    main()
