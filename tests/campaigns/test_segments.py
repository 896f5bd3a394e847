"""Segments: every rule kind and operator on real contacts, on SQLite and PostgreSQL.

Each test makes the few contacts it reasons about, named so the assertion reads as who
matches. Messages for the engagement rules are real rows whose age is moved back with
update(), as the audience rule would find them after days of sending.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from campaigns.audience import AudienceDefinition, AudiencePart, AudienceRule
from campaigns.models import Campaign
from campaigns.preview import estimate
from campaigns.segments import Evaluation, Rule, RuleError, Segment, SegmentInUse
from campaigns.sending import materialise
from contacts.models import Contact, Group, OptOut, Tag
from messaging.models import Message, ProviderAccount

pytestmark = pytest.mark.django_db

#: Valid numbers of a few countries, to be completed with two digits.
GB, FR, IE = "+4474001234{:02d}", "+336123456{:02d}", "+3538512345{:02d}"


def person(name: str, number: str = GB, **fields: Any) -> Contact:
    """A contact called `name`, on a number of `number`'s country that no one else has."""
    phone = number.format(Contact.objects.count())
    return Contact.objects.create(phone=phone, first_name=name, **fields)


def evaluated(*rules: str, match_any: bool = False) -> tuple[set[str], list[str]]:
    """(the first names of the contacts the rules match, the warnings evaluating them gave)."""
    evaluation = Evaluation()
    segment = Segment(name="s", rules=list(rules), match_any=match_any)
    found = segment.contacts(evaluation).values_list("first_name", flat=True)
    return set(found), evaluation.warnings


def matching(*rules: str, match_any: bool = False) -> set[str]:
    found, warnings = evaluated(*rules, match_any=match_any)
    assert warnings == []
    return found


def saved_segment(name: str, *rules: str, match_any: bool = False) -> Segment:
    segment = Segment(name=name, rules=list(rules), match_any=match_any)
    segment.full_clean()
    segment.save()
    return segment


# --- contact fields ------------------------------------------------------------------------


def test_text_equality_ignores_case_and_not_equal_includes_those_with_no_value() -> None:
    person("Ada", email="Ada@Example.com")
    person("ADA", email="")
    person("Adam", email="adam@example.com")

    assert matching("first_name = ada") == {"Ada", "ADA"}
    assert matching("email = ada@example.COM") == {"Ada"}
    assert matching("email != ada@example.com") == {"ADA", "Adam"}
    assert matching("first_name != ADA") == {"Adam"}


def test_letters_outside_ascii_match_as_written_on_both_databases() -> None:
    person("Émile", last_name="Zoë")
    person("Emile")

    assert matching("first_name = Émile") == {"Émile"}
    assert matching("first_name in Émile,Bob") == {"Émile"}
    assert matching("first_name contains ÉMI") == {"Émile"}
    # SQLite's LOWER() folds ASCII letters only: other letters match in the case written.
    assert matching("last_name = zoë") == {"Émile"}


def test_text_contains_in_set_and_unset() -> None:
    person("Ada", last_name="Lovelace", language="en", timezone="Europe/London")
    person("Bob", last_name="Byron", language="FR")
    person("Cy", last_name="50%_off", language="")

    assert matching("last_name contains LOVE") == {"Ada"}
    assert matching("last_name contains by") == {"Bob"}
    # LIKE's wildcards in the value are the characters themselves.
    assert matching("last_name contains 0%_") == {"Cy"}
    assert matching("last_name contains %") == {"Cy"}
    assert matching("language in EN, fr") == {"Ada", "Bob"}
    assert matching("language not in en,DE") == {"Bob", "Cy"}
    assert matching("language set") == {"Ada", "Bob"}
    assert matching("language unset") == {"Cy"}
    assert matching("timezone set") == {"Ada"}
    assert matching("timezone = europe/london") == {"Ada"}


