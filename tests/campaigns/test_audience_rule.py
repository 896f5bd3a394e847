"""The audience rule's two forms agree: what is counted (preview, approval, CLI) is what is built.

Audiences are generated to be awkward: overlapping groups, tags and segments (rules over
attributes, country, groups and engagement, matching all or any), excluded groups, tags
and segments, opt-outs on the other channel only, erased numbers, malformed numbers, own
time zones that are unknown or whose window never opens, numbers spread over many zones,
and earlier messages of another campaign for the frequency cap to count.
"""

import json
import math
import re
from collections.abc import Callable
from datetime import time, timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.audience import REASONS, AudienceRule
from campaigns.models import Campaign, FrequencyCap
from campaigns.preview import estimate
from campaigns.segments import Segment
from campaigns.sending import materialise
from contacts.models import Contact, ErasedNumber, Group, OptOut, Tag, erasure_hash
from messaging.models import Message, ProviderAccount

NUMBERS = {
    "uk": "+4479112{:05d}",
    "russia": "+791234{:05d}",  # a mobile: every one of Russia's eleven zones
    "us": "+1212555{:04d}",
    "malformed": "0791{:04d}",
}
ZONES = ("", "", "Europe/London", "Asia/Tokyo", "Not/AZone", "Pacific/Kiritimati")
WINDOWS = (None, (time(9), time(9, 30)), (time(22), time(6)), (time(2), time(2, 1)))

M = Message.Status
#: Rules a generated segment picks from: NULL for some contacts, unknown names, engagement.
RULES = (
    "attr.city = leeds",
    "attr.city != Leeds",
    "attr.city unset",
    "attr.age >= 18",
    "attr.age < 18",
    "attr.nosuch set",
    "country = GB",
    "country not in gb,ru",
    "group = A",
    "group != B",
    "tag in t",
    "received any within 7",
    "never_messaged",
    "opted_out.sms",
)

contact_strategy = st.fixed_dictionaries(
    {
        "number": st.sampled_from(sorted(NUMBERS)),
        "zone": st.sampled_from(ZONES),
        "groups": st.sets(st.sampled_from("ABC")),
        "tagged": st.booleans(),
        "unwanted": st.booleans(),
        "opted_out": st.sampled_from(["", "sms", "whatsapp", "both"]),
        "erased": st.booleans(),
        "first_name": st.sampled_from(["Ada", "Ёжик", ""]),
        "attributes": st.fixed_dictionaries(
            {},
            optional={
                "city": st.sampled_from(["Leeds", "LEEDS", "York", "", None]),
                "age": st.sampled_from(["18", "7", "abc", " 21 ", 30, 17.5]),
            },
        ),
        # Earlier messages of another campaign: (status, days ago).
        "history": st.lists(
            st.tuples(
                st.sampled_from([M.SENT, M.DELIVERED, M.FAILED, M.PENDING]),
                st.sampled_from([0, 3, 10]),
            ),
            max_size=3,
        ),
    }
)
segment_strategy = st.fixed_dictionaries(
    {"rules": st.lists(st.sampled_from(RULES), min_size=1, max_size=3), "match_any": st.booleans()}
)
#: (frequency_cap, cap_messages, cap_days) of the campaign, and the house setting's messages.
CAPS = (
    (FrequencyCap.HOUSE, None, None),
    (FrequencyCap.OWN, 1, 7),
    (FrequencyCap.OWN, 2, 30),
    (FrequencyCap.OFF, None, None),
)


def targeting_someone(spec: dict[str, Any]) -> dict[str, Any]:
    """A campaign with no group, tag or segment cannot be submitted: it gets group A."""
    return spec if spec["groups"] or spec["tag"] or spec["segments"] else {**spec, "groups": {"A"}}


campaign_strategy = st.fixed_dictionaries(
    {
        "channel": st.sampled_from(["sms", "whatsapp"]),
        "groups": st.sets(st.sampled_from("ABC")),
        "tag": st.booleans(),
        "exclude": st.sets(st.sampled_from("ABC"), max_size=1),
        "window": st.sampled_from(WINDOWS),
        "segments": st.lists(segment_strategy, max_size=2),
        "exclude_segments": st.lists(segment_strategy, max_size=1),
        "exclude_tag": st.booleans(),
        "cap": st.sampled_from(CAPS),
        "house_cap": st.sampled_from([0, 1, 2]),
    }
).map(targeting_someone)


