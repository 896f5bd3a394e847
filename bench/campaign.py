"""The campaign engine at scale, against the fake gateway in its own process.

    DATABASE_URL=... python bench/campaign.py setup --contacts N --gateway URL
    DATABASE_URL=... python bench/campaign.py preview
    DATABASE_URL=... python bench/campaign.py materialise
    DATABASE_URL=... python bench/campaign.py work          # one dispatch worker

`setup` loads N contacts in one group straight into the tables and makes a
BulkSMSRates account and a campaign, submitted, approved and sending; `preview` times
the audience rule's count with segments and cost (what submit and `campaign preview`
do); `materialise`
builds its Message rows; `work` runs the engine's own loop (campaigns.sending.
run_campaign) until nothing is left to claim. Each prints key=value lines:
seconds, and the process's own peak memory (VmHWM) in MB.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import Permission, User  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.datasets import FIRST, FIRST_NUMBER, LAST  # noqa: E402
from campaigns.models import Campaign  # noqa: E402
from campaigns.preview import estimate  # noqa: E402
from campaigns.sending import materialise, run_campaign  # noqa: E402
from contacts.bulk import bulk_insert  # noqa: E402
from contacts.jobs import refresh_planner_statistics  # noqa: E402
from contacts.models import Contact, Group  # noqa: E402
from messaging.models import ProviderAccount  # noqa: E402

NAME = "bench-campaign"
BODY = "Hi {{first_name|there}}, our spring sale starts today: 20% off with code SPRING."


def peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def setup(contacts: int, gateway: str, body: str = BODY) -> None:
    group = Group.objects.create(name=NAME)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    columns: tuple[str, ...] = ("phone", "first_name", "last_name", "email", "language", "timezone")
    columns += ("attributes", "consent_source", "created_at", "updated_at")
    step = 50_000
    for start in range(0, contacts, step):
        rows = [
            (
                f"+{FIRST_NUMBER + i}",
                FIRST[i % len(FIRST)],
                LAST[i % len(LAST)],
                "",
                "",
                "",
                "{}",
                "",
                now,
                now,
            )
            for i in range(start, min(start + step, contacts))
        ]
        with transaction.atomic():
            bulk_insert(Contact._meta.db_table, columns, rows)
    through = Contact.groups.through
    with connection.cursor() as cursor:
        table = connection.ops.quote_name(through._meta.db_table)
        contact_table = connection.ops.quote_name(Contact._meta.db_table)
        cursor.execute(
            f"INSERT INTO {table} (contact_id, group_id) "  # noqa: S608 - names from model meta
            f"SELECT id, %s FROM {contact_table}",
            [group.pk],
        )
    refresh_planner_statistics()  # as a real import does when it completes
    account = ProviderAccount(
        name=NAME,
        backend="bulksmsrates",
        base_url=gateway,
        sender="Herald",
        rate_limit=100,
        price_per_segment="0.03500",
    )
    account.set_credentials({"api_key": "bsms_test_key", "api_secret": "sk_test_secret"})
    account.save()
    campaign = Campaign.objects.create(name=NAME, provider_account=account, body=body)
    campaign.groups.add(group)
    # Through the doors a user takes: what is built is what was approved.
    marketer = User.objects.create_user("bench-marketer")
    approver = User.objects.create_user("bench-approver")
    approver.user_permissions.add(Permission.objects.get(codename="approve_campaign"))
    approver = User.objects.get(pk=approver.pk)
    campaign.submit(by=marketer)
    campaign.approve(by=approver)  # its wake-up waits in the queue: the bench runs the steps
    campaign.start()
    print(f"contacts={contacts}")


def preview() -> None:
    """The audience rule counted, segments and cost worked out, samples rendered."""
    figures = estimate(campaign())
    print(f"queued={figures.queued}")


def campaign() -> Campaign:
    return Campaign.objects.select_related("provider_account").get(name=NAME)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=("setup", "preview", "materialise", "work"))
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--gateway", default="")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.step == "setup":
        setup(args.contacts, args.gateway)
    elif args.step == "preview":
        preview()
    elif args.step == "materialise":
        stats = materialise(campaign())
        print(f"queued={stats['queued']}")
    else:
        run_campaign(campaign())
    print(f"seconds={time.perf_counter() - started:.3f}")
    print(f"peak_mb={peak_mb():.1f}")


if __name__ == "__main__":
    main()
