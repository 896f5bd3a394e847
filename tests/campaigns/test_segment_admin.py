"""Segments in the admin: rules as text checked by the rule reader, saves that count the
editor among a campaign's authors, and no delete of a segment a campaign uses."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from campaigns.models import Campaign
from campaigns.segments import Segment
from contacts.models import Contact
from messaging.models import ProviderAccount
from tests.conftest import phone

pytestmark = pytest.mark.django_db

LIST = "/admin/campaigns/segment/"


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def segment(name: str, *rules: str) -> Segment:
    made = Segment(name=name, rules=list(rules))
    made.full_clean()
    made.save()
    return made


def campaign_using(seg: Segment, account: ProviderAccount, owner: User, name: str) -> Campaign:
    campaign = Campaign.objects.create(
        name=name, provider_account=account, body="Hi", created_by=owner
    )
    campaign.exclude_segments.add(seg)
    return campaign


@pytest.fixture
def people(db: Any) -> list[Contact]:
    return [
        Contact.objects.create(phone=phone(i), attributes={"city": city})
        for i, city in enumerate(["Leeds", "Leeds", "York"])
    ]


def test_the_list_shows_match_rules_size_and_the_campaigns_using_each(
    people: list[Contact], marketer: User, simulator: ProviderAccount
) -> None:
    leeds = segment("Leeds", "attr.city = Leeds", "country = GB")
    campaign_using(leeds, simulator, marketer, "Not to Leeds")

    page = logged_in(marketer).get(LIST).content.decode()

    assert "attr.city = Leeds; country = GB" in page
    assert "all rules" in page
    assert '<td class="field-size">2</td>' in page
    assert "Not to Leeds</a>" in page


def test_a_marketer_adds_a_segment_with_rules_one_a_line(
    people: list[Contact], marketer: User
) -> None:
    data = {"name": "Leeds", "match_any": "on", "rules": "attr.city = Leeds\r\n\r\ncountry in gb"}
    response = logged_in(marketer).post(f"{LIST}add/", data)

    assert response.status_code == 302, response.content.decode()[:2000]
    saved = Segment.objects.get()
    assert (saved.match_any, saved.rules) == (True, ["attr.city = Leeds", "country in GB"])
    assert saved.created_by == marketer


def test_a_bad_rule_is_named_and_what_was_typed_kept(marketer: User) -> None:
    data = {"name": "Adults", "rules": "attr.age >= 18\nattr.age >= old"}
    response = logged_in(marketer).post(f"{LIST}add/", data)

    assert response.status_code == 200 and not Segment.objects.exists()
    assert response.context["adminform"].form.errors["rules"] == [
        "rule 'attr.age >= old': >= compares numbers, and 'old' is not one"
    ]
    assert "attr.age &gt;= 18\nattr.age &gt;= old</textarea>" in response.content.decode()


def test_a_segment_with_no_rule_is_refused_once(marketer: User) -> None:
    response = logged_in(marketer).post(f"{LIST}add/", {"name": "Empty", "rules": "  \n"})
    assert response.context["adminform"].form.errors["rules"] == [
        "Give the segment at least one rule."
    ]


def test_changing_a_used_segment_makes_the_editor_one_of_the_campaigns_authors(
    marketer: User, simulator: ProviderAccount, make_user: Callable[..., User]
) -> None:
    used = segment("Abroad", "country != GB")
    campaign = campaign_using(used, simulator, marketer, "Home only")
    editor = make_user("eddie", "Marketers")

    client = logged_in(editor)
    form = client.get(f"{LIST}{used.pk}/change/").content.decode()
    assert "country != GB</textarea>" in form
    response = client.post(f"{LIST}{used.pk}/change/", {"name": "Abroad", "rules": "country = FR"})

    assert response.status_code == 302
    used.refresh_from_db()
    assert used.rules == ["country = FR"]
    assert list(campaign.authors.all()) == [editor]


def test_deleting_a_used_segment_lists_its_campaigns_and_deletes_nothing(
    marketer: User, simulator: ProviderAccount
) -> None:
    used = segment("Abroad", "country != GB")
    campaign = campaign_using(used, simulator, marketer, "Home only")
    client = logged_in(marketer)

    page = client.get(f"{LIST}{used.pk}/delete/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "protected" in text and "Home only</a> uses segment “Abroad”" in text
    assert f"is used by campaign {campaign.pk}" in text
    response = client.post(f"{LIST}{used.pk}/delete/", {"post": "yes"})
    assert response.status_code == 200  # the same page again, not a 500
    assert Segment.objects.filter(pk=used.pk).exists()
    assert list(campaign.exclude_segments.all()) == [used]


def test_the_bulk_delete_keeps_used_segments_and_deletes_only_through_the_model(
    marketer: User, simulator: ProviderAccount
) -> None:
    used = segment("Abroad", "country != GB")
    unused = segment("French", "country = FR")
    campaign_using(used, simulator, marketer, "Home only")
    client = logged_in(marketer)
    chosen = {"action": "delete_selected", "_selected_action": [used.pk, unused.pk]}

    asked = client.post(LIST, chosen)
    assert asked.status_code == 200 and "Home only</a> uses segment" in asked.content.decode()
    client.post(LIST, {**chosen, "post": "yes"})
    assert set(Segment.objects.values_list("name", flat=True)) == {"Abroad", "French"}

    client.post(LIST, {"action": "delete_selected", "_selected_action": [unused.pk], "post": "yes"})
    assert set(Segment.objects.values_list("name", flat=True)) == {"Abroad"}


def test_approvers_see_segments_in_the_admin_but_change_nothing(
    approver: User, people: list[Contact]
) -> None:
    leeds = segment("Leeds", "attr.city = Leeds")
    client = logged_in(approver)
    assert client.get(LIST).status_code == 200
    assert client.get(f"{LIST}add/").status_code == 403
    client.post(f"{LIST}{leeds.pk}/change/", {"name": "Changed", "rules": "country = FR"})
    assert client.post(f"{LIST}{leeds.pk}/delete/", {"post": "yes"}).status_code == 403
    leeds.refresh_from_db()
    assert (leeds.name, leeds.rules) == ("Leeds", ["attr.city = Leeds"])