def build_audience(contacts: list[dict[str, Any]], account: ProviderAccount) -> None:
    groups = {name: Group.objects.create(name=name) for name in "ABC"}
    tag, unwanted = Tag.objects.create(name="t"), Tag.objects.create(name="u")
    # A campaign messages a number once: each earlier message comes from another campaign.
    earlier = [
        Campaign.objects.create(name=f"Earlier {j}", provider_account=account, body="Hi")
        for j in range(3)
    ]
    for i, spec in enumerate(contacts):
        contact = Contact.objects.create(
            phone=NUMBERS[spec["number"]].format(i),
            timezone=spec["zone"],
            first_name=spec["first_name"],
            attributes=spec.get("attributes", {}),
        )
        contact.groups.add(*(groups[name] for name in spec["groups"]))
        if spec["tagged"]:
            contact.tags.add(tag)
        if spec.get("unwanted"):
            contact.tags.add(unwanted)
        channels = {"": [], "both": ["sms", "whatsapp"]}.get(spec["opted_out"], [spec["opted_out"]])
        for channel in channels:
            OptOut.objects.create(phone=contact.phone, channel=channel)
        if spec["erased"]:
            # Left behind by a bug or a raw load: the erasure keeps only the hash.
            ErasedNumber.objects.create(phone_hash=erasure_hash(contact.phone))
        for j, (status, days_ago) in enumerate(spec.get("history", [])):
            sent_before(earlier[j], contact, status, days_ago)


def sent_before(campaign: Campaign, contact: Contact, status: str, days_ago: float) -> None:
    """A message of `campaign` to `contact`, made `days_ago` days ago."""
    message = Message.objects.create(
        campaign=campaign,
        contact=contact,
        provider_account=campaign.provider_account,
        phone=contact.phone,
        body="Hi",
        client_ref=Message.new_client_ref(),
        status=status,
    )
    ago = timezone.now() - timedelta(days=days_ago)
    Message.objects.filter(pk=message.pk).update(created_at=ago)


def make(spec: dict[str, Any], account: ProviderAccount, marketer: User) -> Campaign:
    window = spec["window"] or (None, None)
    frequency_cap, cap_messages, cap_days = spec.get("cap", CAPS[0])
    campaign = Campaign.objects.create(
        name="Awkward",
        channel=spec["channel"],
        provider_account=account,
        body="Hi {{first_name|there}}",
        created_by=marketer,
        window_start=window[0],
        window_end=window[1],
        frequency_cap=frequency_cap,
        cap_messages=cap_messages,
        cap_days=cap_days,
    )
    campaign.groups.set(Group.objects.filter(name__in=spec["groups"]))
    campaign.exclude_groups.set(Group.objects.filter(name__in=spec["exclude"]))
    if spec["tag"]:
        campaign.tags.set(Tag.objects.filter(name="t"))
    if spec.get("exclude_tag"):
        campaign.exclude_tags.set(Tag.objects.filter(name="u"))
    for field, segments in (("segments", "S"), ("exclude_segments", "X")):
        for i, segment in enumerate(spec.get(field, [])):
            made = Segment(name=f"{segments}{i}", **segment)
            made.full_clean()
            made.save()
            getattr(campaign, field).add(made)
    return campaign


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(contacts=st.lists(contact_strategy, min_size=1, max_size=14), spec=campaign_strategy)
def test_counting_equals_building_on_awkward_audiences(
    contacts: list[dict[str, Any]],
    spec: dict[str, Any],
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
) -> None:
    with (
        transaction.atomic(),
        override_settings(HERALD_FREQUENCY_CAP_MESSAGES=spec["house_cap"]),
    ):
        build_audience(contacts, locmem)
        campaign = make(spec, locmem, marketer)
        counted = AudienceRule(campaign).count()
        figures = estimate(campaign)
        campaign.submit(by=marketer)
        campaign.approve(by=approver)  # its wake-up waits for a commit that never comes
        assert campaign.start()
        stats = materialise(campaign)

        members = set(campaign.audience().values_list("phone", flat=True))
        assert members == expected_audience(contacts, spec)
        capped = over_the_cap(contacts, spec)
        assert counted.skipped["frequency_cap"] == len(capped & members)
        assert stats["audience"] == counted.audience == figures.audience
        assert stats["queued"] == counted.queued == figures.queued
        assert {reason: stats[reason] for reason in REASONS} == counted.skipped
        queued = campaign.messages.filter(status=Message.Status.PENDING)
        assert figures.segments == sum(queued.values_list("segments", flat=True))
        built = {m.body for m in queued}
        assert {s.body for s in figures.samples} <= built
        transaction.set_rollback(True)