def test_created_before_after_on_and_within() -> None:
    now = timezone.now()
    for name, at in (
        ("early", datetime(2020, 11, 29, 23, 59)),
        ("on the day", datetime(2020, 11, 30, 0, 0)),
        ("late on the day", datetime(2020, 11, 30, 23, 59)),
        ("next day", datetime(2020, 12, 1, 0, 0)),
    ):
        contact = person(name)
        Contact.objects.filter(pk=contact.pk).update(created_at=timezone.make_aware(at))
    person("just now")
    old = person("weeks ago")
    Contact.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=20))

    fixed = {"early", "on the day", "late on the day", "next day"}
    assert matching("created before 2020-11-30") & fixed == {"early"}
    assert matching("created = 2020-11-30") == {"on the day", "late on the day"}
    assert matching("created after 2020-11-30") & fixed == {"next day"}
    assert "just now" in matching("created within 1")
    assert "weeks ago" not in matching("created within 19")
    assert "weeks ago" in matching("created within 21")


# --- country ---------------------------------------------------------------------------------


def test_country_rules_take_codes_in_any_case_and_not_equal_includes_no_country() -> None:
    person("Brit", GB)
    person("French", FR)
    person("Irish", IE)
    Contact.objects.create(phone="0791123", first_name="Unknown")  # not E.164: no country

    assert Contact.objects.get(first_name="French").country == "FR"
    assert matching("country = gb") == {"Brit"}
    assert matching("country != GB") == {"French", "Irish", "Unknown"}
    assert matching("country in gb, ie") == {"Brit", "Irish"}
    assert matching("country not in GB,IE") == {"French", "Unknown"}
    assert matching("country set") == {"Brit", "French", "Irish"}
    assert matching("country unset") == {"Unknown"}


# --- custom attributes ------------------------------------------------------------------------


def test_attribute_text_rules_ignore_case_and_count_missing_values_as_not_equal() -> None:
    person("Leeds", attributes={"city": "Leeds", "plan": "Gold"})
    person("leeds", attributes={"city": "LEEDS", "plan": "silver"})
    person("York", attributes={"city": "York"})
    person("blank", attributes={"city": ""})
    person("null", attributes={"city": None})
    person("none")

    assert matching("attr.city = leeds") == {"Leeds", "leeds"}
    assert matching("attr.city != Leeds") == {"York", "blank", "null", "none"}
    assert matching("attr.city contains OR") == {"York"}
    assert matching("attr.plan in gold,SILVER,bronze") == {"Leeds", "leeds"}
    assert matching("attr.city not in york, LEEDS") == {"blank", "null", "none"}
    assert matching("attr.city set") == {"Leeds", "leeds", "York"}
    assert matching("attr.city unset") == {"blank", "null", "none"}
    assert matching('attr.city = "LEEDS"') == {"Leeds", "leeds"}


AGES = {
    "eighteen": "18",
    "eighteen and a half": "18.5",
    "minus three": "-3",
    "letters": "abc",
    "version": "1.2.3",
    "spaced seven": " 7 ",
    "json thirty": 30,
    "json two and a half": 2.5,
    "empty": "",
    "trailing dot": "5.",
    "dot first": ".5",
}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("attr.age >= 18", {"eighteen", "eighteen and a half", "json thirty"}),
        ("attr.age > 18", {"eighteen and a half", "json thirty"}),
        ("attr.age < 18", {"minus three", "spaced seven", "json two and a half"}),
        ("attr.age <= 18", {"eighteen", "minus three", "spaced seven", "json two and a half"}),
        ("attr.age < 0", {"minus three"}),
        (
            "attr.age > -3.5",
            set(AGES) - {"letters", "version", "empty", "trailing dot", "dot first"},
        ),
        ("attr.age >= 18.5", {"eighteen and a half", "json thirty"}),
        ("attr.age = 30", {"json thirty"}),
        ("attr.age = 18.5", {"eighteen and a half"}),
    ],
)
def test_attribute_numbers_compare_only_values_written_as_numbers(
    rule: str, expected: set[str]
) -> None:
    for name, age in AGES.items():
        person(name, attributes={"age": age})
    person("no age")

    assert matching(rule) == expected


