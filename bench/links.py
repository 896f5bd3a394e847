"""Short links at scale: building a campaign with a link per recipient, and the redirect.

    DATABASE_URL=... python bench/links.py build --contacts N [--links]
    DATABASE_URL=... python bench/links.py redirect [--requests N] [--clients N]

`build` loads N contacts and a campaign whose text carries one URL (bench/campaign.py's
setup, submitted, approved and sending), then times its build (campaigns.sending.
materialise). With --links, HERALD_LINK_BASE is set, so every queued recipient gets a
short link of their own (a Link row each); without it the same text goes out as written.
Prints seconds= and links= (Link rows made).

`redirect` (after a `build --links`) starts gunicorn as production does
(config/gunicorn.conf.py, DEBUG off) with ONE sync worker on a loopback port, as
bench/inbound.py does, and sends --requests GET /r/<code> for codes drawn at random
from the campaign's links, from --clients connections at once, each counted as a click
(a phone's user agent); then as many GET /healthz to the same worker. The two are taken
in three alternating rounds, so drift of the shared machine falls on both alike. Checks
that every redirect answered 302 to its link's destination and that every click was
counted (Click rows, and the campaign's kept count of clicks). Prints:

- redirect_per_s:   GET /r/<code> answered (and the click recorded) per second
- healthz_per_s:    GET /healthz answered per second by the same worker
- redirect_share:   redirect_per_s / healthz_per_s
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # before bench/, whose dashboard.py is not the app
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
BASE = "https://hrl.example/"
if "--links" in sys.argv or "redirect" in sys.argv:
    os.environ["HERALD_LINK_BASE"] = BASE

import django  # noqa: E402

django.setup()

from bench.campaign import campaign, setup  # noqa: E402
from bench.inbound import healthz_rate  # noqa: E402
from bench.web import gunicorn, request  # noqa: E402
from campaigns.sending import materialise  # noqa: E402
from messaging import counts  # noqa: E402
from messaging.models import Click, Link  # noqa: E402

BODY = (
    "Hi {{first_name|there}}, our spring sale starts today: 20% off with code SPRING at "
    "https://shop.example.com/spring-sale?ref=sms"
)
PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
ROUNDS = 3


def build(contacts: int) -> None:
    setup(contacts, "http://127.0.0.1:9", body=BODY)
    started = time.perf_counter()
    stats = materialise(campaign())
    seconds = time.perf_counter() - started
    print(f"queued={stats['queued']}")
    print(f"links={Link.objects.count()}")
    print(f"seconds={seconds:.3f}")


def redirect_rate(port: int, codes: list[str], clients: int) -> float:
    def get(code: str) -> None:
        status, _ = request(port, "GET", f"/r/{code}", b"", {"User-Agent": PHONE})
        if status != 302:
            raise SystemExit(f"/r/{code} answered {status}")

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(get, codes))
    return len(codes) / (time.perf_counter() - started)


def redirect(requests: int, clients: int) -> None:
    rng = random.Random(20)
    total = Link.objects.count()
    if not total:
        raise SystemExit("no links: run `build --links` first")
    step = max(total // (requests * (ROUNDS + 1)), 1)
    pool = list(Link.objects.order_by("pk").values_list("code", flat=True)[::step])
    rng.shuffle(pool)
    before = Click.objects.count()
    kept_before = counts.click_counts([campaign().pk])[campaign().pk]["total"]
    redirect_seconds = healthz_seconds = 0.0
    sent = 0
    with gunicorn({**os.environ, "HERALD_WEBHOOK_APPLY": "queued"}) as port:
        redirect_rate(port, pool[:200], clients)  # warm the worker up
        healthz_rate(port, 200, clients)
        for round_ in range(ROUNDS):
            codes = pool[200 + round_ * requests : 200 + (round_ + 1) * requests]
            redirect_seconds += len(codes) / redirect_rate(port, codes, clients)
            healthz_seconds += len(codes) / healthz_rate(port, len(codes), clients)
            sent += len(codes)
    clicks = Click.objects.count() - before
    kept = counts.click_counts([campaign().pk])[campaign().pk]["total"] - kept_before
    if clicks != sent + 200 or kept != clicks:
        raise SystemExit(f"{sent + 200} clicks made, {clicks} recorded, {kept} counted")
    redirect_per_s = sent / redirect_seconds
    healthz_per_s = sent / healthz_seconds
    print(f"clicks={clicks}")
    print(f"redirect_per_s={redirect_per_s:.1f}")
    print(f"healthz_per_s={healthz_per_s:.1f}")
    print(f"redirect_share={redirect_per_s / healthz_per_s:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=("build", "redirect"))
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--links", action="store_true")
    parser.add_argument("--requests", type=int, default=1_000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    if args.step == "build":
        build(args.contacts)
    else:
        redirect(args.requests, args.clients)


if __name__ == "__main__":
    main()
