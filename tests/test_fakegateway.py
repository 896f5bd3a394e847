"""Quick checks of the fake gateways themselves, over real HTTP with plain requests."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator

import pytest
import requests

from tests.fakegateway import FakeGateway

BULK_HEADERS = {"X-API-Key": "bsms_test_key", "X-API-Secret": "sk_test_secret"}
BWAT_HEADERS = {"Authorization": "Bearer 13|testtoken", "Accept": "application/json"}
TIMEOUT = 5


@pytest.fixture
def fake() -> Iterator[FakeGateway]:
    with FakeGateway() as gateway:
        yield gateway


def buzzbip_token(fake: FakeGateway) -> str:
    answer = requests.post(
        f"{fake.url}/api/login_check",
        json={"username": "herald", "password": "secret"},
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200
    token: str = answer.json()["token"]
    return token


def bulk_send(fake: FakeGateway, **fields: object) -> requests.Response:
    payload = {"to": "+447911200001", "from": "Herald", "body": "Hi", **fields}
    return requests.post(
        f"{fake.url}/v1/sms/send", json=payload, headers=BULK_HEADERS, timeout=TIMEOUT
    )


def test_buzzbip_login_send_and_history(fake: FakeGateway) -> None:
    bad = requests.post(
        f"{fake.url}/api/login_check", json={"username": "herald", "password": "no"}, timeout=5
    )
    assert bad.status_code == 401
    assert bad.json() == {
        "status": "error",
        "message": "Invalid credentials.",
        "code": 401,
        "data": [],
    }

    auth = {"Authorization": f"Bearer {buzzbip_token(fake)}"}
    sent = requests.post(
        f"{fake.url}/api/sms/",
        json={"number": "+447911200001", "message": "Hello"},
        headers=auth,
        timeout=TIMEOUT,
    )
    assert sent.status_code == 201
    body = sent.json()
    assert body["status"] == "success"
    assert body["data"]["number"] == "+447911200001"
    assert body["data"]["state"] == "sent"
    message = fake.messages[str(body["data"]["id"])]
    assert (message.provider, message.to, message.body) == ("buzzbip", "+447911200001", "Hello")

    history = requests.get(
        f"{fake.url}/api/sms/?currentPage=1&limit=20", headers=auth, timeout=TIMEOUT
    )
    assert history.json()["data"]["total"] == 1
    assert history.json()["data"]["items"][0]["id"] == body["data"]["id"]

    invalid = requests.post(
        f"{fake.url}/api/sms/",
        json={"number": "07911200001", "message": "Hello"},
        headers=auth,
        timeout=TIMEOUT,
    )
    assert invalid.status_code == 400
    assert invalid.json()["code"] == "INVALID_PHONE"


def test_buzzbip_expired_token(fake: FakeGateway) -> None:
    auth = {"Authorization": f"Bearer {buzzbip_token(fake)}"}
    fake.expire_tokens()
    answer = requests.get(f"{fake.url}/api/sms/", headers=auth, timeout=TIMEOUT)
    assert answer.status_code == 401
    assert answer.json()["message"] == "Expired JWT Token"
    assert answer.json()["code"] == 401


def test_buzzbip_user_without_api_access_gets_403(fake: FakeGateway) -> None:
    fake.buzzbip_no_api_access.add("herald")
    auth = {"Authorization": f"Bearer {buzzbip_token(fake)}"}
    answer = requests.post(
        f"{fake.url}/api/sms/",
        json={"number": "+447911200001", "message": "Hello"},
        headers=auth,
        timeout=TIMEOUT,
    )
    assert answer.status_code == 403
    assert "User.hasApiAccess" in answer.json()["message"]
    assert fake.messages == {}


def test_buzzbip_route_without_trailing_slash_is_404(fake: FakeGateway) -> None:
    auth = {"Authorization": f"Bearer {buzzbip_token(fake)}"}
    answer = requests.post(
        f"{fake.url}/api/sms",
        json={"number": "+447911200001", "message": "Hello"},
        headers=auth,
        timeout=TIMEOUT,
    )
    assert answer.status_code == 404
    assert answer.json()["message"] == 'No route found for "POST /api/sms"'
    assert answer.json()["code"] == 404


def test_bulksmsrates_send(fake: FakeGateway) -> None:
    answer = bulk_send(fake, body="Hi {{name}}", variables={"name": "Ada"}, client_ref="m-1")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "queued"
    assert body["id"] == body["messageId"]
    assert (body["segments"], body["cost_micros"]) == (1, 35000)
    assert answer.headers["X-RateLimit-Limit"] == "100"
    message = fake.messages[body["id"]]
    assert (message.body, message.client_ref, message.status) == ("Hi Ada", "m-1", "queued")
    assert fake.bulk_balance == 1_000_000 - 4

    looked_up = requests.get(
        f"{fake.url}/v1/sms/{body['id']}", headers=BULK_HEADERS, timeout=TIMEOUT
    )
    assert looked_up.json()["data"]["status"] == "queued"

    unauthorised = requests.post(f"{fake.url}/v1/sms/send", json={}, timeout=TIMEOUT)
    assert unauthorised.status_code == 401
    assert unauthorised.json()["error"]["code"] == "UNAUTHORIZED"


def test_bulksmsrates_repeated_client_ref_is_409(fake: FakeGateway) -> None:
    first = bulk_send(fake, client_ref="order-7")
    again = bulk_send(fake, client_ref="order-7")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "CONFLICT"
    assert again.json()["error"]["details"] == {"id": first.json()["id"]}
    assert len(fake.messages) == 1


def test_bulksmsrates_token_bucket(fake: FakeGateway) -> None:
    fake.bulk_rate = 1
    assert bulk_send(fake).status_code == 200
    limited = bulk_send(fake)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "RATE_LIMITED"
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert fake.rate_limited == 1
    assert len(fake.messages) == 1


def test_bulksmsrates_bulk_with_one_bad_number(fake: FakeGateway) -> None:
    recipients = [
        {"to": "+447911200001", "variables": {"name": "Ada"}},
        {"to": "not-a-number", "variables": {"name": "Bob"}},
        {"to": "+447911200003", "variables": {"name": "Cy"}},
    ]
    answer = requests.post(
        f"{fake.url}/v1/sms/bulk",
        json={"recipients": recipients, "from": "Herald", "body": "Hi {{name}}", "client_ref": "b"},
        headers=BULK_HEADERS,
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert (data["accepted"], data["rejected"], data["cost_estimate"]) == (2, 1, 70)
    ids = fake.batches[data["batch_id"]]
    assert [fake.messages[i].body for i in ids] == ["Hi Ada", "Hi Cy"]
    assert {fake.messages[i].client_ref for i in ids} == {"b"}


def test_bwatmesaj_without_accept_header_is_redirected(fake: FakeGateway) -> None:
    answer = requests.post(
        f"{fake.url}/api/v3/sms/send",
        json={"recipient": "447911200001", "sender_id": "Herald", "type": "plain", "message": "x"},
        headers={"Authorization": "Bearer 13|testtoken"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/login"
    assert answer.headers["Content-Type"].startswith("text/html")
    assert fake.messages == {}


def test_bwatmesaj_send_to_two_recipients_returns_a_list(fake: FakeGateway) -> None:
    answer = requests.post(
        f"{fake.url}/api/v3/sms/send",
        json={
            "recipient": "447911200001,447911200002",
            "sender_id": "Herald",
            "type": "plain",
            "message": "Hello",
        },
        headers=BWAT_HEADERS,
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert isinstance(data, list)
    assert [item["to"] for item in data] == ["447911200001", "447911200002"]
    assert all(len(item["uid"]) == 13 for item in data)
    assert fake.bwat_balance == 1_000_000 - 2

    fake.set_status(data[0]["uid"], "delivered")
    looked_up = requests.get(
        f"{fake.url}/api/v3/sms/{data[0]['uid']}", headers=BWAT_HEADERS, timeout=TIMEOUT
    )
    assert looked_up.json()["data"]["status"] == "Delivered"


def test_slow_fault_times_out_after_the_message_is_accepted(fake: FakeGateway) -> None:
    fake.inject("/v1/sms/send", "slow", seconds=1.0)
    with pytest.raises(requests.ReadTimeout):
        requests.post(
            f"{fake.url}/v1/sms/send",
            json={"to": "+447911200001", "from": "Herald", "body": "Hi"},
            headers=BULK_HEADERS,
            timeout=(TIMEOUT, 0.2),
        )
    assert [m.to for m in fake.messages.values()] == ["+447911200001"]
    assert fake.requests[-1].fault == "slow"
    assert bulk_send(fake).status_code == 200  # the fault was used up


def test_drop_fault_raises_connection_error_after_the_message_is_accepted(
    fake: FakeGateway,
) -> None:
    fake.inject("/api/v3/sms/send", "drop")
    with pytest.raises(requests.ConnectionError):
        requests.post(
            f"{fake.url}/api/v3/sms/send",
            json={
                "recipient": "447911200001",
                "sender_id": "Herald",
                "type": "plain",
                "message": "x",
            },
            headers=BWAT_HEADERS,
            timeout=TIMEOUT,
        )
    assert [m.to for m in fake.messages.values()] == ["+447911200001"]
    assert fake.count("bwatmesaj", "/api/v3/sms/send") == 1


def test_drop_before_and_status_faults_do_not_process(fake: FakeGateway) -> None:
    fake.inject("/v1/", "drop_before")
    fake.inject("/v1/", "status", status=503, headers={"Retry-After": "1"})
    with pytest.raises(requests.ConnectionError):
        bulk_send(fake)
    unavailable = bulk_send(fake)
    assert unavailable.status_code == 503
    assert unavailable.headers["Retry-After"] == "1"
    assert unavailable.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert fake.messages == {}
    assert bulk_send(fake).status_code == 200


def test_dlr_request_signature_verifies(fake: FakeGateway) -> None:
    message_id = bulk_send(fake, client_ref="ref-1").json()["id"]
    body, headers = fake.dlr_request(message_id, secret="whsec", timestamp=1708257603)
    expected = hmac.new(b"whsec", b"1708257603." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Webhook-Signature"], f"sha256={expected}")
    assert headers["X-Webhook-Timestamp"] == "1708257603"
    assert headers["X-Webhook-Id"].startswith("wh_evt_")
    payload = json.loads(body)
    assert payload["event"] == "message.delivered"
    assert payload["data"]["message_id"] == message_id
    assert payload["data"]["carrier_status"] == "DELIVRD"
    assert payload["data"]["client_ref"] == "ref-1"
    assert fake.messages[message_id].status == "delivered"