def test_attribute_dates_before_after_and_within_read_iso_dates_only() -> None:
    today = timezone.localdate()
    joined = {
        "day": "2020-11-30",
        "with a time": "2020-11-30T10:00",
        "british": "30/11/2020",
        "day before": "2020-11-29",
        "day after": "2020-12-01",
        "text": "soon",
        "today": today.isoformat(),
        "a week ago": (today - timedelta(days=7)).isoformat(),
        "eight days ago": (today - timedelta(days=8)).isoformat() + "T23:59",
        "tomorrow": (today + timedelta(days=1)).isoformat(),
    }
    for name, value in joined.items():
        person(name, attributes={"joined": value})

    # Fixed days years back, so that no relative one (a week ago...) ever falls on them.
    fixed = {"day", "with a time", "british", "day before", "day after", "text"}
    assert matching("attr.joined before 2020-11-30") & fixed == {"day before"}
    assert matching("attr.joined after 2020-11-30") & fixed == {"day after"}
    assert matching("attr.joined within 7") - fixed == {"today", "a week ago"}
    # A date rule on a value that is not a date matches no one; nor a number rule on a date.
    assert matching("attr.joined = 2020-11-30") == {"day"}
    assert "british" not in matching("attr.joined before 2100-01-01")
    assert "text" not in matching("attr.joined after 1900-01-01")
    assert matching("attr.joined > 0") == set()


def test_an_attribute_no_contact_has_matches_no_one_with_a_warning_whatever_the_operator() -> None:
    person("Ada", attributes={"city": "Leeds"})
    person("Bob")

    for rule in ("attr.cty = Leeds", "attr.cty != Leeds", "attr.cty unset", "attr.cty < 3"):
        found, warnings = evaluated(rule)
        assert found == set()
        assert warnings == [
            f"No contact has the attribute 'cty': the rule '{Rule.parse(rule)}' matches no one."
        ]
    # An attribute name is exact: another spelling is another attribute.
    found, warnings = evaluated("attr.City set")
    assert (found, len(warnings)) == (set(), 1)


# --- groups and tags ------------------------------------------------------------------------


def test_group_and_tag_membership_by_name_in_any_case() -> None:
    news, staff = Group.objects.create(name="Newsletter"), Group.objects.create(name="Staff")
    vip = Tag.objects.create(name="VIP")
    person("reader").groups.add(news)
    person("colleague").groups.add(staff)
    both = person("both")
    both.groups.add(news, staff)
    both.tags.add(vip)
    person("nobody's")

    assert matching("group = newsletter") == {"reader", "both"}
    assert matching("group != Newsletter") == {"colleague", "nobody's"}
    assert matching("group in newsletter, STAFF") == {"reader", "colleague", "both"}
    assert matching("group not in Newsletter,Staff") == {"nobody's"}
    assert matching("tag = vip") == {"both"}
    assert matching("tag != VIP") == {"reader", "colleague", "nobody's"}
    assert matching("tag in vip") == {"both"}
    assert matching("tag not in vip") == {"reader", "colleague", "nobody's"}


def test_an_unknown_group_or_tag_matches_no_one_with_a_warning() -> None:
    news = Group.objects.create(name="Newsletter")
    person("reader").groups.add(news)
    person("other")

    for rule in ("group = Newsleter", "group != Newsleter", "tag not in x", "tag = x"):
        found, warnings = evaluated(rule)
        assert found == set(), rule
        assert len(warnings) == 1 and "There is no" in warnings[0]
    # The known names of a list still count for "in"; a misspelt "not in" reaches no one.
    found, warnings = evaluated("group in Newsletter,Newsleter")
    assert found == {"reader"}
    assert warnings == [
        "There is no group named 'Newsleter' (in the rule 'group in Newsletter,Newsleter')."
    ]
    assert evaluated("group not in Newsletter,Newsleter")[0] == set()


# --- consent and engagement ----------------------------------------------------------------


