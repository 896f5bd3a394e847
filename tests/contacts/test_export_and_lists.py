"""Exports that spreadsheets cannot be tricked by, opted-out contacts, and the contact changelist.

Opt-out imports: test_opt_out_imports.py.
"""

import csv
import io

import pytest
from django.test import Client

from contacts import memberships
from contacts.models import Contact, Group, OptOut, Tag
from contacts.resources import ContactResource
from tests.contacts.conftest import uk

pytestmark = pytest.mark.django_db


def test_export_keeps_numbers_and_defuses_formulas_and_reimports_cleanly() -> None:
    contact = Contact.objects.create(
        phone=uk(1), first_name="=1+1", attributes={"note": "@danger", "tier": "gold"}
    )
    contact.groups.add(Group.objects.create(name="News"))
    contact.tags.add(Tag.objects.create(name="vip"))
    dataset = ContactResource().export()
    row = dict(zip(dataset.headers, dataset[0], strict=True))
    assert row["phone"] == uk(1)
    assert row["first_name"] == "'=1+1"
    assert (row["groups"], row["tags"]) == ("News", "vip")
    assert '"@danger"' in row["attributes"]

    Contact.objects.all().delete()
    result = ContactResource().import_data(dataset)
    assert result.totals["new"] == 1
    again = Contact.objects.get()
    assert again.first_name == "=1+1"  # the quote we added is taken off again
    assert again.attributes == {"note": "@danger", "tier": "gold"}


def test_the_admin_exports_the_filtered_changelist(admin_client: Client) -> None:
    news = Group.objects.create(name="News")
    Contact.objects.create(phone=uk(1), first_name="In").groups.add(news)
    Contact.objects.create(phone=uk(2), first_name="Out")
    response = admin_client.post(
        f"/admin/contacts/contact/export/?group={news.pk}",
        {
            "format": "0",
            "resource": "0",
            **{f"contactresource_{f}": "on" for f in ("phone", "first_name")},
        },
    )
    assert response.status_code == 200, response.content[:500]
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows == [["phone", "first_name"], [uk(1), "In"]]


def test_opted_out_contacts_are_marked_in_the_list_and_on_the_page(admin_client: Client) -> None:
    contact = Contact.objects.create(phone=uk(1))
    OptOut.objects.create(phone=uk(1), channel="whatsapp")
    listing = admin_client.get("/admin/contacts/contact/").content.decode()
    assert 'alt="True"' in listing
    page = admin_client.get(f"/admin/contacts/contact/{contact.pk}/change/").content.decode()
    assert "WhatsApp" in page


@pytest.mark.parametrize("typed", ["07400 000001", "+44 7400 000001", "447400000001"])
def test_changelist_search_finds_a_number_however_it_is_typed(
    admin_client: Client, typed: str
) -> None:
    Contact.objects.create(phone=uk(1), first_name="Ada")
    Contact.objects.create(phone=uk(2), first_name="Ben")
    page = admin_client.get("/admin/contacts/contact/", {"q": typed}).content.decode()
    assert uk(1) in page and uk(2) not in page


def test_changelist_search_by_name_and_email(admin_client: Client) -> None:
    Contact.objects.create(
        phone=uk(1), first_name="Ada", last_name="Lovelace", email="ada@example.com"
    )
    Contact.objects.create(phone=uk(2), first_name="Ben", last_name="Adams")
    assert uk(1) in admin_client.get("/admin/contacts/contact/", {"q": "ada"}).content.decode()
    by_last = admin_client.get("/admin/contacts/contact/", {"q": "Adams"}).content.decode()
    assert uk(2) in by_last and uk(1) not in by_last
    by_mail = admin_client.get(
        "/admin/contacts/contact/", {"q": "ada@example.com"}
    ).content.decode()
    assert uk(1) in by_mail and uk(2) not in by_mail


def test_groups_and_tags_show_their_counts(admin_client: Client) -> None:
    news = Group.objects.create(name="News")
    for i in range(3):
        Contact.objects.create(phone=uk(i)).groups.add(news)
    page = admin_client.get("/admin/contacts/group/").content.decode()
    assert '<td class="field-contact_count">3</td>' in page


@pytest.mark.parametrize(
    "big", [50_000, 1], ids=["small group: from its members", "big group: walk contacts"]
)
def test_the_group_filter_lists_exactly_the_members(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch, big: int
) -> None:
    monkeypatch.setattr(memberships, "BIG_GROUP", big)
    news, other = Group.objects.create(name="News"), Group.objects.create(name="Other")
    for i in range(4):
        contact = Contact.objects.create(phone=uk(i))
        contact.groups.add(news if i % 2 else other)
        if i == 3:
            contact.groups.add(other)
    page = admin_client.get("/admin/contacts/contact/", {"group": news.pk}).content.decode()
    assert [uk(i) in page for i in range(4)] == [False, True, False, True]
    assert page.count('name="_selected_action"') == 2  # uk(3) is in two groups, listed once
