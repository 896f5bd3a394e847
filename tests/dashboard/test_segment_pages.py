"""Segments in the dashboard: the list with sizes, the builder (rows, text, errors that keep
what was typed), its live count as JSON, deleting, and who may do each."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from campaigns.models import Campaign
from campaigns.segments import Segment
from contacts.models import Contact, Group
from messaging.models import ProviderAccount
from tests.conftest import phone

pytestmark = pytest.mark.django_db


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def person(i: int, first_name: str = "", **attributes: str) -> Contact:
    return Contact.objects.create(phone=phone(i), first_name=first_name, attributes=attributes)


@pytest.fixture
def city_people(db: Any) -> list[Contact]:
    return [
        person(1, "Ann", city="Leeds", plan="gold"),
        person(2, "Bob", city="leeds", plan="silver"),
        person(3, "Cat", city="York", plan="gold"),
    ]


def segment(name: str, *rules: str, match_any: bool = False) -> Segment:
    made = Segment(name=name, rules=list(rules), match_any=match_any)
    made.full_clean()
    made.save()
    return made


def rows(*rules: tuple[str, str, str], **fields: Any) -> dict[str, Any]:
    """A builder page's post: its rows of field, operator and value, and other fields."""
    return {
        "rule_field": [rule[0] for rule in rules],
        "rule_op": [rule[1] for rule in rules],
        "rule_value": [rule[2] for rule in rules],
        "match_any": "false",
        "rules_text": "",
        **fields,
    }


def campaign_using(seg: Segment, account: ProviderAccount, owner: User, name: str) -> Campaign:
    campaign = Campaign.objects.create(
        name=name, provider_account=account, body="Hi", created_by=owner
    )
    campaign.segments.add(seg)
    return campaign


# --- the list -----------------------------------------------------------------------------


def test_the_list_shows_each_segments_match_rules_size_and_the_campaigns_using_it(
    city_people: list[Contact], marketer: User, simulator: ProviderAccount
) -> None:
    leeds = segment("Leeds", "attr.city = Leeds")
    segment("Gold or York", "attr.plan = gold", "attr.city = York", match_any=True)
    campaign_using(leeds, simulator, marketer, "Leeds spring sale")

    response = signed_in(marketer).get("/segments/")

    assert response.status_code == 200
    page = response.content.decode()
    shown = {
        row.segment.name: (row.size, [c.name for c in row.used_by])
        for row in response.context["rows"]
    }
    assert shown == {"Gold or York": (2, []), "Leeds": (2, ["Leeds spring sale"])}
    assert "<code>attr.city = Leeds</code>" in page
    assert "any rule" in page and "all rules" in page
    assert 'data-size="2"' in page
    assert 'href="/segments/new/"' in page


def test_the_menu_offers_segments_to_whoever_may_view_them(
    marketer: User, approver: User, make_user: Callable[..., User]
) -> None:
    for user in (marketer, approver):
        assert 'href="/segments/"' in signed_in(user).get("/").content.decode()
    nobody = make_user("stan")  # staff, in no role
    assert 'href="/segments/"' not in signed_in(nobody).get("/").content.decode()


def test_a_size_in_the_list_is_counted_again_once_the_rules_change(
    city_people: list[Contact], marketer: User
) -> None:
    leeds = segment("Leeds", "attr.city = Leeds")
    client = signed_in(marketer)
    assert [row.size for row in client.get("/segments/").context["rows"]] == [2]
    client.post(f"/segments/{leeds.pk}/", rows(("attr.city", "in", "Leeds,York"), name="Leeds"))
    assert [row.size for row in client.get("/segments/").context["rows"]] == [3]


# --- building -----------------------------------------------------------------------------


def test_the_builder_suggests_the_contacts_attributes_and_their_common_values(
    city_people: list[Contact], marketer: User
) -> None:
    Group.objects.create(name="Newsletter")
    page = signed_in(marketer).get("/segments/new/").content.decode()
    assert '<option value="attr.city" data-kind="attribute"' in page
    assert '<option value="attr.plan" data-kind="attribute"' in page
    assert '<option value="gold"></option>' in page  # attr.plan's commonest value
    assert '<option value="Newsletter"></option>' in page  # a group's name
    assert '<option value="country" data-kind="country"' in page


def test_a_marketer_saves_a_segment_from_rows_and_text_lines(
    city_people: list[Contact], marketer: User
) -> None:
    data = rows(
        ("attr.city", "=", "Leeds"),
        ("", "=", ""),  # a blank row is no rule
        ("country", "in", "gb, ie"),
        name="Leeds people",
        match_any="true",
        rules_text="received != any within 7\n\n",
    )
    response = signed_in(marketer).post("/segments/new/", data)

    assert response.status_code == 302 and response["Location"] == "/segments/"
    saved = Segment.objects.get()
    assert saved.name == "Leeds people" and saved.match_any is True
    assert saved.rules == ["attr.city = Leeds", "country in GB,IE", "received != any within 7"]
    assert saved.created_by == marketer


