"""GET /api/v1/messages, /messages/{id} and /inbound: what was sent and what came back,
filtered, a page at a time, each message with its status history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from api.models import ApiToken
from campaigns.models import Campaign
from contacts.models import Contact
from messaging import transactional
from messaging.inbound import Incoming, receive
from messaging.models import Message, ProviderAccount
from tests.api.conftest import ApiClient
from tests.conftest import phone
from tests.fakegateway import FakeGateway

pytestmark = pytest.mark.django_db
M = Message.Status


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return body["error"]


@pytest.fixture
def reader(marketer: User, api_client: Callable[..., ApiClient]) -> ApiClient:
    return api_client(marketer, "campaigns:read")


def campaign_message(campaign: Campaign, i: int, **fields: Any) -> Message:
    return Message.objects.create(
        campaign=campaign,
        provider_account=campaign.provider_account,
        phone=phone(i),
        body=f"Hi {i}",
        client_ref=f"ref-{campaign.pk}-{i}",
        **fields,
    )


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_messages_are_listed_newest_first_and_filtered(
    reader: ApiClient, locmem: ProviderAccount, make_campaign: Callable[..., Campaign]
) -> None:
    spring = make_campaign(locmem)
    first = campaign_message(spring, 1, status=M.DELIVERED)
    second = campaign_message(spring, 2, status=M.FAILED, error_code="INVALID_PHONE_NUMBER")
    one_off = transactional.queue(transactional.Outgoing(to="07911 200001", body="Code 1"))
    Message.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(days=2))

    assert ids(reader.get("/api/v1/messages")) == [one_off.pk, second.pk, first.pk]
    assert ids(reader.get("/api/v1/messages", campaign=spring.pk)) == [second.pk, first.pk]
    assert ids(reader.get("/api/v1/messages", status="failed")) == [second.pk]
    assert ids(reader.get("/api/v1/messages", kind="transactional")) == [one_off.pk]
    assert ids(reader.get("/api/v1/messages", kind="campaign")) == [second.pk, first.pk]
    # A number in any form finds its messages, whichever way they were sent.
    assert ids(reader.get("/api/v1/messages", phone="07911 200001")) == [one_off.pk, first.pk]
    assert ids(reader.get("/api/v1/messages", phone="+44 (0)7911 200001")) == [one_off.pk, first.pk]
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(reader.get("/api/v1/messages", since=since)) == [one_off.pk, second.pk]
    assert ids(reader.get("/api/v1/messages", since=since[:19])) == [one_off.pk, second.pk]
    row = reader.get("/api/v1/messages", status="failed").json()["results"][0]
    assert (row["kind"], row["campaign"], row["to"], row["provider"]) == (
        "campaign",
        spring.pk,
        phone(2),
        "mem",
    )
    assert row["error_code"] == "INVALID_PHONE_NUMBER"


def test_a_list_is_read_a_page_at_a_time_by_its_cursor(
    reader: ApiClient, locmem: ProviderAccount, make_campaign: Callable[..., Campaign]
) -> None:
    spring = make_campaign(locmem)
    made = [campaign_message(spring, i).pk for i in range(5)]

    seen, cursor, pages = [], None, 0
    while True:
        answer = reader.get("/api/v1/messages", limit=2, **({"cursor": cursor} if cursor else {}))
        seen += ids(answer)
        pages += 1
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            break

    assert seen == sorted(made, reverse=True)
    assert pages == 3


@pytest.mark.parametrize(
    "params",
    [
        {"phone": "12"},
        {"status": "lost"},
        {"kind": "spam"},
        {"since": "yesterday"},
        {"cursor": "not-ours"},
        {"limit": 5000},
        {"campaign": 0},
        {"campaign": 2**70},
    ],
)
def test_a_bad_filter_is_refused_with_422(reader: ApiClient, params: dict[str, Any]) -> None:
    answer = reader.get("/api/v1/messages", **params)

    assert answer.status_code == 422
    assert error_of(answer)["code"] == "invalid"


def test_a_message_shows_its_history_from_its_row_and_the_provider_s_reports(
    reader: ApiClient,
    make_account: Callable[..., ProviderAccount],
    gateway: FakeGateway,
    client: Client,
) -> None:
    account = make_account("bulksmsrates", bulk=False)
    message = transactional.queue(transactional.Outgoing(to=phone(3), body="Code 3"))
    transactional.send_due()
    message.refresh_from_db()
    body, headers = gateway.dlr_request(message.provider_message_id, secret="whsec_test")
    client.post(
        f"/webhooks/bulksmsrates/{account.name}/", body, "application/json", headers=headers
    )

    answer = reader.get(f"/api/v1/messages/{message.pk}")

    assert answer.status_code == 200
    shown = answer.json()
    assert (shown["status"], shown["provider_message_id"]) == (
        "delivered",
        message.provider_message_id,
    )
    steps = [(h["status"], h["source"]) for h in shown["history"]]
    assert steps == [("pending", "herald"), ("sent", "herald"), ("delivered", "provider")]
    assert shown["history"][-1]["note"].startswith("report ")


def test_a_failed_or_skipped_message_s_history_ends_with_why(
    reader: ApiClient, locmem: ProviderAccount, make_campaign: Callable[..., Campaign]
) -> None:
    spring = make_campaign(locmem)
    failed = campaign_message(spring, 4, status=M.FAILED, error_code="BLACKLISTED")
    failed.error_message = "the number is blacklisted"
    failed.save()
    skipped = campaign_message(spring, 5, status=M.SKIPPED, skip_reason="opted_out")

    failed_history = reader.get(f"/api/v1/messages/{failed.pk}").json()["history"]
    skipped_history = reader.get(f"/api/v1/messages/{skipped.pk}").json()["history"]

    assert failed_history[-1] | {"at": None} == {
        "status": "failed",
        "at": None,
        "source": "herald",
        "error_code": "BLACKLISTED",
        "note": "the number is blacklisted",
    }
    assert (skipped_history[-1]["status"], skipped_history[-1]["note"]) == ("skipped", "opted_out")


def test_a_message_never_shows_its_claim(
    reader: ApiClient, locmem: ProviderAccount, make_campaign: Callable[..., Campaign]
) -> None:
    message = campaign_message(make_campaign(locmem), 6)
    (claimed,) = Message.objects.filter(pk=message.pk).claim(1)

    text = reader.get(f"/api/v1/messages/{message.pk}").content.decode()
    listed = reader.get("/api/v1/messages").content.decode()

    assert claimed.claim_token is not None
    for page in (text, listed):
        assert str(claimed.claim_token) not in page and claimed.claim_token.hex not in page
        assert "claim" not in page and "lease" not in page


def test_an_unknown_message_is_404(reader: ApiClient) -> None:
    for path in ("/api/v1/messages/999", f"/api/v1/messages/{2**70}"):
        answer = reader.get(path)
        assert answer.status_code == 404
        assert error_of(answer)["code"] == "not_found"


def test_reading_messages_needs_the_scope_and_the_view_permission(
    api_client: Callable[..., ApiClient],
    marketer: User,
    approver: User,
    make_user: Callable[..., User],
) -> None:
    nobody = make_user("nemo")  # staff, no role

    without_scope = api_client(marketer, "messages:send").get("/api/v1/messages")
    without_permission = api_client(nobody).get("/api/v1/messages")
    approver_reads = api_client(approver, "campaigns:read").get("/api/v1/messages")

    assert (without_scope.status_code, error_of(without_scope)["code"]) == (403, "forbidden")
    assert without_permission.status_code == 403
    assert "messaging.view_message" in error_of(without_permission)["message"]
    assert approver_reads.status_code == 200


# Inbound.


def test_inbound_messages_are_listed_and_filtered(
    reader: ApiClient, locmem: ProviderAccount, make_campaign: Callable[..., Campaign]
) -> None:
    spring = make_campaign(locmem)
    contact = Contact.objects.create(phone=phone(7), first_name="Ada")
    campaign_message(spring, 7, contact=contact, status=M.SENT, sent_at=timezone.now())
    answer = receive(
        locmem, Incoming(channel="sms", phone=phone(7), body="Thanks!", provider_message_id="in-1")
    )
    stop = receive(
        locmem, Incoming(channel="sms", phone=phone(8), body="STOP", provider_message_id="in-2")
    )
    old = receive(
        locmem, Incoming(channel="sms", phone=phone(9), body="Hi", provider_message_id="in-3")
    )
    old.inbound.received_at = timezone.now() - timedelta(days=3)
    old.inbound.save()

    everything = reader.get("/api/v1/inbound")
    # Newest first as written (by id), whatever time the gateway gave.
    assert ids(everything) == [old.inbound.pk, stop.inbound.pk, answer.inbound.pk]
    assert ids(reader.get("/api/v1/inbound", action="opt_out")) == [stop.inbound.pk]
    assert ids(reader.get("/api/v1/inbound", campaign=spring.pk)) == [answer.inbound.pk]
    assert ids(reader.get("/api/v1/inbound", phone="07911 200009")) == [old.inbound.pk]
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(reader.get("/api/v1/inbound", since=since)) == [stop.inbound.pk, answer.inbound.pk]
    row = everything.json()["results"][2]
    assert row["from"] == phone(7) and row["body"] == "Thanks!"
    assert (row["contact"], row["campaign"], row["action"]) == (contact.pk, spring.pk, "none")
    assert row["answers"] == Message.objects.get(phone=phone(7)).pk
    assert reader.get("/api/v1/inbound", action="shout").status_code == 422


def test_reading_inbound_needs_the_view_permission_of_replies(
    api_client: Callable[..., ApiClient], make_user: Callable[..., User]
) -> None:
    reads_messages_only = make_user("rita")
    reads_messages_only.user_permissions.add(
        Permission.objects.get(codename="view_message", content_type__app_label="messaging")
    )
    client = api_client(reads_messages_only, "campaigns:read")

    assert client.get("/api/v1/messages").status_code == 200
    refused = client.get("/api/v1/inbound")
    assert refused.status_code == 403
    assert "messaging.view_inboundmessage" in error_of(refused)["message"]
    assert ApiToken.objects.count() == 1