# --- the oracle: who the generated definition is for, and who is over the cap, in Python ---

NUMBER = re.compile(r"\s*-?[0-9]+(\.[0-9]+)?\s*")
COUNTRIES = {"uk": "GB", "russia": "RU", "us": "US", "malformed": ""}
WENT_OUT = (M.SENT, M.DELIVERED, M.FAILED)
#: What each rule of RULES says of a contact's spec (NULL, as SQL has it, is False).
HOLDS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "attr.city = leeds": lambda c: (city(c) or "").lower() == "leeds",
    "attr.city != Leeds": lambda c: (city(c) or "").lower() != "leeds",
    "attr.city unset": lambda c: not city(c),
    "attr.age >= 18": lambda c: age(c) >= 18,
    "attr.age < 18": lambda c: age(c) < 18,
    "attr.nosuch set": lambda c: False,
    "country = GB": lambda c: COUNTRIES[c["number"]] == "GB",
    "country not in gb,ru": lambda c: COUNTRIES[c["number"]] not in ("GB", "RU"),
    "group = A": lambda c: "A" in c["groups"],
    "group != B": lambda c: "B" not in c["groups"],
    "tag in t": lambda c: c["tagged"],
    "received any within 7": lambda c: any(
        status in (M.SENT, M.DELIVERED) and days <= 7 for status, days in c["history"]
    ),
    "never_messaged": lambda c: not any(status in WENT_OUT for status, _ in c["history"]),
    "opted_out.sms": lambda c: c["opted_out"] in ("sms", "both"),
}


def city(contact: dict[str, Any]) -> str | None:
    value = contact["attributes"].get("city")
    return None if value is None else str(value)


def age(contact: dict[str, Any]) -> float:
    """The age as a number; NaN (which no comparison holds for, as SQL's NULL) if none."""
    value = contact["attributes"].get("age")
    if isinstance(value, int | float):
        return float(value)
    return float(value) if value is not None and NUMBER.fullmatch(value) else math.nan


def in_segment(segment: dict[str, Any], contact: dict[str, Any], everyone: list[Any]) -> bool:
    def holds(rule: str) -> bool:
        name = rule.split()[0].removeprefix("attr.")
        if rule.startswith("attr.") and not any(name in c["attributes"] for c in everyone):
            return False  # an attribute no contact has: no one
        return HOLDS[rule](contact)

    results = [holds(rule) for rule in segment["rules"]]
    return any(results) if segment["match_any"] else all(results)


def expected_audience(contacts: list[dict[str, Any]], spec: dict[str, Any]) -> set[str]:
    found = set()
    for i, contact in enumerate(contacts):
        targeted = (
            bool(spec["groups"] & contact["groups"])
            or (spec["tag"] and contact["tagged"])
            or any(in_segment(s, contact, contacts) for s in spec["segments"])
        )
        excluded = (
            bool(spec["exclude"] & contact["groups"])
            or (spec["exclude_tag"] and contact["unwanted"])
            or any(in_segment(s, contact, contacts) for s in spec["exclude_segments"])
        )
        if targeted and not excluded:
            found.add(NUMBERS[contact["number"]].format(i))
    return found