def test_a_bad_rule_keeps_what_was_typed_and_says_whats_wrong_next_to_its_row(
    city_people: list[Contact], marketer: User
) -> None:
    data = rows(("attr.city", "=", "Leeds"), ("attr.age", ">=", "old"), name="Grown-ups")
    response = signed_in(marketer).post("/segments/new/", data)

    assert response.status_code == 200
    assert not Segment.objects.exists()
    reading = response.context["reading"]
    assert [row.error for row in reading.rows] == [
        "",
        "rule 'attr.age >= old': >= compares numbers, and 'old' is not one",
    ]
    page = response.content.decode()
    assert 'id="rule-2-error" data-part="error">rule &#x27;attr.age &gt;= old&#x27;' in page
    assert 'value="old"' in page and 'value="Grown-ups"' in page
    assert '<option value="attr.age" data-kind="attribute" data-values="" selected>' in page
    assert "Not saved" in page


def test_a_bad_text_line_is_named_and_the_text_kept(marketer: User) -> None:
    data = rows(name="Typo", rules_text="attr.city = Leeds\ncolour = red")
    response = signed_in(marketer).post("/segments/new/", data)

    assert response.status_code == 200 and not Segment.objects.exists()
    assert response.context["reading"].text_errors == [
        "rule 'colour = red': unknown field 'colour': use one of first_name, last_name, email, "
        "language, timezone, created, country, group, tag, opted_out.sms, opted_out.whatsapp, "
        "never_messaged, received, delivered, failed, clicked or attr.NAME"
    ]
    assert "attr.city = Leeds\ncolour = red</textarea>" in response.content.decode()


def test_a_segment_needs_a_rule_and_a_name_of_its_own(marketer: User) -> None:
    segment("Leeds", "attr.city = Leeds")
    response = signed_in(marketer).post("/segments/new/", rows(("", "=", ""), name="Leeds"))

    assert response.status_code == 200 and Segment.objects.count() == 1
    errors = response.context["form"].errors
    assert errors["rules"] == ["Give the segment at least one rule."]
    assert errors["name"] == ["Segment with this Name already exists."]
    assert "Give the segment at least one rule." in response.content.decode()


def test_an_edit_shows_the_saved_rules_as_rows_and_saves_as_the_editor(
    city_people: list[Contact],
    marketer: User,
    simulator: ProviderAccount,
    make_user: Callable[..., User],
) -> None:
    leeds = segment("Leeds", "attr.city = Leeds", "opted_out.sms = no")
    campaign = campaign_using(leeds, simulator, marketer, "Leeds sale")
    editor = make_user("eddie", "Marketers")
    client = signed_in(editor)

    page = client.get(f"/segments/{leeds.pk}/").content.decode()
    assert [
        (r.field, r.op, r.value) for r, _ in client.get(f"/segments/{leeds.pk}/").context["rows"]
    ] == [
        ("attr.city", "=", "Leeds"),
        ("opted_out.sms", "=", "no"),
    ]
    assert 'value="Leeds"' in page and f'href="/segments/{leeds.pk}/delete/"' in page

    data = rows(("attr.city", "in", "Leeds,York"), name="Leeds and York")
    response = client.post(f"/segments/{leeds.pk}/", data)

    assert response.status_code == 302
    leeds.refresh_from_db()
    assert (leeds.name, leeds.rules) == ("Leeds and York", ["attr.city in Leeds,York"])
    assert list(campaign.authors.all()) == [editor]  # through Segment.save_edit


# --- the live count -----------------------------------------------------------------------


def test_the_count_answers_who_the_rules_as_typed_match_with_redacted_samples(
    city_people: list[Contact], marketer: User
) -> None:
    response = signed_in(marketer).post("/segments/count/", rows(("attr.city", "=", "LEEDS")))

    assert response.status_code == 200
    assert response.json() == {
        "count": 2,
        "warnings": [],
        "errors": [],
        "row_errors": [""],
        "samples": [
            {"name": "Ann", "phone": "+44…01"},
            {"name": "Bob", "phone": "+44…02"},
        ],
    }


def test_the_count_reads_any_or_all_and_the_text_lines(
    city_people: list[Contact], marketer: User
) -> None:
    client = signed_in(marketer)
    data = rows(("attr.city", "=", "York"), rules_text="attr.plan = silver")
    assert client.post("/segments/count/", data).json()["count"] == 0
    assert client.post("/segments/count/", {**data, "match_any": "true"}).json()["count"] == 2


