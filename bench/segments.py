"""Segments at scale: counting one, and building a campaign from one.

    DATABASE_URL=... python bench/segments.py setup --contacts N
    DATABASE_URL=... python bench/segments.py count [--repeat N]
    DATABASE_URL=... python bench/segments.py build-group
    DATABASE_URL=... python bench/segments.py build-segment

`setup` loads N contacts straight into the tables, each with custom attributes (city,
plan, age, date joined) and a number from one of five countries, its `country` column
worked out from the number as the app does (contacts.phones.country_of, number by
number); a group of everyone, a group of about half and a smaller one; an account and
the two segments below. `count` times COUNT_SEGMENT's count (attribute + country +
group) --repeat times in this process, as the segment builder's live count asks it.
`build-group` and `build-segment` each make a campaign to the same audience, everyone,
one by the group of everyone and one by EVERYONE_SEGMENT, take it through submit,
approve and start as a user would, and time only the build of its messages
(campaigns.sending.materialise); the messages and the campaign are then deleted, so
each build starts from the same tables. Each step prints key=value lines.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import Permission, User  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.datasets import FIRST, LAST  # noqa: E402
from campaigns.models import Campaign  # noqa: E402
from campaigns.segments import Segment  # noqa: E402
from campaigns.sending import materialise  # noqa: E402
from contacts.bulk import bulk_insert  # noqa: E402
from contacts.jobs import refresh_planner_statistics  # noqa: E402
from contacts.models import Contact, Group  # noqa: E402
from contacts.phones import country_of  # noqa: E402
from messaging.models import Message, ProviderAccount  # noqa: E402

NAME = "bench-segments"
EVERYONE_GROUP = "Everyone"
HALF_GROUP = "Spring offer"
#: The segment builder's example: gold-plan-style targeting on three kinds of rule.
COUNT_SEGMENT = (
    "Leeds, GB, spring offer",
    ["attr.city = Leeds", "country = GB", f"group = {HALF_GROUP}"],
)
#: Everyone, as a marketer would say it: every customer on one of the plans.
EVERYONE_SEGMENT = ("On a plan", ["attr.plan in gold,silver,bronze"])
BODY = "Hi {{first_name|there}}, spring is here: 20% off for you with code SPRING."
SEED = 17

#: (country, share of contacts, first number, cities of its contacts).
COUNTRIES = (
    ("GB", 0.80, 447400000000, ("London", "Leeds", "Manchester", "Bristol", "Cardiff",
                                "Glasgow", "Belfast", "Birmingham")),
    ("FR", 0.06, 33612000000, ("Paris", "Lyon")),
    ("DE", 0.06, 4915100000000, ("Berlin",)),
    ("IE", 0.05, 353870000000, ("Dublin",)),
    ("US", 0.03, 12022000000, ("New York",)),
)  # fmt: skip
PLANS = ("gold", "silver", "bronze")
FIRST_JOINED = date(2015, 1, 1)


def contact_rows(start: int, stop: int, now: object) -> list[tuple[object, ...]]:
    """Contacts start..stop-1: the same ones on every run, whatever the chunking."""
    rows: list[tuple[object, ...]] = []
    for i in range(start, stop):
        rng = random.Random(SEED * 10_000_019 + i)
        code, first_number, cities = _country(rng.random())
        phone = f"+{first_number + i}"
        joined = FIRST_JOINED + timedelta(days=rng.randrange(3650))
        attributes = {
            "city": rng.choice(cities),
            "plan": rng.choice(PLANS),
            "age": str(rng.randint(18, 80)),
            "joined": joined.isoformat(),
        }
        first, last = FIRST[i % len(FIRST)], LAST[i % len(LAST)]
        # country_of for each number, as Contact.save and the importer do: no shortcut.
        rows.append(
            (
                phone,
                country_of(phone),
                first,
                last,
                "",
                "",
                "",
                json.dumps(attributes),
                "",
                now,
                now,
            )
        )
        assert rows[-1][1] == code, f"{code} numbers must read as {code}"
    return rows


def _country(draw: float) -> tuple[str, int, tuple[str, ...]]:
    for code, share, first_number, cities in COUNTRIES:
        if draw < share:
            return code, first_number, cities
        draw -= share
    return COUNTRIES[0][0], COUNTRIES[0][2], COUNTRIES[0][3]


def setup(contacts: int) -> None:
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    columns: tuple[str, ...] = (
        "phone",
        "country",
        "first_name",
        "last_name",
        "email",
        "language",
        "timezone",
    )
    columns += ("attributes", "consent_source", "created_at", "updated_at")
    step = 20_000
    for start in range(0, contacts, step):
        rows = contact_rows(start, min(start + step, contacts), now)
        with transaction.atomic():
            bulk_insert(Contact._meta.db_table, columns, rows)
    add_members(Group.objects.create(name=EVERYONE_GROUP), "")
    add_members(Group.objects.create(name=HALF_GROUP), "WHERE id %% 2 = 0")
    add_members(Group.objects.create(name="Newsletter"), "WHERE id %% 10 = 3")
    refresh_planner_statistics()  # as a real import does when it completes
    for name, rules in (COUNT_SEGMENT, EVERYONE_SEGMENT):
        segment = Segment(name=name, rules=rules)
        segment.full_clean()
        segment.save()
    account = ProviderAccount(
        name=NAME,
        backend="bulksmsrates",
        base_url="http://127.0.0.1:9",  # nothing is sent
        sender="Herald",
        rate_limit=100,
        price_per_segment="0.03500",
    )
    account.set_credentials({"api_key": "bsms_test_key", "api_secret": "sk_test_secret"})
    account.save()
    User.objects.create_user("bench-marketer")
    approver = User.objects.create_user("bench-approver")
    approver.user_permissions.add(Permission.objects.get(codename="approve_campaign"))
    print(f"contacts={contacts}")


def add_members(group: Group, where: str) -> None:
    through = connection.ops.quote_name(Contact.groups.through._meta.db_table)
    contacts = connection.ops.quote_name(Contact._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {through} (contact_id, group_id) "  # noqa: S608 - names from model meta
            f"SELECT id, %s FROM {contacts} {where}",
            [group.pk],
        )


def count(repeat: int) -> None:
    """The three-rule segment counted `repeat` times: the median, and how many it matched."""
    segment = Segment.objects.get(name=COUNT_SEGMENT[0])
    timings, matched = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        matched = segment.count()
        timings.append(time.perf_counter() - started)
    print(f"matched={matched}")
    print(f"seconds={statistics.median(timings):.3f}")


def build(by: str) -> None:
    """A campaign to everyone, by the group or by the segment: its build timed, then undone."""
    campaign = Campaign.objects.create(
        name=f"{NAME}-{by}-{uuid.uuid4().hex[:8]}",
        provider_account=ProviderAccount.objects.get(name=NAME),
        body=BODY,
    )
    if by == "group":
        campaign.groups.add(Group.objects.get(name=EVERYONE_GROUP))
    else:
        campaign.segments.add(Segment.objects.get(name=EVERYONE_SEGMENT[0]))
    campaign.submit(by=User.objects.get(username="bench-marketer"))
    campaign.approve(by=User.objects.get(username="bench-approver"))
    campaign.start()
    started = time.perf_counter()
    stats = materialise(Campaign.objects.select_related("provider_account").get(pk=campaign.pk))
    seconds = time.perf_counter() - started
    forget(campaign)
    print(f"queued={stats['queued']}")
    print(f"seconds={seconds:.3f}")


def forget(campaign: Campaign) -> None:
    """Delete the campaign and its messages, so the next build writes to the same tables."""
    table = connection.ops.quote_name(Message._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE campaign_id = %s", [campaign.pk])  # noqa: S608
    campaign.delete()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # as autovacuum would soon after a bulk delete
            cursor.execute(f"VACUUM ANALYZE {table}")


def main() -> None:
    parser = argparse.ArgumentParser()
    steps = ("setup", "count", "build-group", "build-segment")
    parser.add_argument("step", choices=steps)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if args.step == "setup":
        started = time.perf_counter()
        setup(args.contacts)
        print(f"setup_seconds={time.perf_counter() - started:.1f}")
    elif args.step == "count":
        count(args.repeat)
    else:
        build(args.step.removeprefix("build-"))


if __name__ == "__main__":
    main()