def test_opted_out_flags_per_channel() -> None:
    sms = person("sms")
    whatsapp = person("whatsapp")
    person("neither")
    OptOut.objects.create(phone=sms.phone, channel="sms")
    OptOut.objects.create(phone=whatsapp.phone, channel="whatsapp")

    assert matching("opted_out.sms") == {"sms"}
    assert matching("opted_out.sms = yes") == {"sms"}
    assert matching("opted_out.sms = no") == {"whatsapp", "neither"}
    assert matching("opted_out.sms != yes") == {"whatsapp", "neither"}
    assert matching("opted_out.whatsapp") == {"whatsapp"}
    assert matching("opted_out.whatsapp = false") == {"sms", "neither"}


@pytest.fixture
def sent_before(locmem: ProviderAccount, marketer: User) -> Callable[..., Message]:
    """A message of `campaign` to `contact`, `status`, made `days_ago` days ago."""

    def make(
        contact: Contact, campaign: Campaign, status: str, days_ago: float, is_test: bool = False
    ) -> Message:
        message = Message.objects.create(
            campaign=campaign,
            contact=contact,
            provider_account=locmem,
            phone=contact.phone,
            body="hello",
            client_ref=Message.new_client_ref(),
            status=status,
            is_test=is_test,
        )
        Message.objects.filter(pk=message.pk).update(
            created_at=timezone.now() - timedelta(days=days_ago)
        )
        return message

    return make


def campaign_named(name: str, account: ProviderAccount, by: User) -> Campaign:
    return Campaign.objects.create(name=name, provider_account=account, body="Hi", created_by=by)


def test_received_delivered_and_failed_from_any_campaign_or_one_within_days(
    sent_before: Callable[..., Message], locmem: ProviderAccount, marketer: User
) -> None:
    spring, summer = (campaign_named(n, locmem, marketer) for n in ("spring", "summer"))
    M = Message.Status
    sent_before(person("sent recently"), spring, M.SENT, 1)
    sent_before(person("delivered long ago"), spring, M.DELIVERED, 30)
    sent_before(person("failed recently"), summer, M.FAILED, 2)
    sent_before(person("skipped"), summer, M.SKIPPED, 1)
    sent_before(person("only a test"), summer, M.DELIVERED, 1, is_test=True)
    sent_before(person("pending"), summer, M.PENDING, 0)
    person("never")

    assert matching("received any") == {"sent recently", "delivered long ago"}
    assert matching("received any within 7") == {"sent recently"}
    assert matching(f"received {spring.pk}") == {"sent recently", "delivered long ago"}
    assert matching(f"received {summer.pk}") == set()
    assert matching("delivered any") == {"delivered long ago"}
    assert matching(f"delivered {spring.pk} within 31") == {"delivered long ago"}
    assert matching("delivered any within 29") == set()
    assert matching("failed any") == {"failed recently"}
    assert matching(f"failed {spring.pk}") == set()
    everyone = set(Contact.objects.values_list("first_name", flat=True))
    assert matching("received != any within 7") == everyone - {"sent recently"}
    assert matching(f"failed != {summer.pk}") == everyone - {"failed recently"}


def test_never_messaged_ignores_tests_skips_and_messages_not_sent_yet(
    sent_before: Callable[..., Message], locmem: ProviderAccount, marketer: User
) -> None:
    campaign = campaign_named("spring", locmem, marketer)
    M = Message.Status
    sent_before(person("sent"), campaign, M.SENT, 100)
    sent_before(person("failed"), campaign, M.FAILED, 1)
    sent_before(person("in doubt"), campaign, M.IN_DOUBT, 1)
    sent_before(person("skipped"), campaign, M.SKIPPED, 1)
    sent_before(person("pending"), campaign, M.PENDING, 0)
    sent_before(person("tested"), campaign, M.DELIVERED, 1, is_test=True)
    person("never")

    assert matching("never_messaged") == {"skipped", "pending", "tested", "never"}
    assert matching("never_messaged = no") == {"sent", "failed", "in doubt"}