def test_the_count_warns_of_an_unknown_attribute_and_names_a_bad_rule_by_its_row(
    city_people: list[Contact], marketer: User
) -> None:
    client = signed_in(marketer)
    unknown = client.post("/segments/count/", rows(("attr.shoe", "=", "42"))).json()
    assert unknown["count"] == 0 and unknown["samples"] == []
    assert unknown["warnings"] == [
        "No contact has the attribute 'shoe': the rule 'attr.shoe = 42' matches no one."
    ]

    bad = client.post(
        "/segments/count/", rows(("", "=", ""), ("created", "contains", "2024"))
    ).json()
    error = (
        "rule 'created contains 2024': "
        "created takes the operators =, before, after, within, not 'contains'"
    )
    assert bad == {
        "count": None,
        "warnings": [],
        "errors": [error],
        "row_errors": ["", error],
        "samples": [],
    }


def test_the_count_of_no_rules_is_none_and_no_error(marketer: User) -> None:
    answer = signed_in(marketer).post("/segments/count/", rows(("", "=", ""))).json()
    assert answer["count"] is None and answer["errors"] == []


# --- deleting -----------------------------------------------------------------------------


def test_deleting_asks_first_then_deletes_an_unused_segment(marketer: User) -> None:
    unused = segment("Old", "country = FR")
    client = signed_in(marketer)

    asked = client.get(f"/segments/{unused.pk}/delete/")
    assert asked.status_code == 200 and 'name="confirm"' in asked.content.decode()
    assert client.post(f"/segments/{unused.pk}/delete/").status_code == 400
    assert Segment.objects.filter(pk=unused.pk).exists()

    done = client.post(f"/segments/{unused.pk}/delete/", {"confirm": "yes"})
    assert done.status_code == 302 and done["Location"] == "/segments/"
    assert not Segment.objects.filter(pk=unused.pk).exists()


def test_a_segment_a_campaign_uses_is_not_deleted_and_the_page_says_which(
    marketer: User, simulator: ProviderAccount
) -> None:
    used = segment("Leeds", "attr.city = Leeds")
    campaign = campaign_using(used, simulator, marketer, "Leeds sale")
    client = signed_in(marketer)
    refusal = (
        f"Segment 'Leeds' is used by campaign {campaign.pk}: "
        "it cannot be deleted while they use it."
    )

    asked = client.get(f"/segments/{used.pk}/delete/").content.decode()
    assert refusal.replace("'", "&#x27;") in asked and 'name="confirm"' not in asked
    assert "Leeds sale" in asked

    refused = client.post(f"/segments/{used.pk}/delete/", {"confirm": "yes"})
    assert refused.status_code == 409
    assert Segment.objects.filter(pk=used.pk).exists()
    assert list(campaign.segments.all()) == [used]


# --- who may ------------------------------------------------------------------------------


def test_approvers_see_segments_but_may_not_make_change_or_delete_them(
    city_people: list[Contact], approver: User
) -> None:
    leeds = segment("Leeds", "attr.city = Leeds")
    client = signed_in(approver)

    assert client.get("/segments/").status_code == 200
    shown = client.get(f"/segments/{leeds.pk}/")
    assert shown.status_code == 200 and shown.context["size"] == 2
    assert 'name="rule_field"' not in shown.content.decode()
    assert client.post("/segments/count/", rows(("attr.city", "=", "Leeds"))).json()["count"] == 2
    assert client.get("/segments/new/").status_code == 403
    assert client.post("/segments/new/", rows(("country", "=", "GB"), name="x")).status_code == 403
    edit = rows(("country", "=", "GB"), name="Changed")
    assert client.post(f"/segments/{leeds.pk}/", edit).status_code == 403
    assert client.post(f"/segments/{leeds.pk}/delete/", {"confirm": "yes"}).status_code == 403
    leeds.refresh_from_db()
    assert (leeds.name, leeds.rules) == ("Leeds", ["attr.city = Leeds"])


def test_users_without_the_view_permission_are_refused_every_segment_page(
    make_user: Callable[..., User],
) -> None:
    leeds = segment("Leeds", "attr.city = Leeds")
    client = signed_in(make_user("stan"))  # staff, in no role
    for url in (
        "/segments/",
        "/segments/new/",
        f"/segments/{leeds.pk}/",
        f"/segments/{leeds.pk}/delete/",
    ):
        assert client.get(url).status_code == 403, url
    assert client.post("/segments/count/", rows(("country", "=", "GB"))).status_code == 403
    assert Client().get("/segments/")["Location"].startswith("/accounts/login/")


def test_the_count_is_post_only(marketer: User) -> None:
    assert signed_in(marketer).get("/segments/count/").status_code == 405
