"""The three real backends against the fake gateway, over real HTTP on loopback.

Each test sends through the engine's own path (claim -> send_claimed -> record)
and checks what reached the fake and what the Message rows say afterwards.
"""

import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from contacts.models import Channel, OptOut
from messaging.backends import buzzbip
from messaging.dispatch import (
    mark_expired_leases_in_doubt,
    poll_statuses,
    reconcile_in_doubt,
    send_claimed,
)
from messaging.exceptions import AccountError
from messaging.http import REQUEST_RETRY
from messaging.models import Message, ProviderAccount
from tests.conftest import phone
from tests.fakegateway import FakeGateway

pytestmark = pytest.mark.django_db
M = Message.Status
MakeAccount = Callable[..., ProviderAccount]


def send(
    account: ProviderAccount, count: int = 1, body: str = "Hello", **fields: Any
) -> tuple[list[Message], AccountError | None]:
    """Queue `count` messages on `account`, send them as a worker would, return the rows."""
    rows = [
        Message.objects.create(
            provider_account=account,
            phone=fields.pop("to", None) or phone(i),
            sender=account.sender,
            body=body.format(i=i),
            client_ref=Message.new_client_ref(),
            **fields,
        )
        for i in range(count)
    ]
    claimed = Message.objects.filter(pk__in=[m.pk for m in rows]).claim(count)
    error = send_claimed(claimed)
    return list(Message.objects.filter(pk__in=[m.pk for m in rows]).order_by("pk")), error


def bodies(gateway: FakeGateway, path: str) -> list[Any]:
    return [r.json for r in gateway.requests if r.path.split("?")[0] == path]


# Buzzbip


@pytest.fixture(autouse=True)
def _fresh_buzzbip_tokens() -> None:
    buzzbip._tokens.clear()


