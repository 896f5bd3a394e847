"""Contacts over the API: list, find by id or number, upsert one or thousands by the import's
rules, erase; scopes and permissions as on the dashboard; every bad input a 4xx."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection, transaction

from api.contacts import MOST_ROWS
from audit.models import AuditEvent
from contacts.models import Contact, ErasedNumber, Group, OptOut, Tag
from contacts.resources import ERASED_ROW
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


def post_raw(client: ApiClient, path: str, text: str | bytes) -> Any:
    return client.client.post(
        path, text, content_type="application/json", headers=client._headers(None)
    )


def test_a_marketer_lists_contacts_newest_first_with_groups_tags_and_opt_outs(
    marketer: User, api_client: Client
) -> None:
    vip, spring = Group.objects.create(name="VIP"), Tag.objects.create(name="spring")
    ann = Contact.objects.create(phone=ANN, first_name="Ann", attributes={"city": "Leeds"})
    ann.groups.add(vip)
    ann.tags.add(spring)
    ben = Contact.objects.create(phone=phone(1), first_name="Ben")
    OptOut.objects.create(phone=ANN, channel="whatsapp")
    answer = api_client(marketer, "contacts:read").get("/api/v1/contacts")
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [row["id"] for row in results] == [ben.pk, ann.pk]
    assert results[1] | {"created_at": None, "updated_at": None} == {
        "id": ann.pk,
        "phone": ANN,
        "country": "GG",  # +44 7911 is Guernsey's, as libphonenumber places it
        "first_name": "Ann",
        "last_name": "",
        "email": "",
        "language": "",
        "timezone": "",
        "attributes": {"city": "Leeds"},
        "groups": ["VIP"],
        "tags": ["spring"],
        "opted_out": ["whatsapp"],
        "consent_source": "",
        "consent_at": None,
        "created_at": None,
        "updated_at": None,
    }
    assert answer.json()["next_cursor"] is None


def test_pages_follow_next_cursor_to_the_end(admin_api: ApiClient, make_contacts: Any) -> None:
    made = make_contacts(5)
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = admin_api.get("/api/v1/contacts", **params).json()
        seen += [row["id"] for row in body["results"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted((c.pk for c in made), reverse=True)


def test_the_list_filters_by_group_tag_number_search_opt_out_and_time(
    admin_api: ApiClient, make_contacts: Any
) -> None:
    vip, spring = Group.objects.create(name="VIP"), Tag.objects.create(name="spring")
    first, second, third = make_contacts(3)
    first.groups.add(vip)
    second.groups.add(vip)
    second.tags.add(spring)
    OptOut.objects.create(phone=third.phone, channel="sms")
    Contact.objects.filter(pk=first.pk).update(first_name="Zoe")
    later = Contact.objects.get(pk=second.pk).created_at

    def ids(**params: Any) -> list[int]:
        answer = admin_api.get("/api/v1/contacts", **params)
        assert answer.status_code == 200, answer.content
        return [row["id"] for row in answer.json()["results"]]

    assert ids(group="VIP") == [second.pk, first.pk]
    assert ids(group="VIP", tag="spring") == [second.pk]
    assert ids(phone="07911 200001") == [second.pk]
    assert ids(search="Zo") == [first.pk]
    assert ids(search="+44 7911 20000") == [third.pk, second.pk, first.pk]
    assert ids(opted_out="true") == [third.pk]
    assert ids(opted_out="true", channel="whatsapp") == []
    assert ids(opted_out="false", channel="sms") == [second.pk, first.pk]
    assert ids(created_after=later.isoformat()) == [third.pk]
    Contact.objects.filter(pk=first.pk).update(updated_at=later.replace(year=later.year + 1))
    assert ids(updated_after=later.replace(month=1, day=1, year=later.year + 1).isoformat()) == [
        first.pk
    ]


def test_bad_filters_are_refused_in_the_error_shape_not_answered_empty(
    admin_api: ApiClient,
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"group": "Nobody"}, "group"),
        ({"tag": "nothing"}, "tag"),
        ({"phone": "12"}, "phone"),
        ({"phone": "07911 123456", "region": "ZZ"}, "region"),
        ({"cursor": "not-ours"}, "cursor"),
        ({"limit": "0"}, "limit"),
    ]
    for params, field in cases:
        error = error_of(admin_api.get("/api/v1/contacts", **params), 422)
        assert error["code"] == "invalid"
        assert field in str(error["details"]), (params, error)
    assert error_of(admin_api.get("/api/v1/contacts", created_after="yesterday"), 422)
    assert error_of(admin_api.get("/api/v1/contacts", search="Ann\x00"), 422)


def test_a_contact_is_found_by_id_and_by_its_number_in_any_form(admin_api: ApiClient) -> None:
    ann = Contact.objects.create(phone=ANN, first_name="Ann")
    assert admin_api.get(f"/api/v1/contacts/{ann.pk}").json()["first_name"] == "Ann"
    for typed in ("+44 7911 123456", "07911 123456", "00447911123456", "+44 (0)7911-123456"):
        answer = admin_api.get(f"/api/v1/contacts/by-phone/{typed}")
        assert answer.status_code == 200, (typed, answer.content)
        assert answer.json()["id"] == ann.pk
    # A national number is read in the region asked for.
    french = Contact.objects.create(phone="+33612345678")
    answer = admin_api.get("/api/v1/contacts/by-phone/06 12 34 56 78", region="FR")
    assert answer.json()["id"] == french.pk


def test_an_unknown_contact_is_404_and_a_malformed_id_or_number_422(
    admin_api: ApiClient,
) -> None:
    assert error_of(admin_api.get("/api/v1/contacts/999"), 404)["code"] == "not_found"
    assert error_of(admin_api.get("/api/v1/contacts/by-phone/07911 200099"), 404)
    assert error_of(admin_api.get("/api/v1/contacts/by-phone/12345"), 422)["details"]["phone"]
    for bad in ("abc", "0", str(2**64)):
        assert error_of(admin_api.get(f"/api/v1/contacts/{bad}"), 422)["code"] == "invalid"


def test_upsert_creates_with_201_then_updates_with_200_and_never_erases_a_value(
    admin_api: ApiClient,
) -> None:
    created = admin_api.post(
        "/api/v1/contacts",
        {"phone": "07911 123456", "first_name": "Ann", "email": "ann@example.com"},
    )
    assert created.status_code == 201, created.content
    assert created.json()["phone"] == ANN and created.json()["consent_source"] == "api"
    updated = admin_api.post(
        "/api/v1/contacts", {"phone": "+44 7911 123456", "last_name": "Lee", "email": ""}
    )
    assert updated.status_code == 200
    body = updated.json()
    assert (body["id"], body["first_name"], body["last_name"]) == (
        created.json()["id"],
        "Ann",
        "Lee",
    )
    assert body["email"] == "ann@example.com"  # an empty value leaves the stored one
    assert Contact.objects.count() == 1


def test_upsert_merges_attributes_and_adds_groups_and_tags(admin_api: ApiClient) -> None:
    vip, news = Group.objects.create(name="VIP"), Group.objects.create(name="News")
    Tag.objects.create(name="spring")
    ann = Contact.objects.create(phone=ANN, attributes={"city": "Leeds", "tier": "gold"})
    ann.groups.add(news)
    answer = admin_api.post(
        "/api/v1/contacts",
        {
            "phone": ANN,
            "attributes": {"Tier": "silver", "Visits": 3, "vip": True, "note": "", "x": None},
            "groups": ["VIP"],
            "tags": ["spring"],
        },
    )
    assert answer.status_code == 200, answer.content
    ann.refresh_from_db()
    # Names read as a file's column names are; blank and null values change nothing.
    assert ann.attributes == {"city": "Leeds", "tier": "silver", "visits": "3", "vip": "true"}
    assert set(ann.groups.all()) == {vip, news}  # added, never taken away
    assert answer.json()["tags"] == ["spring"]


def test_upsert_refuses_bad_values_with_the_field_and_the_reason(admin_api: ApiClient) -> None:
    for body, field in (
        ({"phone": "07911 12"}, "phone"),
        ({"phone": ANN, "email": "not-an-address"}, "email"),
        ({"phone": ANN, "timezone": "Mars/Olympus"}, "timezone"),
        ({"phone": ANN, "first_name": "x" * 101}, "first_name"),
        ({"phone": ANN, "groups": ["Nobody"]}, "groups"),
        ({"phone": ANN, "tags": ["never"]}, "tags"),
        ({"phone": ANN, "first_name": "Ann\x00"}, "first_name"),
        ({"phone": ANN, "attributes": {"city": "Leeds\ud800"}}, "attributes"),
    ):
        error = error_of(admin_api.post("/api/v1/contacts", body), 422)
        assert field in str(error["details"]), (body, error)
    malformed: list[dict[str, Any]] = [
        {"first_name": "Ann"},
        {"phone": 447911123456},
        {"phone": ANN, "firstname": "A"},
    ]
    for body in malformed:
        assert error_of(admin_api.post("/api/v1/contacts", body), 422)["code"] == "invalid"
    assert error_of(post_raw(admin_api, "/api/v1/contacts", "{not json"), 400)
    assert not Contact.objects.exists()


def test_an_erased_number_is_refused_as_the_import_refuses_it(
    admin_api: ApiClient, tmp_path: Path
) -> None:
    Contact.objects.create(phone=ANN)
    assert admin_api.delete("/api/v1/contacts/by-phone/07911123456").status_code == 200
    error = error_of(admin_api.post("/api/v1/contacts", {"phone": "07911 123456"}), 422)
    assert error["details"] == {"phone": [ERASED_ROW]}
    bulk = admin_api.post("/api/v1/contacts/bulk", {"contacts": [{"phone": ANN}]}).json()
    assert bulk["errors"] == [{"index": 0, "errors": {"phone": [ERASED_ROW]}}]
    errors_out = tmp_path / "rejected.csv"
    (tmp_path / "in.csv").write_text(f"phone\n{ANN}\n")
    call_command(
        "import_contacts", str(tmp_path / "in.csv"), "--errors-out", str(errors_out),
        "--workers", "1", stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip
    assert ERASED_ROW in errors_out.read_text()
    assert not Contact.objects.exists()


def test_bulk_writes_the_good_rows_and_lists_each_refused_one_by_index(
    admin_api: ApiClient,
) -> None:
    Group.objects.create(name="VIP")
    Contact.objects.create(phone=phone(1), first_name="Old")
    Contact.objects.create(phone=phone(2), first_name="Same")
    rows = [
        {"phone": phone(0), "first_name": "New", "groups": ["VIP"]},
        {"phone": phone(1), "first_name": "Changed"},
        {"phone": phone(2), "first_name": "Same"},
        {"phone": "n/a"},
        {"phone": phone(3), "email": "nope"},
        {"phone": phone(4), "first_name": 7},
        {"phone": phone(5), "groups": ["Nobody"]},
        {"phone": "07911 200000"},  # phone(0) again, in another form
        "not an object",
    ]
    answer = admin_api.post("/api/v1/contacts/bulk", {"contacts": rows})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert {k: body[k] for k in ("created", "updated", "unchanged", "failed")} == {
        "created": 1,
        "updated": 1,
        "unchanged": 1,
        "failed": 6,
    }
    assert [(e["index"], sorted(e["errors"])) for e in body["errors"]] == [
        (3, ["phone"]),
        (4, ["email"]),
        (5, ["first_name"]),
        (6, ["groups"]),
        (7, ["phone"]),
        (8, ["__all__"]),
    ]
    assert "index 0" in body["errors"][4]["errors"]["phone"][0]
    assert Contact.objects.get(phone=phone(1)).first_name == "Changed"
    assert list(Contact.objects.get(phone=phone(0)).groups.values_list("name", flat=True)) == [
        "VIP"
    ]
    assert set(Contact.objects.values_list("phone", flat=True)) == {phone(0), phone(1), phone(2)}


def test_attributes_are_read_alike_whether_a_batch_names_few_or_many(
    admin_api: ApiClient,
) -> None:
    """Up to 100 attribute names a batch are read as a file's columns; past that each row's
    come as one JSON cell, as in Herald's own export: what is stored is the same."""
    given = {"Loyalty Tier": " gold ", "City": "Leeds", "empty": "  ", "n": 7}
    few = admin_api.post("/api/v1/contacts", {"phone": phone(0), "attributes": given})
    assert few.status_code == 201
    many = [{"phone": phone(i), "attributes": {f"extra {i}": "x"}} for i in range(1, 101)]
    many.append({"phone": phone(101), "attributes": given})
    assert admin_api.post("/api/v1/contacts/bulk", {"contacts": many}).json()["created"] == 101
    stored = Contact.objects.get(phone=phone(101)).attributes
    assert stored == Contact.objects.get(phone=phone(0)).attributes
    assert stored == {"city": "Leeds", "loyalty_tier": "gold", "n": "7"}
    assert Contact.objects.get(phone=phone(5)).attributes == {"extra_5": "x"}
    nameless = admin_api.post("/api/v1/contacts", {"phone": phone(102), "attributes": {"?": "x"}})
    assert "no letter or digit" in error_of(nameless, 422)["details"]["attributes"][0]


