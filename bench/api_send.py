"""Transactional sends over the API: how many a second are accepted, then sent.

    python bench/api_send.py [--seconds S] [--runs N] [--db sqlite,postgres]
                             [--clients N] [--web-workers N]

On a fresh database: a simulator provider account (no pace of its own to wait for), a
superuser's token with messages:send, and gunicorn as production runs it (DEBUG off,
--web-workers sync workers: 2, one per core) on a loopback port, HERALD_API_RATE high
(the figure is the send path's, not the pace's). --clients (8) threads each POST
`/api/v1/messages` one after another for --seconds (5) in all: a number of its own and a text
of its own per request, each with its own Idempotency-Key (as an integration retrying
safely sends them). Accepted/s counts the 202 answers over the time from the first
request to the last answer; any other answer stops the bench. For reference, the same
clients GET /api/v1/token (the cheapest authenticated route) for half as long: what
the machine allows any API request at that moment (it is shared; read the two together,
and their ratio). The two take turns, three of each, so both see the same neighbours.
Then one worker process sends every queued message through the engine
(messaging.transactional.send_due: claim, the opt-out check, the simulator, record),
timed from start to the last one sent. Checks that as many messages exist as were
accepted, and that all were sent. Prints the medians (target: >= 200 accepted/s).

For bench/run.py: `api_send_figures(kind, recipients)` and `bench_api_send(db,
recipients, figures)` have the shapes `per_database` takes (recipients is not used: the
bench runs for a time, not a count). Steps run inside a database (DATABASE_URL set):
`setup` (prints token=), `drain` (prints sent= seconds=) and `check` (prints messages=
sent=).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.web import request, web_server  # noqa: E402

if TYPE_CHECKING:
    from bench.run import Database, Figure

SECONDS = 5.0
CLIENTS = 8
WEB_WORKERS = 2
#: Sends and token checks take turns this many times a run.
ROUNDS = 3
TARGET = 200.0
#: Valid UK mobiles (libphonenumber refuses Ofcom's drama range): +44 7911 2xxxxx.
FIRST_NUMBER = 447911200000


def api_send_figures(kind: str, recipients: int = 0) -> list[tuple[str, Figure, float | None]]:
    from bench.run import Figure

    return [
        (
            "accepted_s",
            Figure(
                f"transactional sends accepted over HTTP ({CLIENTS} clients, Idempotency-Key)",
                kind,
                "req/s",
                f">= {TARGET:g}",
                True,
            ),
            TARGET,
        ),
        (
            "token_s",
            Figure(
                "GET /api/v1/token, same server and clients", kind, "req/s", "(reference)", True
            ),
            None,
        ),
        (
            "share",
            Figure("sends accepted / GET /api/v1/token", kind, "x", "(measured)", True),
            None,
        ),
        (
            "sent_s",
            Figure("then sent by one worker (simulator)", kind, "msgs/s", "(measured)", True),
            None,
        ),
    ]


def bench_api_send(
    db: Database,
    recipients: int,
    figures: dict[str, Figure],
    seconds: float = SECONDS,
    clients: int = CLIENTS,
    web_workers: int = WEB_WORKERS,
) -> None:
    """One run on a fresh database: POST for `seconds`, then send what was accepted."""
    db.fresh()
    token = run_step(db, "setup")["token"]
    accepted = checked_tokens = 0
    elapsed = token_elapsed = 0.0
    numbers = itertools.count()
    with web_server(db, web_workers, "1000000/min") as port:
        # In ROUNDS turns: sends, then the same server and clients on the cheapest
        # authenticated route (what this machine allows any API request just then). The
        # machine is shared: turns side by side see the same neighbours, so the ratio holds.
        for _ in range(ROUNDS):
            done, took = post_for(port, token, seconds / ROUNDS, clients, numbers)
            accepted, elapsed = accepted + done, elapsed + took
            done, took = get_for(port, token, seconds / ROUNDS / 2, clients)
            checked_tokens, token_elapsed = checked_tokens + done, token_elapsed + took
    drained = numbers_of(run_step(db, "drain"))
    checked = numbers_of(run_step(db, "check"))
    if checked["messages"] != accepted or checked["sent"] != accepted:
        raise SystemExit(f"accepted {accepted}, but the database holds {checked}")
    figures["accepted_s"].samples.append(accepted / elapsed)
    figures["token_s"].samples.append(checked_tokens / token_elapsed)
    figures["share"].samples.append((accepted / elapsed) / (checked_tokens / token_elapsed))
    figures["sent_s"].samples.append(drained["sent"] / drained["seconds"])
    print(
        f"  [{db.kind}] accepted {accepted} in {elapsed:.1f} s: {accepted / elapsed:,.0f}/s "
        f"(GET /api/v1/token {checked_tokens / token_elapsed:,.0f}/s); "
        f"sent in {drained['seconds']:.1f} s: {drained['sent'] / drained['seconds']:,.0f}/s",
        file=sys.stderr,
    )


def post_for(
    port: int, token: str, seconds: float, clients: int, counter: Iterator[int]
) -> tuple[int, float]:
    """(202 answers, seconds from the first request to the last answer); each request's
    number and key the next of `counter`."""
    counting = threading.Lock()

    def next_number() -> int:
        with counting:
            return next(counter)

    def client(_: int) -> int:
        done = 0
        stop_at = started + seconds
        while time.perf_counter() < stop_at:
            i = next_number()
            body = json.dumps({"to": f"+{FIRST_NUMBER + i}", "body": f"Your code is {i:06d}"})
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Idempotency-Key": f"bench-{i}",
            }
            status, answer = request(port, "POST", "/api/v1/messages", body.encode(), headers)
            if status != 202:
                raise SystemExit(f"POST /api/v1/messages answered {status}: {answer[:300]!r}")
            done += 1
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        accepted = sum(pool.map(client, range(clients)))
    return accepted, time.perf_counter() - started


def get_for(port: int, token: str, seconds: float, clients: int) -> tuple[int, float]:
    """(200 answers of GET /api/v1/token, seconds from the first request to the last)."""
    headers = {"Authorization": f"Bearer {token}"}

    def client(_: int) -> int:
        done = 0
        while time.perf_counter() < started + seconds:
            status, answer = request(port, "GET", "/api/v1/token", b"", headers)
            if status != 200:
                raise SystemExit(f"GET /api/v1/token answered {status}: {answer[:300]!r}")
            done += 1
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        answered = sum(pool.map(client, range(clients)))
    return answered, time.perf_counter() - started


def run_step(db: Database, step: str) -> dict[str, str]:
    """`bench/api_send.py <step>` inside `db`: its key=value lines."""
    result = subprocess.run(
        [sys.executable, __file__, step], cwd=ROOT, env=db.env(), capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"{step} failed:\n{result.stderr}")
    return dict(line.split("=", 1) for line in result.stdout.split() if "=" in line)


def numbers_of(values: dict[str, str]) -> dict[str, float]:
    return {key: float(value) for key, value in values.items()}


# Steps run inside a database.


def setup_step() -> None:
    """A superuser, the simulator account, and a token that may send: printed as token=..."""
    from django.contrib.auth.models import User

    from api.models import ApiToken, Scope
    from messaging.models import ProviderAccount

    user = User.objects.create_superuser("bench-send", password=None)
    ProviderAccount.objects.create(
        name="sim",
        backend=ProviderAccount.Backend.SIMULATOR,
        sender="Herald",
        rate_limit=0,  # no pace: the figure is the engine's
        price_per_segment="0.03000",
        options={"delivery_delay": 0, "seed": "bench"},
    )
    _token, text = ApiToken.objects.issue(user, "bench", [Scope.MESSAGES_SEND])
    print(f"token={text}")


def drain_step() -> None:
    """Send every queued transactional message, as a worker's sender task does."""
    from messaging.transactional import send_due

    started = time.perf_counter()
    sent = 0
    while tried := send_due():
        sent += tried
    print(f"sent={sent} seconds={time.perf_counter() - started:.3f}")