def test_buzzbip_sms_logs_in_once_and_reuses_the_token(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("buzzbip")
    rows, error = send(account, 3, body="Hi {i}")
    assert error is None
    assert [m.status for m in rows] == [M.SENT] * 3
    assert gateway.count("buzzbip", "/api/login_check") == 1
    assert sorted(bodies(gateway, "/api/sms/"), key=lambda b: b["number"]) == [
        {"number": phone(i), "message": f"Hi {i}"} for i in range(3)
    ]
    sends = [r for r in gateway.requests if r.path == "/api/sms/"]
    assert all(r.headers["Authorization"].startswith("Bearer ") for r in sends)
    assert {m.provider_message_id for m in rows} == {str(m) for m in (1, 2, 3)}


def test_buzzbip_whatsapp_sends_the_approved_template_to_number_and_country(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("buzzbip")
    rows, _ = send(
        account,
        channel=Channel.WHATSAPP,
        template_id="welcome_1",
        template_params=["Ada"],
        to="+447911200042",
    )
    assert rows[0].status == M.SENT
    assert bodies(gateway, "/api/whatsapp/") == [
        {
            "template_id": "welcome_1",
            "phone_number": "7911200042",
            "country_code": "44",
            "parameters": ["Ada"],
        }
    ]


def test_buzzbip_unapproved_template_pauses_instead_of_failing(
    make_account: MakeAccount,
) -> None:
    rows, error = send(make_account("buzzbip"), channel=Channel.WHATSAPP, template_id="draft_9")
    assert isinstance(error, AccountError) and "Template is not approved" in str(error)
    assert rows[0].status == M.PENDING and rows[0].attempts == 0


def test_buzzbip_logs_in_again_once_when_the_token_expired(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("buzzbip")
    send(account)
    gateway.expire_tokens()
    rows, error = send(account, 1)
    assert error is None and rows[0].status == M.SENT
    assert gateway.count("buzzbip", "/api/login_check") == 2
    statuses = [r.status for r in gateway.requests if r.path == "/api/sms/"]
    assert statuses == [201, 401, 201]


def test_buzzbip_logs_in_again_shortly_before_the_token_runs_out(
    make_account: MakeAccount, gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A token we consider good for one more second: the next send after that logs in first.
    monkeypatch.setattr(buzzbip, "TOKEN_TTL_SECONDS", buzzbip.TOKEN_REFRESH_MARGIN + 1)
    account = make_account("buzzbip")
    send(account)
    time.sleep(1.1)
    send(account)
    assert gateway.count("buzzbip", "/api/login_check") == 2
    assert [r.status for r in gateway.requests if r.path == "/api/sms/"] == [201, 201]


def test_buzzbip_without_api_access_is_an_account_error_that_says_so(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    gateway.buzzbip_no_api_access.add("herald")
    rows, error = send(make_account("buzzbip"))
    assert isinstance(error, AccountError)
    assert "hasApiAccess" in str(error) and "Buzzbip Admin" in str(error)
    assert rows[0].status == M.PENDING
    # Not mistaken for an expired token: no second login.
    assert gateway.count("buzzbip", "/api/login_check") == 1


def test_buzzbip_wrong_password_is_an_account_error(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    gateway.buzzbip_users["herald"] = "changed"
    _, error = send(make_account("buzzbip"))
    assert isinstance(error, AccountError) and "Invalid credentials" in str(error)
    assert gateway.count("buzzbip", "/api/sms/") == 0


def test_buzzbip_invalid_number_fails_that_message(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    # One request at a time: the fault answers whichever request comes first, and two
    # in flight at once arrive in either order.
    account = make_account("buzzbip", concurrency=1)
    gateway.inject(
        "/api/sms/",
        "status",
        status=400,
        body={"status": "error", "message": "Invalid phone number.", "code": "INVALID_PHONE"},
    )
    rows, error = send(account, 2)
    assert error is None
    assert [m.status for m in rows] == [M.FAILED, M.SENT]
    assert rows[0].error_code == "INVALID_PHONE"


def test_buzzbip_reads_jsend_not_the_http_status(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    # An error dressed as 200 is still an error.
    gateway.inject(
        "/api/sms/",
        "status",
        status=200,
        body={"status": "fail", "message": "Missing required field: message", "code": 400},
    )
    rows, _ = send(make_account("buzzbip"))
    assert rows[0].status == M.FAILED and "Missing required field" in rows[0].error_message


def test_buzzbip_status_comes_from_the_paginated_history(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("buzzbip", status_poll_after=0)
    rows, _ = send(account, 130)
    first, last = rows[0], rows[-1]
    gateway.set_status(first.provider_message_id, "delivered")  # on page 2 (newest first)
    gateway.set_status(last.provider_message_id, "undelivered")  # on page 1
    assert poll_statuses() == 2
    first.refresh_from_db()
    last.refresh_from_db()
    assert first.status == M.DELIVERED and last.status == M.FAILED
    assert last.error_code == "UNDELIVERED"
    pages = [r.path for r in gateway.requests if r.path.startswith("/api/sms/?")]
    assert pages == ["/api/sms/?currentPage=1&limit=100", "/api/sms/?currentPage=2&limit=100"]
    assert first.events.get().raw["state"] == "delivered"


def test_buzzbip_trailing_slash_is_part_of_the_route(gateway: FakeGateway) -> None:
    # The fake refuses the route without it, as Buzzbip does; our requests always carry it.
    import requests

    answer = requests.post(gateway.url + "/api/sms", json={}, timeout=5)
    assert answer.status_code in (401, 404)


# Timeouts, dropped connections, 5xx and 429 (through the shared HTTP layer)


@pytest.mark.parametrize("fault", ["slow", "drop"])
@pytest.mark.parametrize(
    ("backend", "path"), [("buzzbip", "/api/sms/"), ("bwatmesaj", "/api/v3/sms/send")]
)
def test_no_answer_after_the_request_went_out_is_in_doubt_not_failed_nor_resent(
    make_account: MakeAccount, gateway: FakeGateway, backend: str, path: str, fault: str
) -> None:
    account = make_account(backend, read_timeout=0.3)
    gateway.inject(path, fault, seconds=1.0)
    rows, error = send(account)
    assert error is None
    assert rows[0].status == M.IN_DOUBT
    assert rows[0].error_code in ("READ_TIMEOUT", "CONNECTION_DROPPED")
    # The provider did accept it, and we asked exactly once.
    assert gateway.count(backend, path) == 1
    assert len([m for m in gateway.messages.values() if m.provider == backend]) == 1
    # Nothing claims an in-doubt row again.
    assert Message.objects.all().claim(10) == []


@pytest.mark.parametrize("fault", ["slow", "drop"])
def test_a_lost_answer_to_a_send_the_provider_knows_by_its_key_is_asked_again(
    make_account: MakeAccount, gateway: FakeGateway, fault: str
) -> None:
    account = make_account("bulksmsrates", read_timeout=0.3, bulk=False)
    gateway.inject("/v1/sms/send", fault, seconds=1.0)
    rows, error = send(account)
    # Asked again with the same client_ref: the provider answers 409 with its own id.
    (accepted,) = gateway.messages.values()
    assert error is None and gateway.count("bulksmsrates", "/v1/sms/send") == 2
    assert rows[0].status == M.SENT and rows[0].provider_message_id == accepted.id


def test_a_send_whose_every_answer_is_lost_is_in_doubt_and_at_the_provider_once(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bulksmsrates", read_timeout=0.3, bulk=False)
    gateway.inject("/v1/sms/send", "drop", times=REQUEST_RETRY.attempts)
    rows, _ = send(account)
    assert rows[0].status == M.IN_DOUBT and rows[0].error_code == "CONNECTION_DROPPED"
    assert gateway.count("bulksmsrates", "/v1/sms/send") == REQUEST_RETRY.attempts
    assert len(gateway.messages) == 1


def test_a_connection_that_never_opened_is_retried_later(make_account: MakeAccount) -> None:
    account = make_account("bulksmsrates")
    ProviderAccount.objects.filter(pk=account.pk).update(base_url="http://127.0.0.1:9")
    account.refresh_from_db()
    rows, _ = send(account)
    assert rows[0].status == M.PENDING and rows[0].error_code == "CONNECT"
    assert rows[0].next_attempt_at > rows[0].updated_at


def test_503_is_retried_within_the_request_then_succeeds(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    gateway.inject("/api/v3/sms/send", "status", status=503, body="<h1>Service Unavailable</h1>")
    rows, _ = send(make_account("bwatmesaj"))
    assert rows[0].status == M.SENT
    assert [r.status for r in gateway.requests if r.path == "/api/v3/sms/send"] == [503, 200]


def test_a_jsend_500_puts_the_message_back_for_later(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    gateway.inject("/api/sms/", "status", status=500, times=1)
    rows, _ = send(make_account("buzzbip"))
    assert rows[0].status == M.PENDING and rows[0].attempts == 1
    assert gateway.count("buzzbip", "/api/sms/") == 1


def test_429_waits_for_retry_after_then_sends(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    gateway.inject(
        "/v1/sms/send",
        "status",
        status=429,
        headers={"Retry-After": "1"},
        body={"error": {"code": "RATE_LIMITED", "message": "Too many requests"}},
    )
    started = time.monotonic()
    rows, _ = send(make_account("bulksmsrates", bulk=False))
    assert rows[0].status == M.SENT
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in gateway.requests if r.path == "/v1/sms/send"] == [429, 200]


def test_a_long_retry_after_is_left_to_the_engine(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    gateway.inject(
        "/v1/sms/send",
        "status",
        status=429,
        times=5,
        headers={"Retry-After": "120"},
        body={"error": {"code": "RATE_LIMITED", "message": "Too many requests"}},
    )
    rows, _ = send(make_account("bulksmsrates", bulk=False))
    assert rows[0].status == M.PENDING and rows[0].error_code == "RATE_LIMITED"
    assert (rows[0].next_attempt_at - rows[0].updated_at).total_seconds() >= 119
    assert gateway.count("bulksmsrates", "/v1/sms/send") == 1


# BulkSMSRates


def test_bulksmsrates_single_send_with_keys_client_ref_and_cost(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    rows, _ = send(make_account("bulksmsrates"))
    (request,) = [r for r in gateway.requests if r.path == "/v1/sms/send"]
    assert request.headers["X-API-Key"] == "bsms_test_key"
    assert request.headers["X-API-Secret"] == "sk_test_secret"
    assert "X-Sandbox" not in request.headers
    assert request.json == {
        "to": phone(0),
        "from": "Herald",
        "body": "Hello",
        "client_ref": rows[0].client_ref,
    }
    assert rows[0].status == M.SENT and rows[0].provider_message_id in gateway.messages
    assert str(rows[0].cost) == "0.03500"


def test_bulksmsrates_bulk_sends_personalised_bodies_as_per_recipient_variables(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    rows, _ = send(make_account("bulksmsrates"), 25, body="Hi {i}, sale today")
    (payload,) = bodies(gateway, "/v1/sms/bulk")
    assert payload["body"] == "{{text}}"
    assert payload["recipients"][3] == {"to": phone(3), "variables": {"text": "Hi 3, sale today"}}
    assert {m.status for m in rows} == {M.SENT}
    (batch_id,) = {m.provider_batch_id for m in rows}
    assert len(gateway.batches[batch_id]) == 25
    assert sorted(gateway.messages[i].body for i in gateway.batches[batch_id]) == sorted(
        m.body for m in rows
    )


def test_bulksmsrates_bulk_with_one_body_sends_it_once(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    send(make_account("bulksmsrates"), 5, body="Same for all")
    (payload,) = bodies(gateway, "/v1/sms/bulk")
    assert payload["body"] == "Same for all"
    assert payload["recipients"] == [{"to": phone(i)} for i in range(5)]


def test_bulksmsrates_chunks_more_than_10000_recipients(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bulksmsrates")
    messages = [
        Message(
            provider_account=account,
            phone=phone(i),
            sender="Herald",
            body="Flash sale",
            client_ref=f"ref-{i}",
        )
        for i in range(10_050)
    ]
    results = account.get_backend().send_messages(messages)
    assert len(results) == 10_050 and all(r.accepted for r in results)
    assert sorted(len(p["recipients"]) for p in bodies(gateway, "/v1/sms/bulk")) == [50, 10_000]


@pytest.mark.parametrize(
    ("http", "code", "status", "opted_out"),
    [
        (400, "VALIDATION_ERROR", M.FAILED, False),
        (400, "INVALID_PHONE_NUMBER", M.FAILED, False),
        (400, "MESSAGE_TOO_LONG", M.FAILED, False),
        (404, "NOT_FOUND", "account", False),
        (400, "INVALID_SENDER_ID", "account", False),
        (401, "UNAUTHORIZED", "account", False),
        (401, "ACCOUNT_LOCKED", "account", False),
        (429, "ACCOUNT_LOCKED", "account", False),
        (403, "FORBIDDEN", "account", False),
        (409, "CONFLICT", M.IN_DOUBT, False),
        (422, "INSUFFICIENT_BALANCE", "account", False),
        (422, "OPT_OUT", M.FAILED, True),
        (422, "BLACKLISTED", M.FAILED, False),
        (500, "INTERNAL_ERROR", M.PENDING, False),
        (503, "SERVICE_UNAVAILABLE", M.PENDING, False),
    ],
)
def test_bulksmsrates_every_error_code_does_what_it_means(
    make_account: MakeAccount,
    gateway: FakeGateway,
    http: int,
    code: str,
    status: str,
    opted_out: bool,
) -> None:
    body = {"error": {"code": code, "message": f"{code} said", "details": {}}}
    gateway.inject("/v1/sms/send", "status", status=http, body=body, times=REQUEST_RETRY.attempts)
    rows, error = send(make_account("bulksmsrates"))
    if status == "account":
        assert isinstance(error, AccountError) and error.code == code
        assert rows[0].status == M.PENDING and rows[0].attempts == 0
    else:
        assert error is None
        assert rows[0].status == status and rows[0].error_code == code
    assert OptOut.objects.filter(phone=phone(0), source="provider").exists() == opted_out


def test_bulksmsrates_refusals_from_the_gateway_itself(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bulksmsrates", bulk=False)
    gateway.bulk_opted_out.add(phone(1))
    gateway.bulk_blacklisted.add(phone(2))
    rows, error = send(account, 3)
    assert error is None
    assert [(m.status, m.error_code) for m in rows] == [
        (M.SENT, ""),
        (M.FAILED, "OPT_OUT"),
        (M.FAILED, "BLACKLISTED"),
    ]
    assert list(OptOut.objects.values_list("phone", flat=True)) == [phone(1)]
    gateway.bulk_balance = 0
    rows, error = send(account, 1, to=phone(7))
    assert isinstance(error, AccountError) and error.code == "INSUFFICIENT_BALANCE"


def test_bulksmsrates_wrong_secret_pauses(make_account: MakeAccount, gateway: FakeGateway) -> None:
    gateway.bulk_keys["bsms_test_key"] = "rotated"
    rows, error = send(make_account("bulksmsrates"), 3)
    assert isinstance(error, AccountError) and error.code == "UNAUTHORIZED"
    assert {m.status for m in rows} == {M.PENDING}


def test_bulksmsrates_bulk_refused_for_one_number_finds_it_one_by_one(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    body = {"error": {"code": "VALIDATION_ERROR", "message": "recipients[1].to is invalid"}}
    gateway.inject("/v1/sms/bulk", "status", status=400, body=body)
    gateway.bulk_opted_out.add(phone(1))
    rows, _ = send(make_account("bulksmsrates"), 3)
    assert [m.status for m in rows] == [M.SENT, M.FAILED, M.SENT]
    assert gateway.count("bulksmsrates", "/v1/sms/send") == 3


def test_bulksmsrates_a_resend_of_an_accepted_client_ref_is_recognised(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bulksmsrates", bulk=False, read_timeout=0.3)
    gateway.inject("/v1/sms/send", "slow", seconds=1.0, times=REQUEST_RETRY.attempts)
    rows, _ = send(account)
    assert rows[0].status == M.IN_DOUBT
    # Staff release it for another try: the provider answers 409 with its own id.
    Message.objects.filter(pk=rows[0].pk).update(status=M.PENDING)
    (claimed,) = Message.objects.all().claim(1)
    send_claimed([claimed])
    claimed.refresh_from_db()
    (accepted,) = [m for m in gateway.messages.values() if m.provider == "bulksmsrates"]
    assert claimed.status == M.SENT and claimed.provider_message_id == accepted.id


def test_bulksmsrates_sandbox_header_per_account(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    rows, _ = send(make_account("bulksmsrates", sandbox=True, bulk=False))
    (request,) = [r for r in gateway.requests if r.path == "/v1/sms/send"]
    assert request.headers["X-Sandbox"] == "true"
    assert rows[0].provider_message_id.startswith("sandbox-msg-")
    assert gateway.bulk_balance == 1_000_000


def test_bulksmsrates_whatsapp_template_send(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    rows, _ = send(
        make_account("bulksmsrates"),
        channel=Channel.WHATSAPP,
        template_id="order_shipped",
        template_params=["Alice", "ORD-12345"],
    )
    assert rows[0].status == M.SENT
    assert bodies(gateway, "/v1/whatsapp/send") == [
        {
            "to": phone(0),
            "type": "template",
            "template": {
                "name": "order_shipped",
                "language": "en",
                "components": [
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": "Alice"},
                            {"type": "text", "text": "ORD-12345"},
                        ],
                    }
                ],
            },
        }
    ]


def test_bulksmsrates_status_lookup(make_account: MakeAccount, gateway: FakeGateway) -> None:
    account = make_account("bulksmsrates", bulk=False, status_poll_after=0)
    rows, _ = send(account, 3)
    gateway.set_status(rows[0].provider_message_id, "delivered")
    gateway.set_status(rows[1].provider_message_id, "expired")
    assert poll_statuses() == 2
    statuses = {m.pk: (m.status, m.error_code) for m in Message.objects.all()}
    assert statuses[rows[0].pk] == (M.DELIVERED, "")
    assert statuses[rows[1].pk] == (M.FAILED, "EXPIRED")
    assert statuses[rows[2].pk] == (M.SENT, "")
    assert gateway.count("bulksmsrates", "/v1/sms/") - gateway.count(None, "/v1/sms/send") == 3


def test_bulksmsrates_honours_rate_limit_remaining(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    # Our account is set faster than the key really is: the provider's headers slow us down.
    gateway.bulk_rate = 2
    rows, _ = send(make_account("bulksmsrates", bulk=False, rate_limit=100, concurrency=1), 5)
    assert {m.status for m in rows} == {M.SENT}
    assert gateway.rate_limited == 0


def test_bulksmsrates_sends_in_flight_at_once_wait_out_an_emptied_key_and_all_go(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    # Several requests are on their way before the first answer says the key is spent:
    # those refused wait for it to refill (every worker holds), then go; none is lost.
    gateway.bulk_rate = 2
    rows, _ = send(make_account("bulksmsrates", bulk=False, rate_limit=100), 5)
    assert {m.status for m in rows} == {M.SENT}
    assert len(gateway.messages) == 5
    assert gateway.rate_limited > 0


def test_polling_waits_before_the_first_lookup(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bwatmesaj")  # default: a minute for a report to come by itself
    send(account, 2)
    assert poll_statuses() == 0
    assert gateway.count("bwatmesaj", "/api/v3/sms/") == gateway.count(None, "/api/v3/sms/send")


# Bwatmesaj


def test_bwatmesaj_batches_one_body_as_comma_separated_recipients(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    rows, _ = send(make_account("bwatmesaj"), 3, body="Same for all")
    (request,) = [r for r in gateway.requests if r.path == "/api/v3/sms/send"]
    assert request.headers["Accept"] == "application/json"
    assert request.headers["Authorization"] == "Bearer 13|testtoken"
    assert request.json == {
        "recipient": ",".join(phone(i).lstrip("+") for i in range(3)),
        "sender_id": "Herald",
        "type": "plain",
        "message": "Same for all",
    }
    assert {m.status for m in rows} == {M.SENT}
    assert len({m.provider_message_id for m in rows}) == 3
    assert all(gateway.messages[m.provider_message_id].to == m.phone for m in rows)


def test_bwatmesaj_different_bodies_go_separately(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    rows, _ = send(make_account("bwatmesaj"), 2, body="Hi {i}")
    assert gateway.count("bwatmesaj", "/api/v3/sms/send") == 2
    assert all(m.provider_message_id for m in rows)


@pytest.mark.parametrize("sender", ["Herald Shop", "TwelveLetter", "Hérald", ""])
def test_bwatmesaj_refuses_a_bad_sender_before_sending(
    make_account: MakeAccount, gateway: FakeGateway, sender: str
) -> None:
    account = make_account("bwatmesaj")
    account.sender = sender
    account.save()
    rows, error = send(account)
    assert isinstance(error, AccountError) and error.code == "INVALID_SENDER_ID"
    assert gateway.count("bwatmesaj") == 0 and rows[0].status == M.PENDING


@pytest.mark.parametrize("sender", ["HeraldShop1", "+447911200000", "447911200000"])
def test_bwatmesaj_takes_a_short_name_or_a_number_as_sender(sender: str) -> None:
    from messaging.backends.bwatmesaj import BwatmesajBackend

    assert BwatmesajBackend.validate_sender(sender) is None


def test_bwatmesaj_one_refused_number_fails_alone(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bwatmesaj")
    gateway.inject(
        "/api/v3/sms/send",
        "status",
        status=422,
        body={"status": "error", "message": f"Invalid phone number: {phone(1).lstrip('+')}"},
    )
    rows, _ = send(account, 3, body="Same")
    assert [m.status for m in rows] == [M.PENDING, M.FAILED, M.PENDING]
    Message.objects.filter(status=M.PENDING).update(next_attempt_at=rows[0].updated_at)
    send_claimed(Message.objects.all().claim(10))
    assert sorted(Message.objects.values_list("status", flat=True)) == [M.FAILED, M.SENT, M.SENT]


@pytest.mark.parametrize(
    ("change", "expected"),
    [("bwat_tokens", "Unauthenticated"), ("bwat_balance", "sufficient unit")],
)
def test_bwatmesaj_account_refusals_pause(
    make_account: MakeAccount, gateway: FakeGateway, change: str, expected: str
) -> None:
    setattr(gateway, change, set() if change == "bwat_tokens" else 0)
    rows, error = send(make_account("bwatmesaj"), 2, body="Same")
    assert isinstance(error, AccountError) and expected in str(error)
    assert {m.status for m in rows} == {M.PENDING}


def test_bwatmesaj_login_page_redirect_is_an_account_error(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    gateway.inject("/api/v3/sms/send", "status", status=302, body="<html>login</html>")
    _, error = send(make_account("bwatmesaj"))
    assert isinstance(error, AccountError) and "login page" in str(error)


def test_bwatmesaj_status_lookup_by_uid(make_account: MakeAccount, gateway: FakeGateway) -> None:
    account = make_account("bwatmesaj", status_poll_after=0)
    rows, _ = send(account, 2, body="Same")
    gateway.set_status(rows[0].provider_message_id, "delivered")
    gateway.set_status(rows[1].provider_message_id, "failed")
    assert poll_statuses() == 2
    assert sorted(Message.objects.values_list("status", flat=True)) == [M.DELIVERED, M.FAILED]
    paths = {r.path for r in gateway.requests if r.method == "GET"}
    assert paths == {f"/api/v3/sms/{m.provider_message_id}" for m in rows}


def test_a_status_lookup_raw_payload_is_kept_without_the_number(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bwatmesaj", status_poll_after=0)
    rows, _ = send(account)
    gateway.set_status(rows[0].provider_message_id, "delivered")
    poll_statuses()
    event = rows[0].events.get()
    assert event.raw["status"] == "Delivered" and phone(0).lstrip("+") not in json.dumps(event.raw)


# Delivery reports: the fake posts signed DLRs to our running server


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_signed_dlrs_from_the_gateway_reach_bulk_sent_messages(
    make_account: MakeAccount, gateway: FakeGateway, live_server: Any
) -> None:
    account = make_account("bulksmsrates")
    rows, _ = send(account, 3, body="Hi {i}")
    (batch_id,) = {m.provider_batch_id for m in rows}
    delivered, failed, opted_out = gateway.batches[batch_id]
    url = f"{live_server.url}/webhooks/bulksmsrates/{account.name}/"
    answers = [
        gateway.post_dlr(url, delivered, "message.delivered", secret="whsec_test"),
        gateway.post_dlr(url, failed, "message.failed", secret="whsec_test"),
        gateway.post_dlr(url, opted_out, "opt_out", secret="whsec_test"),
        gateway.post_dlr(url, delivered, "message.delivered", secret="wrong"),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 401]
    by_phone = {m.phone: m for m in Message.objects.all()}
    assert by_phone[gateway.messages[delivered].to].status == M.DELIVERED
    assert by_phone[gateway.messages[delivered].to].provider_message_id == delivered
    assert by_phone[gateway.messages[failed].to].status == M.FAILED
    assert by_phone[gateway.messages[failed].to].error_code == "UNDELIV"
    assert OptOut.objects.filter(phone=gateway.messages[opted_out].to).exists()


def test_staff_check_an_account_from_the_admin(
    make_account: MakeAccount, gateway: FakeGateway, admin_client: Any
) -> None:
    good = make_account("bulksmsrates")
    bad = make_account("buzzbip")
    gateway.buzzbip_no_api_access.add("herald")
    page = admin_client.post(
        "/admin/messaging/provideraccount/",
        {"action": "check_connection", "_selected_action": [good.pk, bad.pk]},
        follow=True,
    ).content.decode()
    assert "Bulksmsrates: OK - balance 10000.00 GBP available" in page
    assert "Buzzbip: " in page and "hasApiAccess" in page
    assert "sk_test_secret" not in page


# Sends in doubt are looked up at the provider before anything is sent again


@pytest.fixture
def reconcile_now(settings: Any) -> Callable[[], dict[str, int]]:
    settings.HERALD_RECONCILE_AFTER_SECONDS = 0
    return reconcile_in_doubt


def sent_to(gateway: FakeGateway, provider: str) -> list[str]:
    return sorted(m.to for m in gateway.messages.values() if m.provider == provider)


@pytest.mark.parametrize("bulk", [False, True])
def test_a_send_the_provider_got_is_found_not_resent(
    make_account: MakeAccount,
    gateway: FakeGateway,
    reconcile_now: Callable[[], dict[str, int]],
    bulk: bool,
) -> None:
    path = "/v1/sms/bulk" if bulk else "/v1/sms/send"
    # A single send is asked again by its client_ref: lose every answer to it.
    gateway.inject(path, "slow", seconds=1.0, times=1 if bulk else REQUEST_RETRY.attempts)
    account = make_account("bulksmsrates", read_timeout=0.3, bulk=bulk)
    rows, _ = send(account, 3 if bulk else 1, body="Same")
    assert {m.status for m in rows} == {M.IN_DOUBT}
    assert reconcile_now() == {"sent": len(rows), "resend": 0}
    ids = {m.provider_message_id for m in Message.objects.all()}
    assert ids == {m.id for m in gateway.messages.values()}
    assert set(Message.objects.values_list("status", flat=True)) == {M.SENT}
    assert sent_to(gateway, "bulksmsrates") == sorted(m.phone for m in rows)


@pytest.mark.parametrize("bulk", [False, True])
def test_a_send_the_provider_never_got_is_sent_again_once(
    make_account: MakeAccount,
    gateway: FakeGateway,
    reconcile_now: Callable[[], dict[str, int]],
    bulk: bool,
) -> None:
    path = "/v1/sms/bulk" if bulk else "/v1/sms/send"
    gateway.inject(path, "drop_before", times=1 if bulk else REQUEST_RETRY.attempts)
    account = make_account("bulksmsrates", bulk=bulk)
    rows, _ = send(account, 3 if bulk else 1, body="Same")
    assert {m.status for m in rows} == {M.IN_DOUBT} and gateway.messages == {}
    assert reconcile_now() == {"sent": 0, "resend": len(rows)}
    send_claimed(Message.objects.all().claim(10))
    assert set(Message.objects.values_list("status", flat=True)) == {M.SENT}
    assert sent_to(gateway, "bulksmsrates") == sorted(m.phone for m in rows)


def test_a_worker_killed_mid_bulk_request_is_found_by_its_claim(
    make_account: MakeAccount, gateway: FakeGateway, reconcile_now: Callable[[], dict[str, int]]
) -> None:
    account = make_account("bulksmsrates")
    for i in range(4):
        Message.objects.create(
            provider_account=account,
            phone=phone(i),
            sender="Herald",
            body="Flash",
            client_ref=f"r{i}",
        )
    claimed = Message.objects.all().claim(10)
    # The request reaches the provider, then the worker dies before recording anything.
    backend = account.get_backend()
    _, answer = backend.post_to_provider(backend.build_payload(claimed), claimed)
    assert answer.status_code == 200 and len(gateway.messages) == 4
    Message.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert mark_expired_leases_in_doubt() == 4
    assert reconcile_now() == {"sent": 4, "resend": 0}
    assert Message.objects.all().claim(10) == []
    assert gateway.count("bulksmsrates", "/v1/sms/bulk") == 1


def test_buzzbip_finds_a_send_in_doubt_in_its_history(
    make_account: MakeAccount, gateway: FakeGateway, reconcile_now: Callable[[], dict[str, int]]
) -> None:
    account = make_account("buzzbip", read_timeout=0.3)
    send(account, 2, body="Hi {i}")
    gateway.inject("/api/sms/", "slow", seconds=1.0)
    rows, _ = send(account, 1, body="Late", to=phone(9))
    assert rows[0].status == M.IN_DOUBT
    assert reconcile_now() == {"sent": 1, "resend": 0}
    rows[0].refresh_from_db()
    assert rows[0].status == M.SENT
    assert gateway.messages[rows[0].provider_message_id].to == phone(9)


def test_bwatmesaj_finds_a_send_in_doubt_in_its_sms_list(
    make_account: MakeAccount, gateway: FakeGateway, reconcile_now: Callable[[], dict[str, int]]
) -> None:
    account = make_account("bwatmesaj", read_timeout=0.3)
    for i in range(30):  # more than a page of the list, sent earlier
        send(account, 1, body=f"Earlier {i}", to=phone(20 + i))
    gateway.inject("/api/v3/sms/send", "drop")
    got, _ = send(account, 1, body="Got it", to=phone(1))
    gateway.inject("/api/v3/sms/send", "drop_before")
    lost, _ = send(account, 1, body="Never got it", to=phone(2))
    assert {got[0].status, lost[0].status} == {M.IN_DOUBT}
    assert reconcile_now() == {"sent": 1, "resend": 1}
    got[0].refresh_from_db()
    assert got[0].status == M.SENT
    assert gateway.messages[got[0].provider_message_id].to == phone(1)
    send_claimed(Message.objects.all().claim(10))
    assert sent_to(gateway, "bwatmesaj").count(phone(2)) == 1
    assert sent_to(gateway, "bwatmesaj").count(phone(1)) == 1


def test_a_claim_about_to_run_out_is_given_back_unsent(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bulksmsrates", bulk=False)
    Message.objects.create(
        provider_account=account, phone=phone(0), sender="Herald", body="Hi", client_ref="r0"
    )
    (claimed,) = Message.objects.all().claim(1)
    # As if the worker had waited for the rate limit until its lease nearly lapsed.
    claimed.lease_expires_at = timezone.now() + timedelta(seconds=1)
    send_claimed([claimed])
    claimed.refresh_from_db()
    assert (claimed.status, claimed.error_code) == (M.PENDING, "LEASE_NEAR_END")
    assert claimed.attempts == 0 and claimed.next_attempt_at <= timezone.now()  # not counted
    assert gateway.count("bulksmsrates", "/v1/sms/send") == 0


# Single sends go several at once (messaging.concurrency)


@pytest.mark.parametrize(
    ("backend", "path"), [("bulksmsrates", "/v1/sms/send"), ("buzzbip", "/api/sms/")]
)
def test_a_send_waiting_out_a_retry_after_holds_up_no_other(
    make_account: MakeAccount, gateway: FakeGateway, backend: str, path: str
) -> None:
    # A lone 429 that does not say the account is spent: that request waits its second,
    # the others go on meanwhile, and it goes once its wait is over.
    gateway.inject(path, "status", status=429, headers={"Retry-After": "1"})
    rows, error = send(make_account(backend, bulk=False, concurrency=4), 12, body="Hi {i}")
    assert error is None and {m.status for m in rows} == {M.SENT}
    sends = [r for r in gateway.requests if r.path == path]
    refused = next(r for r in sends if r.status == 429)
    retried = next(r for r in sends if r.json == refused.json and r.status != 429)
    assert retried.at - refused.at >= 1.0  # its Retry-After, honoured
    went_meanwhile = [r for r in sends if refused.at < r.at < retried.at and r.status < 300]
    assert len(went_meanwhile) == 11  # every other message
    assert len([m for m in gateway.messages.values() if m.provider == backend]) == 12


def test_single_sends_in_flight_at_once_are_limited_by_the_account_concurrency(
    make_account: MakeAccount, gateway: FakeGateway
) -> None:
    account = make_account("bulksmsrates", bulk=False, concurrency=3)
    for _ in range(9):
        gateway.inject("/v1/sms/send", "slow", seconds=0.3)
    rows, _ = send(account, 9)
    assert {m.status for m in rows} == {M.SENT}
    # The fake answers a slow request 0.3 s after it came: never more than 3 open at once.
    starts = sorted(r.at for r in gateway.requests if r.path == "/v1/sms/send")
    assert max(sum(1 for t in starts if s <= t < s + 0.3) for s in starts) <= 3
    assert max(sum(1 for t in starts if s <= t < s + 0.3) for s in starts) >= 2