def _csv(rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["phone", "first_name", "last_name", "email", "timezone", "tier", "city"])
    writer.writerows(rows)
    return out.getvalue()


def _stored() -> list[tuple[Any, ...]]:
    fields = ("phone", "country", "first_name", "last_name", "email", "timezone", "attributes")
    return list(Contact.objects.order_by("phone").values_list(*fields))


def test_bulk_stores_exactly_what_import_contacts_stores_for_the_same_rows(
    admin_api: ApiClient, tmp_path: Path
) -> None:
    rows = [
        ["+44 7911 200001", "Ada", "Brown", "ada@example.com", "", "gold", "Leeds"],
        ["07911 200002", "Ben", "", "", "Europe/London", "", "York"],
        ["0044 7911 200003", " Chloé ", "García", "", "", "silver", ""],
        ["07911 200002", "Ben again", "", "", "", "", ""],
        ["n/a", "Nobody", "", "", "", "", ""],
        ["07911 200004", "Dev", "", "bad-address", "", "", ""],
        ["07911 200005", "Ema", "", "", "Mars/Olympus", "", ""],
        ["+33 6 12 34 56 78", "Farid", "", "farid@example.fr", "", "bronze", "Paris"],
    ]
    path = tmp_path / "contacts.csv"
    path.write_text(_csv(rows))
    out = io.StringIO()
    call_command("import_contacts", str(path), "--workers", "1", stdout=out, stderr=io.StringIO())
    assert out.getvalue().splitlines()[-1] == "imported=4 updated=0 skipped=1 invalid=3"
    imported = _stored()
    Contact.objects.all().delete()

    def as_json(row: list[str]) -> dict[str, Any]:
        names = ("phone", "first_name", "last_name", "email", "timezone")
        found: dict[str, Any] = {name: value for name, value in zip(names, row, strict=False)}
        found["attributes"] = {"tier": row[5], "city": row[6]}
        return found

    body = admin_api.post("/api/v1/contacts/bulk", {"contacts": [as_json(r) for r in rows]}).json()
    assert (body["created"], body["failed"]) == (4, 4)
    assert _stored() == imported
    again = admin_api.post("/api/v1/contacts/bulk", {"contacts": [as_json(r) for r in rows]})
    assert (again.json()["created"], again.json()["unchanged"]) == (0, 4)


