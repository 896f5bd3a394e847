"""Contacts in the dashboard: search, a contact's page, opt-outs, erasure, groups, attributes."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from campaigns.models import Campaign
from contacts import facets, memberships
from contacts.models import Channel, Contact, ErasedNumber, Group, OptOut, Tag, erasure_hash
from contacts.search import search_contacts
from messaging.models import Message, ProviderAccount

ANN = "+447911123456"


@pytest.fixture
def ann(db: Any) -> Contact:
    contact = Contact.objects.create(
        phone=ANN,
        first_name="Ann",
        last_name="Lee",
        email="ann.lee@example.com",
        attributes={"city": "Leeds", "plan": "gold"},
    )
    contact.groups.add(Group.objects.create(name="Customers"))
    contact.tags.add(Tag.objects.create(name="vip"))
    return contact


@pytest.fixture
def others(db: Any) -> list[Contact]:
    return [
        Contact.objects.create(phone="+447911200001", first_name="Bob", email="bob@example.com"),
        Contact.objects.create(phone="+33612345678", last_name="Annick"),
    ]


def signed_in(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


def found(client: Client, typed: str) -> list[str]:
    response = client.get("/contacts/search/", {"q": typed})
    assert response.status_code == 200
    return [c.phone for c in response.context["contacts"]]


@pytest.mark.parametrize(
    "typed",
    ["+447911123456", "+44 7911 123456", "07911 123456", "07911-123-456", "(07911) 123456",
     "0044 7911 123456", "447911123456", "+44 (0)7911 123456"],
)  # fmt: skip
def test_search_finds_a_contact_by_its_number_in_any_form(
    client: Client, approver: User, ann: Contact, others: list[Contact], typed: str
) -> None:
    assert found(signed_in(client, approver), typed) == [ANN]


@pytest.mark.parametrize("typed", ["07911 12", "+44 7911 12", "0044791112"])
def test_search_by_the_start_of_a_number_finds_those_starting_so(
    client: Client, approver: User, ann: Contact, others: list[Contact], typed: str
) -> None:
    assert found(signed_in(client, approver), typed) == [ANN]


@pytest.mark.parametrize(
    ("typed", "phones"),
    [
        ("Ann", [ANN, "+33612345678"]),  # first name, and the start of a last name
        ("ann", [ANN, "+33612345678"]),
        ("Lee", [ANN]),
        ("ann.lee@example.com", [ANN]),
        ("Ann.Lee@Example.com", [ANN]),  # e-mail: as typed, or in lower case
        ("ANN.LEE@EXAMPLE.COM", [ANN]),
        ("ann.lee@example", []),  # an e-mail is matched whole
        ("bob@example.com", ["+447911200001"]),
        ("Zed", []),
    ],
)
def test_search_finds_contacts_by_name_or_email(
    client: Client,
    approver: User,
    ann: Contact,
    others: list[Contact],
    typed: str,
    phones: list[str],
) -> None:
    assert sorted(found(signed_in(client, approver), typed)) == sorted(phones)


def test_the_admin_searches_contacts_the_same_way(
    client: Client, approver: User, ann: Contact, others: list[Contact]
) -> None:
    response = signed_in(client, approver).get("/admin/contacts/contact/", {"q": "07911 123456"})
    assert [c.phone for c in response.context["cl"].result_list] == [ANN]
    assert list(search_contacts(Contact.objects.all(), "0044 7911 123456")) == [ann]


def test_the_contact_page_shows_fields_attributes_groups_tags_and_opt_outs(
    client: Client, approver: User, ann: Contact
) -> None:
    OptOut.objects.create(phone=ANN, channel=Channel.WHATSAPP, source=OptOut.Source.REPLY)
    page = signed_in(client, approver).get(f"/contacts/{ann.pk}/").content.decode()
    for text in ("Ann", "Lee", "ann.lee@example.com", "<dt>city</dt><dd>Leeds</dd>", "gold"):
        assert text in page
    assert "Customers" in page and "vip" in page
    assert "WhatsApp" in page and "<td>Reply</td>" in page
    # An approver views contacts, no more: no buttons that would be refused.
    assert "Add opt-out" not in page and "Erase this contact" not in page


def test_the_contact_page_lists_every_message_with_its_status_and_campaign_a_page_at_a_time(
    client: Client,
    marketer: User,
    ann: Contact,
    simulator: ProviderAccount,
) -> None:
    campaign = Campaign.objects.create(
        name="Spring sale", provider_account=simulator, body="Hi", created_by=marketer
    )
    for i in range(30):
        Message.objects.create(
            campaign=campaign if i == 29 else None,
            contact=ann,
            provider_account=simulator,
            phone=ANN,
            body="Hi",
            client_ref=f"ref-{i}",
            status=Message.Status.DELIVERED if i == 29 else Message.Status.FAILED,
        )
    signed_in(client, marketer)
    first = client.get(f"/contacts/{ann.pk}/")
    assert first.context["page"].paginator.count == 30
    assert len(first.context["page"].object_list) == 25
    html = first.content.decode()
    assert "Spring sale" in html and "Delivered" in html  # the newest first
    assert len(client.get(f"/contacts/{ann.pk}/?page=2").context["page"].object_list) == 5


def test_a_marketer_adds_an_opt_out_by_staff_audited_but_may_not_remove_it(
    client: Client, marketer: User, ann: Contact
) -> None:
    signed_in(client, marketer)
    page = client.get(f"/contacts/{ann.pk}/").content.decode()
    assert "Add opt-out" in page
    response = client.post(f"/contacts/{ann.pk}/opt-outs/", {"change": "add", "channel": "sms"})
    assert response.status_code == 302
    entry = OptOut.objects.get(phone=ANN, channel="sms")
    assert entry.source == OptOut.Source.MANUAL
    event = AuditEvent.objects.get(action=AuditEvent.Action.OPT_OUT_ADDED)
    assert event.actor == marketer and event.detail == {"channel": "sms", "phone": "+44…56"}
    assert "Added by staff" in client.get(f"/contacts/{ann.pk}/").content.decode()
    # Marketers may add opt-outs (as in the admin), not take them off the list.
    response = client.post(f"/contacts/{ann.pk}/opt-outs/", {"change": "remove", "channel": "sms"})
    assert response.status_code == 403
    assert OptOut.objects.filter(phone=ANN, channel="sms").exists()


def test_an_admin_removes_an_opt_out_audited(client: Client, make_user: Any, ann: Contact) -> None:
    boss = make_user("boss")
    User.objects.filter(pk=boss.pk).update(is_superuser=True)
    OptOut.objects.create(phone=ANN, channel="sms")
    signed_in(client, User.objects.get(pk=boss.pk))
    client.post(f"/contacts/{ann.pk}/opt-outs/", {"change": "remove", "channel": "sms"})
    assert not OptOut.objects.filter(phone=ANN).exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.OPT_OUT_REMOVED).count() == 1


def test_an_approver_may_not_add_an_opt_out(client: Client, approver: User, ann: Contact) -> None:
    response = signed_in(client, approver).post(
        f"/contacts/{ann.pk}/opt-outs/", {"change": "add", "channel": "sms"}
    )
    assert response.status_code == 403 and not OptOut.objects.exists()


def test_erasing_asks_first_and_needs_the_delete_permission(
    client: Client, marketer: User, approver: User, ann: Contact
) -> None:
    signed_in(client, approver)
    assert client.get(f"/contacts/{ann.pk}/erase/").status_code == 403
    assert client.post(f"/contacts/{ann.pk}/erase/", {"confirm": "yes"}).status_code == 403
    assert Contact.objects.filter(pk=ann.pk).exists()
    signed_in(client, marketer)
    asked = client.get(f"/contacts/{ann.pk}/erase/")
    assert asked.status_code == 200 and ANN not in asked.content.decode()  # redacted only
    client.post(f"/contacts/{ann.pk}/erase/", {})  # not confirmed: nothing happens
    assert Contact.objects.filter(pk=ann.pk).exists()
    response = client.post(f"/contacts/{ann.pk}/erase/", {"confirm": "yes"})
    assert response.status_code == 302
    assert not Contact.objects.filter(pk=ann.pk).exists()
    assert ErasedNumber.objects.filter(phone_hash=erasure_hash(ANN)).exists()


def test_a_group_page_shows_its_size_and_members(
    client: Client, approver: User, make_contacts: Callable[..., list[Contact]]
) -> None:
    group = Group.objects.create(name="Leeds")
    members = make_contacts(60, group)
    response = signed_in(client, approver).get(f"/contacts/groups/{group.pk}/")
    assert response.context["size"] == 60 and response.context["size_exact"]
    assert len(response.context["page"].object_list) == 50
    assert members[-1].phone in response.content.decode()
    assert "Add the ticked" not in response.content.decode()  # approvers do not change groups


def test_a_marketer_adds_and_removes_group_members_found_by_search(
    client: Client, marketer: User, ann: Contact, others: list[Contact]
) -> None:
    group = Group.objects.create(name="Leeds")
    signed_in(client, marketer)
    page = client.get(f"/contacts/groups/{group.pk}/", {"q": "07911 123456"})
    assert [c.pk for c in page.context["found"]] == [ann.pk]
    client.post(f"/contacts/groups/{group.pk}/members/", {"change": "add", "contact": [ann.pk]})
    assert list(group.contacts.all()) == [ann]
    client.post(f"/contacts/groups/{group.pk}/members/", {"change": "remove", "contact": [ann.pk]})
    assert not group.contacts.exists() and Contact.objects.filter(pk=ann.pk).exists()


def test_group_members_are_added_and_removed_by_a_list_of_numbers(
    client: Client, marketer: User, approver: User, ann: Contact, others: list[Contact]
) -> None:
    group = Group.objects.create(name="Leeds")
    numbers = b"phone\n07911 123456\n+44 7911 200001\n+44 7911 200999\n07911 12\n"

    def upload(user: User, change: str) -> Any:
        file = SimpleUploadedFile("numbers.csv", numbers, content_type="text/csv")
        signed_in(client, user)
        return client.post(
            f"/contacts/groups/{group.pk}/upload/", {"numbers": file, "change": change}, follow=True
        )

    assert upload(approver, "add").status_code == 403
    response = upload(marketer, "add")
    shown = [str(m) for m in response.context["messages"]]
    assert set(group.contacts.values_list("phone", flat=True)) == {ANN, "+447911200001"}
    assert shown[0] == "3 numbers read: 2 added to Leeds, 0 already in it; 1 not a contact."
    assert shown[1] == "Line 5 is no number: too short for a UK mobile number."
    upload(marketer, "remove")
    assert not group.contacts.exists()


def test_a_list_of_more_numbers_than_allowed_is_refused_whole(
    client: Client, marketer: User, ann: Contact
) -> None:
    group = Group.objects.create(name="Leeds")
    lines = [ANN] + [f"+4474000{i:05d}" for i in range(memberships.MOST_NUMBERS)]
    file = SimpleUploadedFile("numbers.txt", "\n".join(lines).encode())
    response = signed_in(client, marketer).post(
        f"/contacts/groups/{group.pk}/upload/", {"numbers": file, "change": "add"}, follow=True
    )
    assert "import them instead" in " ".join(str(m) for m in response.context["messages"])
    assert not group.contacts.exists()


def test_attribute_facets_count_contacts_and_top_values(
    client: Client, approver: User, ann: Contact, make_contacts: Callable[..., list[Contact]]
) -> None:
    for contact in make_contacts(3):
        contact.attributes = {"city": "York"}
        contact.save()
    response = signed_in(client, approver).get("/contacts/attributes/")
    by_name = {f.name: f for f in response.context["facets"].facets}
    assert by_name["city"].contacts == 4
    assert by_name["city"].top_values == [("York", 3), ("Leeds", 1)]
    assert by_name["plan"].contacts == 1
    assert not response.context["facets"].estimated
    assert "{{city}}" in response.content.decode()


def test_attribute_facets_are_cached_until_refreshed(ann: Contact) -> None:
    before = facets.attribute_facets()
    Contact.objects.create(phone="+447911200002", attributes={"shoe": "42"})
    assert facets.attribute_facets() == before  # cached for FRESH_SECONDS
    assert "shoe" in {f.name for f in facets.attribute_facets(refresh=True).facets}
    assert facets.attribute_facets(refresh=True).computed_at <= timezone.now()


def test_past_a_size_postgresql_counts_attributes_from_a_sample(
    on_postgres: bool, make_contacts: Callable[..., list[Contact]]
) -> None:
    if not on_postgres:
        pytest.skip("TABLESAMPLE is PostgreSQL's")
    for contact in make_contacts(300):
        contact.attributes = {"city": "York"}
        contact.save()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE contacts_contact")
    counted = facets.compute(sample_above=100)  # SAMPLE_ROWS (100,000) is more: all of it
    assert [(f.name, f.contacts) for f in counted.facets] == [("city", 300)]
    assert facets.compute(sample_above=100_000).facets == counted.facets


def test_contact_pages_need_the_view_permission(
    client: Client, make_user: Callable[..., User], ann: Contact
) -> None:
    signed_in(client, make_user("stan"))  # staff, in no role
    group = ann.groups.get()
    for url in ("/contacts/search/?q=Ann", f"/contacts/{ann.pk}/", f"/contacts/groups/{group.pk}/",
                "/contacts/attributes/"):  # fmt: skip
        assert client.get(url).status_code == 403, url