# --- combining, parsing, saving -----------------------------------------------------------------


def test_match_all_needs_every_rule_and_match_any_one() -> None:
    person("Leeds, GB", GB, attributes={"city": "Leeds"})
    person("Leeds, FR", FR, attributes={"city": "Leeds"})
    person("York, FR", FR, attributes={"city": "York"})
    person("nowhere, GB", GB)

    rules = ("attr.city = Leeds", "country = FR")
    assert matching(*rules) == {"Leeds, FR"}
    assert matching(*rules, match_any=True) == {"Leeds, GB", "Leeds, FR", "York, FR"}
    # A rule NULL for a contact (no city) neither matches nor blocks "any".
    assert matching("attr.city != York", "country = GB", match_any=False) == {
        "Leeds, GB",
        "nowhere, GB",
    }


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "the rule is empty"),
        ("city = Leeds", "unknown field 'city'"),
        ("attr. = x", "unknown field 'attr.'"),
        ("attr.city", "no operator"),
        ("attr.city resembles Leeds", "unknown operator 'resembles'"),
        ("attr.city =", "= needs a value"),
        ("attr.plan in ,", "in needs a value"),
        ("attr.age >= abc", ">= compares numbers, and 'abc' is not one"),
        ("attr.age > 1.2.3", "compares numbers"),
        (
            "attr.joined before 30/11/2026",
            "before takes a date written YYYY-MM-DD, not '30/11/2026'",
        ),
        ("attr.joined after 2026-02-30", "after takes a date"),
        ("attr.joined within a week", "within takes a number of days"),
        ("created = 2026-11-30T10:00", "= takes a date"),
        ("created contains 2026", "created takes the operators =, before, after, within"),
        ("country = GBR", "country takes ISO codes of two letters"),
        ("country > GB", "country takes the operators"),
        ("group contains News", "group takes the operators =, !=, in, not in"),
        ("first_name > A", "first_name takes the operators"),
        ("email set x", "set takes no value"),
        ("opted_out.sms maybe", "opted_out.sms is yes or no, not 'maybe'"),
        ("received sometimes", "received takes a campaign id or 'any'"),
        ("failed any within", "failed takes a campaign id or 'any'"),
    ],
)
def test_a_bad_rule_is_refused_naming_the_rule_and_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(RuleError) as refused:
        Rule.parse(text)

    assert str(refused.value).startswith(f"rule {text.strip()!r}: ")
    assert complaint in str(refused.value)


def test_clean_writes_each_rule_in_its_one_canonical_form() -> None:
    segment = Segment(
        name="tidy",
        rules=[
            "  COUNTRY in gb , ie ",
            "opted_out.SMS",
            "opted_out.whatsapp != yes",
            "received ANY within 07",
            "delivered != 12",
            "",
            "attr.City = 'Leeds'",
            "Group NOT IN Newsletter, Staff",
            "first_name CONTAINS Ad",
        ],
    )

    segment.full_clean()

    assert segment.rules == [
        "country in GB,IE",
        "opted_out.sms = yes",
        "opted_out.whatsapp = no",
        "received any within 7",
        "delivered != 12",
        "attr.City = Leeds",
        "group not in Newsletter, Staff",
        "first_name contains Ad",
    ]
    # Canonical forms read back as themselves.
    assert [str(Rule.parse(rule)) for rule in segment.rules] == segment.rules


def test_clean_refuses_a_bad_rule_or_none() -> None:
    with pytest.raises(ValidationError) as bad:
        Segment(name="bad", rules=["attr.age >= lots"]).full_clean()
    assert bad.value.message_dict["rules"] == [
        "rule 'attr.age >= lots': >= compares numbers, and 'lots' is not one"
    ]
    with pytest.raises(ValidationError) as empty:
        Segment(name="empty", rules=["", "  "]).full_clean()
    assert empty.value.message_dict["rules"] == ["Give the segment at least one rule."]