def test_bulk_refuses_more_than_10000_rows_whole_with_413(admin_api: ApiClient) -> None:
    rows = [{"phone": phone(i)} for i in range(MOST_ROWS + 1)]
    error = error_of(admin_api.post("/api/v1/contacts/bulk", {"contacts": rows}), 413)
    assert error["code"] == "too_large"
    assert not Contact.objects.exists()


def test_bulk_takes_10000_rows_past_djangos_upload_limit(admin_api: ApiClient) -> None:
    padding = "x" * 300  # a body of about 3.5 MB, past DATA_UPLOAD_MAX_MEMORY_SIZE's 2.5 MB
    rows = [{"phone": phone(i), "attributes": {"note": padding}} for i in range(MOST_ROWS)]
    text = json.dumps({"contacts": rows})
    assert len(text) > 2.5 * 1024 * 1024
    answer = post_raw(admin_api, "/api/v1/contacts/bulk", text)
    assert answer.status_code == 200, answer.content[:300]
    assert answer.json()["created"] == MOST_ROWS
    assert Contact.objects.count() == MOST_ROWS


def test_a_malformed_bulk_body_is_refused_in_the_error_shape(admin_api: ApiClient) -> None:
    assert error_of(post_raw(admin_api, "/api/v1/contacts/bulk", "[{"), 400)["code"] == (
        "bad_request"
    )
    for text in ("", "[]", '{"contacts": {}}', '{"contacts": [], "extra": 1}', "null"):
        error = error_of(post_raw(admin_api, "/api/v1/contacts/bulk", text), 422)
        assert error["details"] == {"contacts": ["a list of contacts, and nothing else"]}
    assert error_of(
        admin_api.post("/api/v1/contacts/bulk?region=XX", {"contacts": [{"phone": ANN}]}), 422
    )["details"] == {"region": ["unknown region"]}