def over_the_cap(contacts: list[dict[str, Any]], spec: dict[str, Any]) -> set[str]:
    """The numbers the cap skips: over it, and not skipped for a reason checked earlier."""
    frequency_cap, messages, days = spec["cap"]
    if frequency_cap == FrequencyCap.HOUSE:
        messages, days = spec["house_cap"], 7
    if frequency_cap == FrequencyCap.OFF or not messages:
        return set()
    found = set()
    for i, contact in enumerate(contacts):
        counted = [s for s, ago in contact["history"] if s != M.FAILED and ago < days]
        earlier_reason = (
            contact["opted_out"] in (spec["channel"], "both")
            or contact["erased"]
            or contact["number"] == "malformed"
        )
        if len(counted) >= messages and not earlier_reason:
            found.add(NUMBERS[contact["number"]].format(i))
    return found


def test_every_reason_is_reachable_and_counted_alike(
    make_user: Callable[..., User], locmem: ProviderAccount, marketer: User, approver: User
) -> None:
    """One contact per reason, so no reason's agreement above holds only by being zero."""
    group = Group.objects.create(name="G")
    rows = [
        ("+447911200001", ""),  # queued
        ("+447911200002", ""),  # opted out on SMS
        ("+447911200003", ""),  # opted out on WhatsApp only: queued for SMS
        ("+447911200004", ""),  # erased
        ("07911", ""),  # malformed
        ("+447911200005", ""),  # sent two campaigns this week: over the cap of 2 in 7 days
        ("+79123431291", ""),  # Russia, 11 zones: never all inside 02:00-02:01
        ("+447911200006", ""),  # in Leeds: in the excluded segment
    ]
    for number, zone in rows:
        Contact.objects.create(phone=number, timezone=zone).groups.add(group)
    OptOut.objects.create(phone="+447911200002", channel="sms")
    OptOut.objects.create(phone="+447911200003", channel="whatsapp")
    ErasedNumber.objects.create(phone_hash=erasure_hash("+447911200004"))
    Contact.objects.filter(phone="+447911200006").update(attributes={"city": "Leeds"})
    capped = Contact.objects.get(phone="+447911200005")
    for name, days_ago in (("Monday", 6), ("Friday", 2)):
        earlier = Campaign.objects.create(name=name, provider_account=locmem, body="Hi")
        sent_before(earlier, capped, M.DELIVERED, days_ago)
    spec = {
        "channel": "sms",
        "groups": {"G"},
        "tag": False,
        "exclude": set(),
        "window": WINDOWS[3],
        "exclude_segments": [{"rules": ["attr.city = Leeds"], "match_any": False}],
        "cap": (FrequencyCap.OWN, 2, 7),
    }
    campaign = make(spec, locmem, marketer)

    preview = json.loads(cli("preview", str(campaign.pk), "--json"))

    assert preview == {
        "id": campaign.pk,
        "audience": 7,
        "queued": 2,
        "skipped": {
            "opted_out": 1,
            "erased": 1,
            "invalid_number": 1,
            "duplicate": 0,
            "frequency_cap": 1,
            "no_send_window": 1,
        },
        "segments": 2,
        "cost": "0.00",
        "currency": "GBP",
        # The two queued are nameless: they get the body's fallback.
        "missing": [{"variable": "first_name", "recipients": 2, "fallback": "there"}],
        "parts": [
            {"kind": "group", "name": "G", "size": 8, "excluded": False},
            {"kind": "segment", "name": "X0", "size": 1, "excluded": True},
        ],
        "warnings": [],
    }
    campaign.submit(by=marketer)
    with transaction.atomic():  # keep the approval's wake-up from running the send
        campaign.approve(by=approver)
        campaign.start()
        materialise(campaign)
    status = json.loads(cli("status", str(campaign.pk), "--json"))
    assert status["counts"]["skipped"] == sum(preview["skipped"].values())
    assert status["counts"]["pending"] == preview["queued"]
    built = campaign.messages.all().skip_reason_counts()
    assert built == preview["skipped"]


def cli(*args: str) -> str:
    out = StringIO()
    call_command("campaign", *args, stdout=out)
    return out.getvalue()
