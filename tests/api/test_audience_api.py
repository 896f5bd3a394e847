"""Groups, tags, opt-outs and segments over the API, through the owners the dashboard uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from audit.models import AuditEvent
from campaigns.segments import Segment
from contacts.memberships import MOST_NUMBERS
from contacts.models import Contact, ErasedNumber, Group, OptOut, Tag, erasure_hash
from tests.api.conftest import ApiClient
from tests.conftest import phone

pytestmark = pytest.mark.django_db

ANN = "+447911123456"
Client = Callable[..., ApiClient]


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]


def names(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["name"] for row in response.json()["results"]]


def test_groups_and_tags_are_listed_newest_first_and_found_by_name(
    marketer: User, api_client: Client
) -> None:
    Group.objects.create(name="News", description="Monthly")
    Group.objects.create(name="VIP")
    Tag.objects.create(name="spring")
    client = api_client(marketer, "contacts:read")
    assert names(client.get("/api/v1/groups")) == ["VIP", "News"]
    news = client.get("/api/v1/groups", name="News").json()["results"]
    assert [(g["name"], g["description"]) for g in news] == [("News", "Monthly")]
    assert names(client.get("/api/v1/tags")) == ["spring"]
    assert names(client.get("/api/v1/tags", name="autumn")) == []
    assert error_of(client.get("/api/v1/groups", limit=5000), 422)["code"] == "invalid"


def test_contacts_are_added_to_a_group_by_id_and_by_number_then_taken_out(
    marketer: User, api_client: Client, make_contacts: Any
) -> None:
    vip = Group.objects.create(name="VIP")
    first, second, third = make_contacts(3)
    second.groups.add(vip)
    client = api_client(marketer, "contacts:write")
    body = {
        "contact_ids": [first.pk, 999],
        "phones": ["07911 200001", "+44 7911 200002", "07911 200099", "not a number"],
    }
    answer = client.post(f"/api/v1/groups/{vip.pk}/members", body)
    assert answer.status_code == 200, answer.content
    assert answer.json() == {
        "changed": 2,
        "unchanged": 1,
        "unknown_contact_ids": [999],
        "unknown_phones": ["07911 200099"],
        "invalid_phones": [{"index": 3, "errors": {"phone": ["not a phone number"]}}],
    }
    assert set(vip.contacts.all()) == {first, second, third}
    out = client.post(f"/api/v1/groups/{vip.pk}/members/remove", {"contact_ids": [first.pk]})
    assert (out.json()["changed"], out.json()["unchanged"]) == (1, 0)
    assert set(vip.contacts.all()) == {second, third}
    assert Contact.objects.count() == 3  # the contacts stay


def test_contacts_are_tagged_and_untagged(admin_api: ApiClient, make_contacts: Any) -> None:
    spring = Tag.objects.create(name="spring")
    first, second = make_contacts(2)
    added = admin_api.post(
        f"/api/v1/tags/{spring.pk}/members", {"contact_ids": [first.pk, second.pk]}
    )
    assert added.json()["changed"] == 2
    assert set(spring.contacts.all()) == {first, second}
    removed = admin_api.post(
        f"/api/v1/tags/{spring.pk}/members/remove", {"phones": ["+447911200000"]}
    )
    assert removed.json()["changed"] == 1
    assert list(spring.contacts.all()) == [second]


def test_membership_changes_refuse_unknown_targets_bad_bodies_and_too_many_contacts(
    admin_api: ApiClient,
) -> None:
    vip = Group.objects.create(name="VIP")
    assert error_of(admin_api.post("/api/v1/groups/999/members", {}), 404)["code"] == "not_found"
    assert error_of(admin_api.post("/api/v1/tags/999/members/remove", {}), 404)
    assert error_of(admin_api.post(f"/api/v1/groups/{vip.pk}/members", {"ids": [1]}), 422)
    assert error_of(
        admin_api.post(f"/api/v1/groups/{vip.pk}/members", {"contact_ids": ["one"]}), 422
    )
    too_many = {"contact_ids": list(range(1, MOST_NUMBERS + 2))}
    error = error_of(admin_api.post(f"/api/v1/groups/{vip.pk}/members", too_many), 413)
    assert error["code"] == "too_large"
    regionless = admin_api.post(f"/api/v1/groups/{vip.pk}/members?region=QQ", {"phones": [ANN]})
    assert error_of(regionless, 422)["details"] == {"region": ["unknown region"]}


def test_changing_members_needs_the_change_permission_and_the_write_scope(
    approver: User, marketer: User, api_client: Client, make_contacts: Any
) -> None:
    vip = Group.objects.create(name="VIP")
    (contact,) = make_contacts(1)
    body = {"contact_ids": [contact.pk]}
    assert error_of(api_client(approver).post(f"/api/v1/groups/{vip.pk}/members", body), 403)
    reading = api_client(marketer, "contacts:read")
    assert error_of(reading.post(f"/api/v1/groups/{vip.pk}/members", body), 403)
    assert not vip.contacts.exists()


def test_opt_outs_are_listed_and_filtered_by_channel_source_and_number(
    marketer: User, api_client: Client
) -> None:
    sms = OptOut.objects.create(phone=ANN, channel="sms", source="reply")
    whatsapp = OptOut.objects.create(phone=ANN, channel="whatsapp")
    other = OptOut.objects.create(phone=phone(1), channel="sms")
    client = api_client(marketer, "contacts:read")

    def ids(**params: Any) -> list[int]:
        answer = client.get("/api/v1/opt-outs", **params)
        assert answer.status_code == 200, answer.content
        return [row["id"] for row in answer.json()["results"]]

    assert ids() == [other.pk, whatsapp.pk, sms.pk]
    assert ids(channel="sms") == [other.pk, sms.pk]
    assert ids(source="reply") == [sms.pk]
    assert ids(phone="07911 123456", channel="whatsapp") == [whatsapp.pk]
    first = client.get("/api/v1/opt-outs", limit=1).json()["results"][0]
    assert (first["phone"], first["channel"], first["source"]) == (phone(1), "sms", "manual")
    assert error_of(client.get("/api/v1/opt-outs", channel="fax"), 422)
    assert error_of(client.get("/api/v1/opt-outs", phone="123"), 422)["details"]["phone"]


def test_an_opt_out_is_added_once_by_staff_and_audited_without_the_number(
    marketer: User, api_client: Client
) -> None:
    ann = Contact.objects.create(phone=ANN)
    client = api_client(marketer, "contacts:write")
    added = client.post("/api/v1/opt-outs", {"phone": "07911 123456", "channel": "sms"})
    assert added.status_code == 201, added.content
    assert (added.json()["phone"], added.json()["source"]) == (ANN, "manual")
    again = client.post("/api/v1/opt-outs", {"phone": ANN, "channel": "sms"})
    assert again.status_code == 200 and again.json()["id"] == added.json()["id"]
    assert OptOut.objects.count() == 1
    event = AuditEvent.objects.get(action=AuditEvent.Action.OPT_OUT_ADDED)
    assert (event.actor, event.object_id) == (marketer, str(ann.pk))
    assert event.detail == {"channel": "sms", "phone": "+44…56", "through": "api"}
    assert ANN not in str(event.detail)


def test_an_erased_number_is_never_put_back_on_the_list(admin_api: ApiClient) -> None:
    ErasedNumber.objects.create(phone_hash=erasure_hash(ANN))
    error = error_of(admin_api.post("/api/v1/opt-outs", {"phone": ANN, "channel": "sms"}), 422)
    assert "erased" in error["details"]["phone"][0]
    assert not OptOut.objects.exists()
    for body in ({"phone": ANN, "channel": "fax"}, {"phone": "12", "channel": "sms"}, {}):
        assert error_of(admin_api.post("/api/v1/opt-outs", body), 422)


def test_opt_outs_are_removed_by_id_or_by_number_and_audited(admin_api: ApiClient) -> None:
    sms = OptOut.objects.create(phone=ANN, channel="sms", source="reply")
    OptOut.objects.create(phone=ANN, channel="whatsapp")
    kept = OptOut.objects.create(phone=phone(1), channel="sms")
    assert admin_api.delete(f"/api/v1/opt-outs/{sms.pk}").json() == {"removed": 1}
    assert error_of(admin_api.delete(f"/api/v1/opt-outs/{sms.pk}"), 404)
    by_number = admin_api.delete("/api/v1/opt-outs/by-phone/07911 123456?channel=whatsapp")
    assert by_number.json() == {"removed": 1}
    assert admin_api.delete("/api/v1/opt-outs/by-phone/07911123456").json() == {"removed": 0}
    assert list(OptOut.objects.all()) == [kept]
    removals = AuditEvent.objects.filter(action=AuditEvent.Action.OPT_OUT_REMOVED)
    assert sorted(e.detail["channel"] for e in removals) == ["sms", "whatsapp"]


def test_opt_outs_need_their_own_permissions_as_on_the_dashboard(
    marketer: User, make_user: Any, api_client: Client
) -> None:
    entry = OptOut.objects.create(phone=ANN, channel="sms")
    marketing = api_client(marketer)  # marketers add opt-outs and never remove one
    assert marketing.post("/api/v1/opt-outs", {"phone": phone(1), "channel": "sms"}).status_code
    error = error_of(marketing.delete(f"/api/v1/opt-outs/{entry.pk}"), 403)
    assert "contacts.delete_optout" in error["message"]
    assert error_of(marketing.delete("/api/v1/opt-outs/by-phone/07911123456"), 403)
    nobody = api_client(make_user("nobody"))
    assert error_of(nobody.get("/api/v1/opt-outs"), 403)
    assert OptOut.objects.filter(pk=entry.pk).exists()


def test_segments_are_listed_and_counted_now_with_their_warnings(
    marketer: User, api_client: Client, make_contacts: Any
) -> None:
    vip = Group.objects.create(name="VIP")
    first, second, _third = make_contacts(3)
    first.groups.add(vip)
    second.groups.add(vip)
    members = Segment.objects.create(name="VIP members", rules=["group = VIP"])
    typo = Segment.objects.create(name="Typo", rules=["group = VPI"], match_any=True)
    client = api_client(marketer, "contacts:read")
    listed = client.get("/api/v1/segments").json()["results"]
    assert [(s["name"], s["match"], s["rules"]) for s in listed] == [
        ("Typo", "any", ["group = VPI"]),
        ("VIP members", "all", ["group = VIP"]),
    ]
    assert client.get(f"/api/v1/segments/{members.pk}").json()["name"] == "VIP members"
    counted = client.get(f"/api/v1/segments/{members.pk}/count").json()
    assert (counted["count"], counted["warnings"]) == (2, [])
    Contact.objects.get(pk=second.pk).groups.clear()
    assert client.get(f"/api/v1/segments/{members.pk}/count").json()["count"] == 1  # afresh
    warned = client.get(f"/api/v1/segments/{typo.pk}/count").json()
    assert warned["count"] == 0 and "VPI" in warned["warnings"][0]
    assert error_of(client.get("/api/v1/segments/999/count"), 404)


def test_segments_need_the_view_segment_permission_and_the_read_scope(
    approver: User, make_user: Any, api_client: Client
) -> None:
    segment = Segment.objects.create(name="All GB", rules=["country = GB"])
    assert api_client(approver).get(f"/api/v1/segments/{segment.pk}/count").status_code == 200
    error = error_of(api_client(make_user("nobody")).get("/api/v1/segments"), 403)
    assert "campaigns.view_segment" in error["message"]
    assert error_of(api_client(approver, "contacts:write").get("/api/v1/segments"), 403)