def test_erasing_a_contact_removes_it_and_refuses_its_number_from_then_on(
    admin_api: ApiClient,
) -> None:
    ann = Contact.objects.create(phone=ANN)
    OptOut.objects.create(phone=ANN, channel="sms")
    answer = admin_api.delete(f"/api/v1/contacts/{ann.pk}")
    assert answer.status_code == 200
    assert answer.json()["erased"]["contacts"] == 1
    assert not Contact.objects.exists() and not OptOut.objects.exists()
    assert ErasedNumber.objects.includes(ANN)
    assert error_of(admin_api.delete(f"/api/v1/contacts/{ann.pk}"), 404)


def test_erasing_a_number_no_contact_holds_still_refuses_it_from_then_on(
    admin_api: ApiClient,
) -> None:
    OptOut.objects.create(phone=ANN, channel="whatsapp")
    answer = admin_api.delete("/api/v1/contacts/by-phone/+44 7911 123456")
    assert answer.json() == {"erased": {"opt-outs replaced by the erased entry": 1}}
    assert ErasedNumber.objects.includes(ANN)
    assert error_of(admin_api.delete("/api/v1/contacts/by-phone/not-a-number"), 422)


def test_a_token_without_the_scope_is_refused_with_403(marketer: User, api_client: Client) -> None:
    ann = Contact.objects.create(phone=ANN)
    reader = api_client(marketer, "contacts:read")
    assert reader.get("/api/v1/contacts").status_code == 200
    assert error_of(reader.post("/api/v1/contacts", {"phone": ANN}), 403)["code"] == "forbidden"
    assert error_of(reader.post("/api/v1/contacts/bulk", {"contacts": []}), 403)
    assert error_of(reader.delete(f"/api/v1/contacts/{ann.pk}"), 403)
    writer = api_client(marketer, "contacts:write")
    assert error_of(writer.get("/api/v1/contacts"), 403)
    assert error_of(writer.get(f"/api/v1/contacts/{ann.pk}"), 403)
    assert Contact.objects.filter(pk=ann.pk).exists()


