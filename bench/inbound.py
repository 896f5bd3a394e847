"""Signed inbound webhooks per second into one web worker, the worker applying them, and
keyword matching alone.

    DATABASE_URL=... SECRET_KEY=... python bench/inbound.py [--events N] [--clients N]

On a migrated database it makes a BulkSMSRates account with a webhook secret, CONTACTS
contacts each sent one message (so replies are put down to it), then starts gunicorn as
production does (config/gunicorn.conf.py, DEBUG off) with ONE sync worker on a loopback
port. It posts --events signed `whatsapp.message` events, signed beforehand, from
--clients connections at once so the worker is never idle: most plain replies, some
STOP in several languages, a few HELP and possible opt-outs, and one in ten a copy of
an earlier one (same webhook id, same event id under a new webhook id, or the same
message id under a new event id), which must be answered without being stored again.

The door is production's (HERALD_WEBHOOK_APPLY=queued): each event is checked, deduped
and recorded, and a worker applies it. No worker runs during the posting; afterwards this
process applies everything recorded, as the worker's task does, and that is timed too.
Then the same number of new events into a second worker started with the door inline
(applied within the request), for the comparison in the same run. Last, as many GET
/healthz against the same worker (the floor a request costs there), and in this process
messaging.keywords.match over a mixed corpus.

Prints key=value lines for bench/run.py:

- inbound_per_s:    signed events answered per second by the one worker (queued door)
- applied_per_s:    recorded events applied per second by one worker process
- inline_per_s:     signed events answered per second with the door inline
- healthz_per_s:    GET /healthz answered per second by the same worker
- inbound_share:    inbound_per_s / healthz_per_s
- keywords_per_s:   replies matched per second by messaging.keywords.match alone
- stored, duplicates: replies stored, and copies answered "duplicate" or "already stored"
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.utils import timezone  # noqa: E402
from django_q.models import OrmQ  # noqa: E402

from bench.web import gunicorn, request  # noqa: E402
from contacts.models import Contact  # noqa: E402
from messaging import keywords  # noqa: E402
from messaging.models import InboundMessage, Message, ProviderAccount, WebhookEvent  # noqa: E402
from messaging.webhooks import queue  # noqa: E402
from messaging.webhooks.bulksmsrates import sign  # noqa: E402

ACCOUNT = "bench-inbound"
WEBHOOK_SECRET = secrets.token_urlsafe(24)  # signs this run's requests only
CONTACTS = 2_000
FIRST_NUMBER = 447911210000
PATH = f"/webhooks/bulksmsrates/{ACCOUNT}/"

PLAIN = [
    "Thanks, see you Saturday!",
    "What time does the sale start?",
    "ok",
    "Is the 20% code valid online too?",
    "Merci, à bientôt",
    "¿Dónde está la tienda más cercana?",
    "👍",
    "Can I bring a friend?",
    "谢谢",
    "Non-stop deals? Sounds good",
    "don't stop the offers coming",
    "Wrong number, who is this?",
]
STOPS = ["STOP", "Stop!", " stop please", "Arrêt", "STOPP", "baja", "退订", "UNSUBSCRIBE"]
OTHERS = ["HELP", "info", "please stop texting me", "remove me from your list", "START"]


def setup() -> ProviderAccount:
    """The account, its contacts, and one sent message to each (for attribution)."""
    account, _ = ProviderAccount.objects.update_or_create(
        name=ACCOUNT, defaults={"backend": ProviderAccount.Backend.BULKSMSRATES}
    )
    account.set_credentials({"api_key": "k", "api_secret": "s", "webhook_secret": WEBHOOK_SECRET})
    account.save()
    if not Contact.objects.filter(phone=number(0)).exists():
        Contact.objects.bulk_create(
            Contact(phone=number(i), first_name=f"Bench{i}") for i in range(CONTACTS)
        )
        now = timezone.now()
        Message.objects.bulk_create(
            Message(
                provider_account=account,
                contact=contact,
                phone=contact.phone,
                body="Spring sale: 20% off this weekend",
                client_ref=Message.new_client_ref(),
                status=Message.Status.SENT,
                sent_at=now,
            )
            for contact in Contact.objects.filter(first_name__startswith="Bench")
        )
    return account


def number(i: int) -> str:
    return f"+{FIRST_NUMBER + i}"


def events(count: int, rng: random.Random) -> list[tuple[bytes, dict[str, str]]]:
    """`count` signed requests, one in ten a copy of an earlier one in one of three ways."""
    made: list[tuple[dict[str, object], str]] = []  # (payload, webhook id)
    requests = []
    for i in range(count):
        if made and i % 10 == 9:
            payload, webhook_id = copy_of(rng.choice(made), rng)
        else:
            roll = rng.random()
            text = rng.choice(PLAIN if roll < 0.85 else STOPS if roll < 0.95 else OTHERS)
            data = {
                "from": number(rng.randrange(CONTACTS)),
                "to": "+447700900123",
                "message_id": f"wamid.{uuid.uuid4().hex}",
                "text": text,
            }
            payload = {
                "id": str(uuid.uuid4()),
                "event": "whatsapp.message",
                "created_at": timezone.now().isoformat(),
                "data": data,
            }
            webhook_id = f"wh_{secrets.token_hex(8)}"
            made.append((payload, webhook_id))
        requests.append(signed(payload, webhook_id))
    return requests


def copy_of(
    original: tuple[dict[str, object], str], rng: random.Random
) -> tuple[dict[str, object], str]:
    """The provider retrying (same webhook id), re-signing (same event id), or sending the
    same message as a new event (same message id)."""
    payload, webhook_id = original
    way = rng.randrange(3)
    if way == 0:
        return payload, webhook_id
    if way == 1:
        return payload, f"wh_{secrets.token_hex(8)}"
    return {**payload, "id": str(uuid.uuid4())}, f"wh_{secrets.token_hex(8)}"


def signed(payload: dict[str, object], webhook_id: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload, ensure_ascii=False).encode()
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Webhook-Signature": sign(WEBHOOK_SECRET, stamp, body),
        "X-Webhook-Timestamp": stamp,
        "X-Webhook-Id": webhook_id,
    }
    return body, headers


def post_all(port: int, signed_requests: list[tuple[bytes, dict[str, str]]], clients: int) -> float:
    """Seconds to have every request answered; each must be 200."""

    def post(item: tuple[bytes, dict[str, str]]) -> None:
        status, content = request(port, "POST", PATH, *item)
        if status != 200:
            raise SystemExit(f"webhook answered {status}: {content[:200]!r}")

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(post, signed_requests))
    return time.perf_counter() - started


def apply_recorded() -> tuple[int, float]:
    """What the worker does with what the door recorded: (events applied, seconds)."""
    started = time.perf_counter()
    applied = queue.apply_pending()
    return applied, time.perf_counter() - started


def forget_replies() -> None:
    InboundMessage.objects.filter(provider_account__name=ACCOUNT).delete()
    WebhookEvent.objects.filter(provider_account__name=ACCOUNT).delete()
    # The door's nudges, queued for a worker that never ran.
    OrmQ.objects.all().delete()


def healthz_rate(port: int, count: int, clients: int) -> float:
    def get(_: int) -> None:
        status, _content = request(port, "GET", "/healthz", b"", {})
        if status != 200:
            raise SystemExit(f"/healthz answered {status}")

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(get, range(count)))
    return count / (time.perf_counter() - started)


def keyword_rate(count: int, rng: random.Random) -> float:
    """Replies matched per second over the webhooks' mix, one in ten a longer chat message."""
    corpus = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.1:
            corpus.append(" ".join(rng.choice(PLAIN) for _ in range(6)))
        else:
            corpus.append(rng.choice(PLAIN if roll < 0.85 else STOPS if roll < 0.95 else OTHERS))
    keywords.match("warm the table")
    started = time.perf_counter()
    for text in corpus:
        keywords.match(text)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--keywords", type=int, default=200_000)
    args = parser.parse_args()
    rng = random.Random(18)
    setup()
    forget_replies()
    mine = InboundMessage.objects.filter(provider_account__name=ACCOUNT)
    records = WebhookEvent.objects.filter(provider_account__name=ACCOUNT)

    with gunicorn({**os.environ, "HERALD_WEBHOOK_APPLY": "queued"}) as port:
        for body, headers in events(200, random.Random(1)):  # warm the worker up
            request(port, "POST", PATH, body, headers)
        apply_recorded()
        forget_replies()
        signed_requests = events(args.events, rng)
        seconds = post_all(port, signed_requests, args.clients)
        healthz = healthz_rate(port, args.events, args.clients)
    recorded = records.count()
    applied, apply_seconds = apply_recorded()
    if applied != recorded or records.pending().exists():
        raise SystemExit(f"{recorded} events recorded, {applied} applied")
    stored = mine.count()
    duplicates = args.events - stored
    if records.filter(outcome__contains="already stored").count() + args.events - recorded != (
        duplicates
    ):
        raise SystemExit("a copy was stored, or a reply lost")

    forget_replies()
    with gunicorn({**os.environ, "HERALD_WEBHOOK_APPLY": "inline"}) as port:
        for body, headers in events(200, random.Random(2)):
            request(port, "POST", PATH, body, headers)
        forget_replies()
        inline_seconds = post_all(port, events(args.events, rng), args.clients)

    inbound = args.events / seconds
    print(f"stored={stored}")
    print(f"duplicates={duplicates}")
    print(f"inbound_per_s={inbound:.1f}")
    print(f"applied_per_s={applied / apply_seconds:.1f}")
    print(f"inline_per_s={args.events / inline_seconds:.1f}")
    print(f"healthz_per_s={healthz:.1f}")
    print(f"inbound_share={inbound / healthz:.3f}")
    print(f"keywords_per_s={keyword_rate(args.keywords, rng):.0f}")


if __name__ == "__main__":
    main()
