"""`manage.py segment`, and `campaign create` with segments, exclusions and a frequency cap."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from campaigns.models import Campaign, FrequencyCap
from campaigns.segments import Segment
from contacts.models import Contact, Group, Tag
from messaging.models import ProviderAccount

ROOT = Path(__file__).resolve().parents[2]


def segment_cli(*args: str) -> tuple[str, str]:
    """(stdout, stderr) of one `segment` command."""
    out, err = io.StringIO(), io.StringIO()
    call_command("segment", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def campaign_cli(*args: str) -> str:
    out = io.StringIO()
    call_command("campaign", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def refused(command: str, *args: str) -> str:
    """The one line a refused command exits 1 with."""
    with pytest.raises(CommandError) as excinfo:
        call_command(command, *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert excinfo.value.returncode == 1
    text = str(excinfo.value)
    assert text and "\n" not in text
    return text


def create_segment(name: str, *rules: str, match_any: bool = False) -> Segment:
    args = [arg for rule in rules for arg in ("--rule", rule)]
    out, _ = segment_cli("create", name, *args, *(["--any"] if match_any else []))
    return Segment.objects.get(pk=int(out))


def create_campaign(*args: str) -> Campaign:
    out = campaign_cli(
        "create", "--name", "Spring", "--provider", "sim", "--body", "Hi {{first_name}}", *args
    )
    return Campaign.objects.get(pk=int(out))


def preview_json(campaign: Campaign) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(campaign_cli("preview", str(campaign.pk), "--json"))
    return summary


@pytest.fixture
def people(db: Any) -> dict[str, Contact]:
    """Four contacts in three countries, with attributes, groups and tags."""
    newsletter = Group.objects.create(name="Newsletter")
    vip = Group.objects.create(name="VIP")
    lapsed = Tag.objects.create(name="lapsed")
    rows = {
        "ann": ("+447400123401", {"city": "Leeds", "plan": "gold", "age": "34"}, [newsletter]),
        "bob": ("+447400123402", {"city": "leeds", "plan": "silver", "age": "17"}, [newsletter]),
        "cat": ("+353851234501", {"city": "Dublin", "plan": "gold", "age": "old"}, [vip]),
        "dan": ("+33612345601", {"city": "Paris", "renewal": "2026-01-10"}, [vip]),
    }
    people = {}
    for name, (number, attributes, groups) in rows.items():
        contact = Contact.objects.create(phone=number, first_name=name, attributes=attributes)
        contact.groups.add(*groups)
        people[name] = contact
    people["bob"].tags.add(lapsed)
    return people


# segment create


def test_create_prints_only_the_new_segments_id_and_keeps_its_rules_canonical(
    people: dict[str, Contact], marketer: User
) -> None:
    out, err = segment_cli(
        "create", "Leeds", "--rule", "attr.city = Leeds", "--rule", "country = gb", "--as", "mia"
    )

    segment = Segment.objects.get()
    assert out == f"{segment.pk}\n"
    assert err == ""
    assert segment.name == "Leeds"
    assert segment.match_any is False
    assert segment.rules == ["attr.city = Leeds", "country = GB"]
    assert segment.created_by == marketer


def test_create_with_any_matches_contacts_meeting_any_rule(people: dict[str, Contact]) -> None:
    segment = create_segment("Abroad", "country = IE", "attr.city = Paris", match_any=True)

    assert segment.match_any is True
    assert segment_cli("count", "Abroad")[0] == "2\n"


@pytest.mark.parametrize(
    ("rule", "what_is_wrong"),
    [
        ("colour = red", "unknown field 'colour'"),
        ("attr.city ~ Leeds", "unknown operator '~'"),
        ("attr.age > old", "> compares numbers, and 'old' is not one"),
        ("attr.renewal before 2026-13-01", "before takes a date written YYYY-MM-DD"),
        ("country = GBR", "country takes ISO codes of two letters"),
        ("group > Newsletter", "group takes the operators"),
        ("received sometimes", "received takes a campaign id or 'any'"),
        ("attr.renewal within a week", "within takes a number of days"),
    ],
)
def test_a_bad_rule_exits_1_with_one_line_naming_the_rule_and_what_is_wrong(
    people: dict[str, Contact], rule: str, what_is_wrong: str
) -> None:
    text = refused("segment", "create", "Bad", "--rule", "country = GB", "--rule", rule)

    assert text.startswith(f"rule {rule!r}: ")
    assert what_is_wrong in text
    assert not Segment.objects.exists()


def test_a_bad_rule_from_the_shell_exits_1_with_one_line_on_stderr() -> None:
    # The rule is read before the database is touched, so the real command can be run.
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    done = subprocess.run(
        [sys.executable, "manage.py", "segment", "create", "Bad", "--rule", "attr.age > old"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "CommandError: rule 'attr.age > old': > compares numbers, and 'old' is not one"
    ]


def test_a_name_already_taken_is_refused(people: dict[str, Contact]) -> None:
    create_segment("Leeds", "attr.city = Leeds")

    text = refused("segment", "create", "Leeds", "--rule", "country = GB")

    assert text == "a segment named 'Leeds' already exists"
    assert Segment.objects.get().rules == ["attr.city = Leeds"]


def test_an_unknown_attribute_is_a_warning_on_stderr_not_a_failure(
    people: dict[str, Contact],
) -> None:
    out, err = segment_cli("create", "Shoes", "--rule", "attr.shoe_size >= 42")

    assert out == f"{Segment.objects.get().pk}\n"
    assert err == (
        "warning: No contact has the attribute 'shoe_size': "
        "the rule 'attr.shoe_size >= 42' matches no one.\n"
    )
    assert segment_cli("count", "Shoes") == ("0\n", err)


# segment count, list, show


@pytest.mark.parametrize(
    ("rules", "size"),
    [
        (["attr.city = LEEDS"], 2),  # text is matched case-insensitively
        (["country = GB"], 2),
        (["country in ie,fr"], 2),
        (["attr.plan in gold,silver"], 3),
        (["attr.age >= 18"], 1),  # "old" is not a number: cat does not match
        (["attr.age < 18"], 1),
        (["attr.renewal before 2026-02-01"], 1),
        (["attr.plan unset"], 1),
        (["group = Newsletter"], 2),
        (["group != Newsletter"], 2),
        (["tag = lapsed"], 1),
        (["attr.city contains ee", "country = GB", "group = Newsletter"], 2),
        (["never_messaged"], 4),
        (["opted_out.sms"], 0),
    ],
)
def test_count_prints_how_many_contacts_the_segment_has_now(
    people: dict[str, Contact], rules: list[str], size: int
) -> None:
    create_segment("Chosen", *rules)

    assert segment_cli("count", "Chosen") == (f"{size}\n", "")


def test_count_follows_the_contacts_as_they_change(people: dict[str, Contact]) -> None:
    create_segment("Leeds", "attr.city = Leeds")
    Contact.objects.create(phone="+447400123409", attributes={"city": "Leeds"})
    people["ann"].delete()

    assert segment_cli("count", "Leeds")[0] == "2\n"


def test_list_json_is_one_list_of_every_segment_with_its_size_and_campaigns(
    people: dict[str, Contact], simulator: ProviderAccount
) -> None:
    leeds = create_segment("Leeds", "attr.city = Leeds", "country = GB")
    abroad = create_segment("Abroad", "country in IE,FR", match_any=True)
    campaign = create_campaign("--segment", "Leeds")

    out, err = segment_cli("list", "--json")

    assert out.count("\n") == 1
    assert json.loads(out) == [
        {
            "id": abroad.pk,
            "name": "Abroad",
            "match": "any",
            "rules": ["country in IE,FR"],
            "size": 2,
            "campaigns": [],
        },
        {
            "id": leeds.pk,
            "name": "Leeds",
            "match": "all",
            "rules": ["attr.city = Leeds", "country = GB"],
            "size": 2,
            "campaigns": [campaign.pk],
        },
    ]
    assert err == ""


def test_list_shows_name_rules_size_and_campaigns_a_line(
    people: dict[str, Contact], simulator: ProviderAccount
) -> None:
    create_segment("Leeds", "attr.city = Leeds", "country = GB")
    create_segment("Gold", "attr.plan = gold")
    campaign = create_campaign("--segment", "Gold", "--exclude-segment", "Leeds")

    lines = segment_cli("list")[0].splitlines()

    assert lines == [
        f"Gold     1 rule (all)          2 contacts  campaigns: {campaign.pk}",
        f"Leeds   2 rules (all)          2 contacts  campaigns: {campaign.pk}",
    ]


def test_list_with_no_segments_says_how_to_make_one(db: Any) -> None:
    assert "segment create" in segment_cli("list")[0]
    assert json.loads(segment_cli("list", "--json")[0]) == []


def test_show_prints_rules_match_size_warnings_and_campaigns(
    people: dict[str, Contact], simulator: ProviderAccount
) -> None:
    segment = create_segment(
        "Mixed", "attr.city = Paris", "attr.shoe_size = 42", "group = VIP", match_any=True
    )
    campaign = create_campaign("--group", "VIP", "--exclude-segment", "Mixed")

    out, err = segment_cli("show", "Mixed")

    assert out.splitlines() == [
        f"segment {segment.pk}: Mixed",
        "match: any of these rules",
        "  attr.city = Paris",
        "  attr.shoe_size = 42",
        "  group = VIP",
        "size: 2",
        f"used by campaigns: {campaign.pk}",
    ]
    assert err.splitlines() == [
        "warning: No contact has the attribute 'shoe_size': "
        "the rule 'attr.shoe_size = 42' matches no one."
    ]


@pytest.mark.parametrize("subcommand", ["show", "count", "delete"])
def test_an_unknown_segment_name_exits_1_with_one_line(
    people: dict[str, Contact], subcommand: str
) -> None:
    create_segment("Leeds", "attr.city = Leeds")

    assert refused("segment", subcommand, "leeds") == "no segment named 'leeds'"


def test_segment_alone_prints_its_usage(db: Any) -> None:
    out = io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("segment", stdout=out, stderr=io.StringIO())

    assert excinfo.value.returncode == 2
    for subcommand in ("create", "list", "show", "count", "delete"):
        assert subcommand in out.getvalue()


# segment delete


def test_delete_removes_an_unused_segment(people: dict[str, Contact]) -> None:
    segment = create_segment("Leeds", "attr.city = Leeds")

    out, _ = segment_cli("delete", "Leeds")

    assert out == f"segment {segment.pk} deleted: Leeds\n"
    assert not Segment.objects.exists()


def test_delete_of_a_segment_a_campaign_uses_is_refused_with_the_campaigns(
    people: dict[str, Contact], simulator: ProviderAccount
) -> None:
    create_segment("Leeds", "attr.city = Leeds")
    campaign = create_campaign("--group", "VIP", "--exclude-segment", "Leeds")

    text = refused("segment", "delete", "Leeds")

    assert text == (
        f"Segment 'Leeds' is used by campaign {campaign.pk}: "
        "it cannot be deleted while they use it."
    )
    assert Segment.objects.filter(name="Leeds").exists()


# campaign create with segments and exclusions


def test_campaign_create_builds_the_audience_from_segments_groups_and_exclusions(
    people: dict[str, Contact], simulator: ProviderAccount
) -> None:
    create_segment("Gold", "attr.plan = gold")
    create_segment("Minors", "attr.age < 18")
    campaign = create_campaign(
        "--segment", "Gold", "--group", "VIP",
        "--exclude-group", "Newsletter", "--exclude-tag", "lapsed", "--exclude-segment", "Minors",
    )  # fmt: skip

    preview = preview_json(campaign)

    # Gold (ann, cat) and VIP (cat, dan), minus Newsletter (ann, bob), lapsed and minors (bob).
    assert preview["audience"] == 2
    assert preview["queued"] == 2
    assert preview["parts"] == [
        {"kind": "group", "name": "VIP", "size": 2, "excluded": False},
        {"kind": "segment", "name": "Gold", "size": 2, "excluded": False},
        {"kind": "group", "name": "Newsletter", "size": 2, "excluded": True},
        {"kind": "tag", "name": "lapsed", "size": 1, "excluded": True},
        {"kind": "segment", "name": "Minors", "size": 1, "excluded": True},
    ]
    assert preview["warnings"] == []
    assert [s.name for s in campaign.segments.all()] == ["Gold"]
    assert [s.name for s in campaign.exclude_segments.all()] == ["Minors"]
    assert [g.name for g in campaign.exclude_groups.all()] == ["Newsletter"]
    assert [t.name for t in campaign.exclude_tags.all()] == ["lapsed"]


def test_campaign_preview_text_shows_each_part_then_the_total_and_warns_on_stderr(
    people: dict[str, Contact], simulator: ProviderAccount
) -> None:
    create_segment("Leeds", "attr.city = Leeds")
    create_segment("Shoes", "attr.shoe_size > 40")
    campaign = create_campaign("--segment", "Leeds", "--exclude-segment", "Shoes")
    out, err = io.StringIO(), io.StringIO()

    call_command("campaign", "preview", str(campaign.pk), stdout=out, stderr=err)

    assert out.getvalue().splitlines()[1:4] == [
        "  segment Leeds        2",
        "  minus segment Shoes  0",
        "audience  2",
    ]
    assert err.getvalue().splitlines() == [
        "warning: No contact has the attribute 'shoe_size': "
        "the rule 'attr.shoe_size > 40' matches no one."
    ]
    assert preview_json(campaign)["warnings"] == [
        "No contact has the attribute 'shoe_size': the rule 'attr.shoe_size > 40' matches no one."
    ]


def test_a_segment_only_campaign_can_be_submitted(
    people: dict[str, Contact], simulator: ProviderAccount, marketer: User
) -> None:
    create_segment("Leeds", "attr.city = Leeds")
    campaign = create_campaign("--segment", "Leeds", "--as", "mia")

    out = campaign_cli("submit", str(campaign.pk), "--as", "mia")

    assert out == f"campaign {campaign.pk}: draft -> pending_approval\n"


@pytest.mark.parametrize(
    ("flag", "noun"),
    [
        ("--segment", "segment"),
        ("--exclude-segment", "segment"),
        ("--exclude-group", "group"),
        ("--exclude-tag", "tag"),
    ],
)
def test_campaign_create_refuses_an_unknown_name_with_one_line(
    people: dict[str, Contact], simulator: ProviderAccount, flag: str, noun: str
) -> None:
    text = refused(
        "campaign", "create", "--name", "S", "--provider", "sim", "--body", "Hi",
        "--group", "VIP", flag, "Nope",
    )  # fmt: skip

    assert text == f"no {noun} named 'Nope'"
    assert not Campaign.objects.exists()


# campaign create --frequency-cap


@pytest.mark.parametrize(
    ("value", "fields"),
    [
        ("off", (FrequencyCap.OFF, None, None)),
        ("2/7", (FrequencyCap.OWN, 2, 7)),
        ("house", (FrequencyCap.HOUSE, None, None)),
    ],
)
def test_an_approver_may_give_the_campaign_its_own_frequency_cap_or_none(
    people: dict[str, Contact], simulator: ProviderAccount, approver: User, value: str, fields: Any
) -> None:
    campaign = create_campaign("--group", "VIP", "--frequency-cap", value, "--as", "arno")

    assert (campaign.frequency_cap, campaign.cap_messages, campaign.cap_days) == fields


def test_a_marketer_may_not_override_the_frequency_cap(
    people: dict[str, Contact], simulator: ProviderAccount, marketer: User
) -> None:
    base = ("campaign", "create", "--name", "S", "--provider", "sim", "--body", "Hi")

    text = refused(*base, "--group", "VIP", "--frequency-cap", "off", "--as", "mia")
    nobody = refused(*base, "--group", "VIP", "--frequency-cap", "3/30")

    assert text == (
        "--frequency-cap off: user 'mia' may not override the house frequency cap "
        "(it takes the campaigns.override_frequency_cap permission, which the Approvers "
        "role has)"
    )
    assert "a campaign created without --as may not override" in nobody
    assert not Campaign.objects.exists()
    # The house setting is everyone's to choose: it is the default.
    assert create_campaign("--group", "VIP", "--frequency-cap", "house", "--as", "mia")


@pytest.mark.parametrize("value", ["0/7", "2/0", "2", "sometimes", "2/7/1"])
def test_a_frequency_cap_that_is_not_n_over_d_off_or_house_is_refused(
    people: dict[str, Contact], simulator: ProviderAccount, approver: User, value: str
) -> None:
    text = refused(
        "campaign", "create", "--name", "S", "--provider", "sim", "--body", "Hi",
        "--group", "VIP", "--frequency-cap", value, "--as", "arno",
    )  # fmt: skip

    assert text.startswith("--frequency-cap is N/D")