def test_a_user_without_the_permission_is_refused_even_with_the_scope(
    approver: User, make_user: Any, api_client: Client
) -> None:
    ann = Contact.objects.create(phone=ANN)
    approving = api_client(approver)  # approvers see contacts, and change none
    assert approving.get(f"/api/v1/contacts/{ann.pk}").status_code == 200
    error = error_of(approving.post("/api/v1/contacts", {"phone": ANN, "first_name": "X"}), 403)
    assert "contacts.add_contact" in error["message"]
    assert error_of(approving.delete(f"/api/v1/contacts/{ann.pk}"), 403)
    nobody = api_client(make_user("nobody"))
    assert error_of(nobody.get("/api/v1/contacts"), 403)
    assert Contact.objects.get(pk=ann.pk).first_name == ""


def test_a_marketer_may_do_all_of_it(marketer: User, api_client: Client) -> None:
    client = api_client(marketer, "contacts:read", "contacts:write")
    made = client.post("/api/v1/contacts", {"phone": ANN})
    assert made.status_code == 201
    assert (
        client.post("/api/v1/contacts/bulk", {"contacts": [{"phone": phone(1)}]}).json()["created"]
        == 1
    )
    assert client.get(f"/api/v1/contacts/{made.json()['id']}").status_code == 200
    assert client.delete(f"/api/v1/contacts/{made.json()['id']}").status_code == 200
    assert list(Contact.objects.values_list("phone", flat=True)) == [phone(1)]
    assert not AuditEvent.objects.filter(detail__icontains=ANN).exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # roles survive the flush
def test_an_upsert_racing_another_writer_of_the_same_new_number_updates_it(
    make_user: Any, api_client: Client
) -> None:
    """The other writer inserts the number after the upsert looked and before it wrote:
    the upsert writes again, as an update (on PostgreSQL it meets the unique index; on
    SQLite it waits for the write lock)."""
    client = api_client(make_user("boss-racer", "Marketers"))
    inserted, finish = threading.Event(), threading.Event()

    def other_writer() -> None:
        with transaction.atomic():
            Contact.objects.create(phone=ANN, first_name="First")
            inserted.set()
            finish.wait(10)
        connection.close()

    answers: list[Any] = []

    def upsert() -> None:
        answers.append(client.post("/api/v1/contacts", {"phone": ANN, "last_name": "Second"}))
        connection.close()

    holder = threading.Thread(target=other_writer)
    holder.start()
    assert inserted.wait(10)
    racer = threading.Thread(target=upsert)
    racer.start()
    _wait_until_blocked()
    finish.set()
    holder.join(10)
    racer.join(30)
    assert answers and answers[0].status_code == 200, answers and answers[0].content
    ann = Contact.objects.get(phone=ANN)
    assert (ann.first_name, ann.last_name) == ("First", "Second")


def _wait_until_blocked() -> None:
    """Until the upsert waits on the other writer: on PostgreSQL for its row in the unique
    index (seen from a session of its own), on SQLite for the write lock (a moment)."""
    if connection.vendor != "postgresql":
        time.sleep(1)
        return
    deadline = time.monotonic() + 20
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the upsert never waited on the other writer")