def check_step() -> None:
    from messaging.models import Message

    messages = Message.objects.filter(is_transactional=True)
    print(f"messages={messages.count()} sent={messages.filter(status='sent').count()}")


# Standalone.


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("step", nargs="?", choices=("setup", "drain", "check"))
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--web-workers", type=int, default=WEB_WORKERS)
    args = parser.parse_args()
    if args.step:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()
        {"setup": setup_step, "drain": drain_step, "check": check_step}[args.step]()
        return
    standalone(args)


def standalone(args: argparse.Namespace) -> None:
    import shutil

    from bench.run import Database

    table: list[tuple[str, Any]] = []
    for kind in args.db.split(","):
        if not Database.available(kind):
            print(f"skipping {kind}: not reachable", file=sys.stderr)
            continue
        db = Database(kind)
        rows = api_send_figures(kind)
        figures = {key: figure for key, figure, _ in rows}
        try:
            for run in range(args.runs):
                print(f"{kind}: API send run {run + 1} of {args.runs}", file=sys.stderr)
                bench_api_send(db, 0, figures, args.seconds, args.clients, args.web_workers)
        finally:
            shutil.rmtree(db.tmp, ignore_errors=True)
        table += [(kind, figure) for _, figure, _ in rows]
    print(f"\ntransactional sends over the API: {args.seconds:g} s a run, median of {args.runs}")
    print("| figure | database | median | runs | target |")
    print("| --- | --- | ---: | --- | --- |")
    for kind, figure in table:
        digits = 2 if figure.unit == "x" else 0
        runs = ", ".join(f"{sample:,.{digits}f}" for sample in figure.samples)
        median = f"{statistics.median(figure.samples):,.{digits}f} {figure.unit}"
        print(f"| {figure.name} | {kind} | {median} | {runs} | {figure.target} |")


if __name__ == "__main__":
    main()
