"""Time the dashboard's pages with a million contacts and a million-message campaign.

    DATABASE_URL=... python bench/dashboard.py [--contacts N] [--repeat N]

On a fresh, migrated database it loads N contacts and a campaign to all of them the
way bench/campaign.py does (setup, then materialise), marks every message as handed
over (one in twenty failed, the rest delivered) in a few UPDATEs, then signs in a
superuser with django.test.Client and requests each page --repeat times. Prints
key=value lines for bench/run.py: `<url name>_ms` (median server time),
`<url name>_cold_ms` (the same with the cache emptied before each request: every count
made afresh) and `<url name>_status` (the last answer's HTTP status).
The campaign list is timed among LIST_CAMPAIGNS other campaigns of every status.
A second run on the same database reuses the data already loaded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Value  # noqa: E402
from django.db.models.functions import Mod  # noqa: E402
from django.db.models.lookups import Exact  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.urls import Resolver404, resolve  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench import campaign as campaign_bench  # noqa: E402
from campaigns.models import Campaign  # noqa: E402
from campaigns.sending import materialise  # noqa: E402
from contacts.models import Contact  # noqa: E402
from messaging.models import Message  # noqa: E402

#: Unreachable on purpose: nothing is sent, the messages are marked as sent directly.
NO_GATEWAY = "http://127.0.0.1:9"
FAILED_EVERY = 20


def load(contacts: int) -> Campaign:
    """The bench campaign with its messages handed over, loading it first if need be."""
    if not Campaign.objects.filter(name=campaign_bench.NAME).exists():
        started = time.perf_counter()
        campaign_bench.setup(contacts, NO_GATEWAY)
        stats = materialise(campaign_bench.campaign())
        mark_handed_over(campaign_bench.campaign())
        print(f"queued={stats['queued']}")
        print(f"load_seconds={time.perf_counter() - started:.1f}")
    return campaign_bench.campaign()


def mark_handed_over(campaign: Campaign) -> None:
    """Every message sent and charged; one in FAILED_EVERY failed, others delivered.

    Through the engine's own status moves, each one set-based UPDATE of the campaign.
    """
    now = timezone.now()
    messages = Message.objects.filter(campaign=campaign)
    # Charged as the provider answers, before they are recorded sent (as the engine does).
    messages.update(cost=campaign.provider_account.price_per_segment)
    messages.mark_sending(uuid.uuid4(), lease_ends=now)
    messages.mark_sent(batch_id="", at=now)
    fails = Exact(Mod("pk", Value(FAILED_EVERY)), 0)
    messages.filter(fails).record_report(Message.Status.FAILED, occurred_at=now)
    messages.exclude(fails).record_report(Message.Status.DELIVERED, occurred_at=now)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # as autovacuum would soon after a bulk change
            cursor.execute(f"ANALYZE {connection.ops.quote_name(Message._meta.db_table)}")


def page_name(url: str) -> str:
    try:
        return resolve(url.split("?")[0]).url_name or url.strip("/")
    except Resolver404:
        return url.strip("/").replace("/", "_") or "home"


def time_page(client: Client, url: str, repeat: int, cold: bool = False) -> tuple[float, int]:
    """Median milliseconds of `repeat` requests (after one to warm caches), and the status.

    `cold`: the cache is emptied before each request (not timed), so every count, chart
    and report on the page is made afresh: the page as if there were no cache."""
    status = client.get(url, secure=True).status_code
    timings = []
    for _ in range(repeat):
        if cold:
            cache.clear()
        started = time.perf_counter()
        status = client.get(url, secure=True).status_code
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings), status


def time_both_ways(client: Client, name: str, url: str, repeat: int) -> None:
    """Print the page's median with the cache (`<name>_ms`) and without (`<name>_cold_ms`)."""
    median, status = time_page(client, url, repeat)
    print(f"{name}_ms={median:.1f}")
    print(f"{name}_status={status}")
    cold, _ = time_page(client, url, repeat, cold=True)
    print(f"{name}_cold_ms={cold:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    setup_test_environment()
    campaign = load(args.contacts)
    user, _ = User.objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    urls = ["/", f"/campaigns/{campaign.pk}/", f"/campaigns/{campaign.pk}/progress/"]
    urls += ["/approvals/", "/contacts/", "/reports/", "/campaigns/new/"]
    for url in urls:
        time_both_ways(client, page_name(url), url, args.repeat)
    for name, url in [*contact_urls(args.contacts), *campaign_list_urls(campaign)]:
        time_both_ways(client, name, url, args.repeat)


def contact_urls(contacts: int) -> list[tuple[str, str]]:
    """Contact search (a number as typed nationally, a name) and the page of a contact
    in the middle of the table, with its message of the bench campaign."""
    e164 = f"+{campaign_bench.FIRST_NUMBER + contacts // 2}"
    contact = Contact.objects.get(phone=e164)
    national = "0" + e164[3:]  # +44 74... typed as 074...
    return [
        ("contact_search", f"/contacts/search/?q={national}"),
        ("contact_search_name", "/contacts/search/?q=Ada"),
        ("contact", f"/contacts/{contact.pk}/"),
    ]


#: Other campaigns beside the bench one, so the list has pages and every status a count.
LIST_CAMPAIGNS = 1_000


def campaign_list_urls(campaign: Campaign) -> list[tuple[str, str]]:
    """The campaign list: all of them (the million-message campaign changed last, so on
    the first page with its counts), one status, and a search by name."""
    others = Campaign.objects.exclude(pk=campaign.pk)
    if not others.exists():
        statuses = [s for s in Campaign.Status.values if s != Campaign.Status.SENDING]
        Campaign.objects.bulk_create(
            Campaign(
                name=f"bench-list {i}",
                provider_account=campaign.provider_account,
                body="Hi",
                status=statuses[i % len(statuses)],
            )
            for i in range(LIST_CAMPAIGNS)
        )
        Campaign.objects.filter(pk=campaign.pk).update(updated_at=timezone.now())
    return [
        ("campaigns", "/campaigns/"),
        ("campaigns_sending", "/campaigns/?status=sending"),
        ("campaigns_search", "/campaigns/?q=bench-list+99"),
    ]


if __name__ == "__main__":
    with override_settings(
        SECURE_SSL_REDIRECT=False,
        ALLOWED_HOSTS=["*"],
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
    ):
        main()
