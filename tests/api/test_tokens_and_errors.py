"""Tokens: shown once, stored hashed, scoped, expiring, revocable, paced; one error shape."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from api.models import ApiToken, Scope
from tests.api.conftest import ApiClient

pytestmark = pytest.mark.django_db


def error_of(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]


def test_a_token_is_stored_hashed_and_names_its_user(marketer: Any) -> None:
    token, text = ApiToken.objects.issue(marketer, "shop", ["contacts:read"])
    assert text.startswith("hrld_")
    assert text not in (token.digest, token.key_id)
    assert not ApiToken.objects.filter(digest__contains=text[10:]).exists()
    answer = ApiClient(text).get("/api/v1/token")
    assert answer.status_code == 200
    assert answer.json()["user"] == "mia"
    assert answer.json()["scopes"] == ["contacts:read"]


def test_a_missing_or_wrong_token_is_401_in_the_error_shape(marketer: Any) -> None:
    _token, text = ApiToken.objects.issue(marketer, "shop", ["contacts:read"])
    for client in (ApiClient(None), ApiClient(text[:-2] + "xx"), ApiClient("nonsense")):
        answer = client.get("/api/v1/token")
        assert answer.status_code == 401
        assert error_of(answer)["code"] == "unauthorized"
        assert answer["WWW-Authenticate"] == "Bearer"


def test_revoked_and_expired_tokens_stop_working(marketer: Any) -> None:
    revoked, revoked_text = ApiToken.objects.issue(marketer, "old", ["contacts:read"])
    assert revoked.revoke()
    assert not revoked.revoke()
    expired, expired_text = ApiToken.objects.issue(marketer, "short", ["contacts:read"], 1)
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(1))
    for text in (revoked_text, expired_text):
        assert ApiClient(text).get("/api/v1/token").status_code == 401


def test_a_deactivated_user_s_tokens_stop_working(marketer: Any) -> None:
    _token, text = ApiToken.objects.issue(marketer, "shop", ["contacts:read"])
    marketer.is_active = False
    marketer.save()
    assert ApiClient(text).get("/api/v1/token").status_code == 401


def test_last_use_is_noted_at_most_once_a_minute(marketer: Any) -> None:
    token, text = ApiToken.objects.issue(marketer, "shop", ["contacts:read"])
    assert token.last_used_at is None
    ApiClient(text).get("/api/v1/token")
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    ApiClient(text).get("/api/v1/token")
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first


def test_unknown_scopes_are_refused_when_issuing(marketer: Any) -> None:
    with pytest.raises(ValueError, match="unknown scope"):
        ApiToken.objects.issue(marketer, "shop", ["contacts:read", "everything"])
    with pytest.raises(ValueError, match="no scope"):
        ApiToken.objects.issue(marketer, "shop", [])
    assert set(Scope.values) == {
        "contacts:read",
        "contacts:write",
        "campaigns:read",
        "campaigns:write",
        "messages:send",
    }


@override_settings(HERALD_API_RATE="3/min")
def test_a_token_over_its_pace_gets_429_with_retry_after(marketer: Any) -> None:
    _token, text = ApiToken.objects.issue(marketer, "shop", ["contacts:read"])
    _other, other_text = ApiToken.objects.issue(marketer, "crm", ["contacts:read"])
    client = ApiClient(text)
    answers = [client.get("/api/v1/token").status_code for _ in range(4)]
    # A minute's window may turn between two requests: then all four pass, and a fifth
    # and sixth make the point.
    if answers == [200] * 4:
        answers += [client.get("/api/v1/token").status_code for _ in range(2)]
    assert 429 in answers
    refused = client.get("/api/v1/token")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert error_of(refused)["code"] == "rate_limited"
    # Each token has its own pace.
    assert ApiClient(other_text).get("/api/v1/token").status_code == 200


def test_unknown_api_paths_answer_404_in_the_error_shape(admin_api: ApiClient) -> None:
    answer = admin_api.get("/api/v1/nothing-here")
    assert answer.status_code == 404
    assert error_of(answer)["code"] == "not_found"


def test_the_schema_and_docs_are_public(client: Any) -> None:
    schema = client.get("/api/v1/openapi.json")
    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "Herald API"
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower()


def test_a_body_over_django_s_limit_is_413_in_the_error_shape(admin_api: ApiClient) -> None:
    from django.conf import settings

    huge = {"name": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10), "phone": "+447911123456"}
    answer = admin_api.post("/api/v1/contacts", huge)
    assert answer.status_code == 413
    assert error_of(answer)["code"] == "too_large"


def test_a_post_to_an_unknown_api_path_is_404_not_a_csrf_page(admin_api: ApiClient) -> None:
    from django.test import Client

    answer = Client(enforce_csrf_checks=True).post("/api/v1/no/such/route", {})
    assert answer.status_code == 404
    assert error_of(answer)["code"] == "not_found"


def test_a_page_of_none_or_too_many_is_refused(admin_api: ApiClient) -> None:
    for limit in (0, 1001):
        answer = admin_api.get("/api/v1/contacts", limit=limit)
        assert answer.status_code == 422, limit
        assert error_of(answer)["code"] == "invalid"


def test_the_token_s_user_is_the_whole_user_when_asked(marketer: Any) -> None:
    marketer.email = "mia@example.com"
    marketer.save()
    _token, text = ApiToken.objects.issue(marketer, "shop", ["contacts:read"])
    found = ApiToken.objects.authenticate(text)
    assert found is not None
    assert found.user == marketer
    assert (found.user.username, found.user.is_active, found.user.is_superuser) == (
        "mia",
        True,
        False,
    )
    assert found.user.email == "mia@example.com"  # not read with the token: loaded when asked
    assert found.user.has_perm("contacts.view_contact")