def test_a_segment_is_dynamic_counting_contacts_added_after_it() -> None:
    segment = saved_segment("Leeds", "attr.city = Leeds")
    person("first", attributes={"city": "Leeds"})
    assert segment.count() == 1

    person("second", attributes={"city": "leeds"})
    Contact.objects.filter(first_name="first").update(attributes={"city": "York"})
    person("third", attributes={"city": "Leeds"})

    assert set(
        Segment.objects.get(pk=segment.pk).contacts().values_list("first_name", flat=True)
    ) == {
        "second",
        "third",
    }


def test_a_segment_a_campaign_targets_or_excludes_cannot_be_deleted(
    locmem: ProviderAccount, marketer: User
) -> None:
    targeted = saved_segment("targeted", "country = GB")
    excluded = saved_segment("excluded", "country = FR")
    unused = saved_segment("unused", "country = IE")
    first, second = (campaign_named(n, locmem, marketer) for n in ("first", "second"))
    first.segments.add(targeted)
    second.exclude_segments.add(excluded)
    first.exclude_segments.add(excluded)

    with pytest.raises(SegmentInUse, match=f"used by campaign {first.pk}: it cannot"):
        targeted.delete()
    with pytest.raises(SegmentInUse, match=f"used by campaigns {first.pk}, {second.pk}"):
        excluded.delete()
    unused.delete()

    assert set(Segment.objects.values_list("name", flat=True)) == {"targeted", "excluded"}
    assert excluded.used_by() == [first.pk, second.pk]


# --- segments in a campaign's audience -----------------------------------------------------------


def counted_and_built(
    campaign: Campaign, marketer: User, approver: User
) -> tuple[Any, dict[str, int]]:
    """The audience rule's count, then the build's stats, of a campaign approved meanwhile."""
    counted = AudienceRule(campaign).count()
    campaign.submit(by=marketer)
    with transaction.atomic():  # keep the approval's wake-up from running the send
        campaign.approve(by=approver)
        assert campaign.start()
        stats = materialise(campaign)
    return counted, stats


def recipients(campaign: Campaign) -> set[str]:
    return set(campaign.messages.values_list("contact__first_name", flat=True))


def test_excluding_a_segment_keeps_contacts_for_whom_its_rule_is_unknown(
    locmem: ProviderAccount, marketer: User, approver: User
) -> None:
    everyone = Group.objects.create(name="Everyone")
    for name, attributes in (
        ("Leeds", {"city": "Leeds"}),
        ("York", {"city": "York"}),
        ("no city", {}),
        ("null city", {"city": None}),
    ):
        person(name, attributes=attributes).groups.add(everyone)
    campaign = campaign_named("Not Leeds", locmem, marketer)
    campaign.groups.add(everyone)
    campaign.exclude_segments.add(saved_segment("Leeds", "attr.city = Leeds"))

    assert set(campaign.audience().values_list("first_name", flat=True)) == {
        "York",
        "no city",
        "null city",
    }
    counted, stats = counted_and_built(campaign, marketer, approver)
    assert counted.audience == counted.queued == stats["audience"] == stats["queued"] == 3
    assert recipients(campaign) == {"York", "no city", "null city"}


def test_excluding_a_segment_with_an_unknown_attribute_excludes_no_one(
    locmem: ProviderAccount, marketer: User
) -> None:
    everyone = Group.objects.create(name="Everyone")
    person("Ada").groups.add(everyone)
    campaign = campaign_named("All", locmem, marketer)
    campaign.groups.add(everyone)
    campaign.exclude_segments.add(saved_segment("typo", "attr.cty = Leeds"))

    figures = estimate(campaign)

    assert figures.audience == 1
    assert figures.warnings == [
        "No contact has the attribute 'cty': the rule 'attr.cty = Leeds' matches no one."
    ]


def test_an_audience_of_segments_minus_tags_and_segments_with_each_parts_size(
    locmem: ProviderAccount, marketer: User, approver: User
) -> None:
    unsubscribed, staff = Tag.objects.create(name="unsubscribed"), Tag.objects.create(name="staff")
    person("gold in Leeds", attributes={"city": "Leeds", "plan": "gold"})
    person("gold in York", attributes={"city": "York", "plan": "Gold"})
    person("silver in Leeds", attributes={"city": "Leeds", "plan": "silver"})
    person("tagged gold", attributes={"plan": "gold"}).tags.add(unsubscribed)
    person("staff in Leeds", attributes={"city": "Leeds"}).tags.add(staff)
    person("French gold", FR, attributes={"plan": "gold"})
    campaign = campaign_named("Gold", locmem, marketer)
    campaign.segments.add(
        saved_segment("gold", "attr.plan = gold"), saved_segment("Leeds", "attr.city = Leeds")
    )
    campaign.exclude_tags.add(unsubscribed, staff)
    campaign.exclude_segments.add(saved_segment("abroad", "country != GB"))

    figures = estimate(campaign)

    assert figures.parts == [
        AudiencePart("segment", "Leeds", 3, excluded=False),
        AudiencePart("segment", "gold", 4, excluded=False),
        AudiencePart("tag", "staff", 1, excluded=True),
        AudiencePart("tag", "unsubscribed", 1, excluded=True),
        AudiencePart("segment", "abroad", 1, excluded=True),
    ]
    assert figures.audience == figures.queued == 3
    assert AudienceDefinition.of(campaign).is_empty is False
    counted, stats = counted_and_built(campaign, marketer, approver)
    assert stats["queued"] == counted.queued == 3
    assert recipients(campaign) == {"gold in Leeds", "gold in York", "silver in Leeds"}


# --- approval binds a segment's rules ------------------------------------------------------------


def test_editing_a_segments_rules_after_approval_holds_the_campaign_and_makes_an_author(
    locmem: ProviderAccount, marketer: User, approver: User, make_user: Callable[..., User]
) -> None:
    person("Leeds", attributes={"city": "Leeds"})
    person("York", attributes={"city": "York"})
    segment = saved_segment("Leeds", "attr.city = Leeds")
    campaign = campaign_named("Leeds only", locmem, marketer)
    campaign.segments.add(segment)
    campaign.submit(by=marketer)
    with transaction.atomic():  # keep the approval's wake-up from running the send
        campaign.approve(by=approver)
    editor = make_user("eddie", "Marketers")

    segment.rules = ["attr.city in Leeds,York"]
    segment.full_clean()
    segment.save_edit(by=editor)
    assert list(campaign.authors.all()) == [editor]
    with transaction.atomic():
        assert campaign.start()
        materialise(campaign)

    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PENDING_APPROVAL
    assert "changed after it was approved" in campaign.held_reason
    assert campaign.messages.count() == 0
    assert campaign.estimate["queued"] == 2


def test_saving_a_segment_unchanged_or_unused_makes_no_author(
    locmem: ProviderAccount, marketer: User, make_user: Callable[..., User]
) -> None:
    used = saved_segment("used", "country = GB")
    unused = saved_segment("unused", "country = FR")
    campaign = campaign_named("GB", locmem, marketer)
    campaign.exclude_segments.add(used)
    editor = make_user("eddie", "Marketers")

    used.match_any = False
    used.save_edit(by=editor)
    unused.rules = ["country = IE"]
    unused.save_edit(by=editor)
    assert list(campaign.authors.all()) == []

    used.match_any = True  # what a segment matches is also its "all" or "any"
    used.save_edit(by=editor)
    assert list(campaign.authors.all()) == [editor]


def test_a_campaign_approved_with_a_segment_is_built_when_nothing_changed(
    locmem: ProviderAccount, marketer: User, approver: User
) -> None:
    person("Leeds", attributes={"city": "Leeds"})
    campaign = campaign_named("Leeds", locmem, marketer)
    campaign.segments.add(saved_segment("Leeds", "attr.city = Leeds"))

    counted, stats = counted_and_built(campaign, marketer, approver)

    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING
    assert stats["queued"] == counted.queued == 1
