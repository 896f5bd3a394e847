"""API tests: a token for a user of each role, and a client that sends it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from api.models import ApiToken, Scope

ALL_SCOPES = list(Scope.values)


class ApiClient:
    """Django's test client speaking JSON with a Bearer token."""

    def __init__(self, token: str | None) -> None:
        self.client = Client()
        self.token = token

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**headers, **(extra or {})}

    def get(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
        return self.client.get(path, params, headers=self._headers(headers))

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.client.post(
            path, body or {}, content_type="application/json", headers=self._headers(headers)
        )

    def put(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.client.put(
            path, body or {}, content_type="application/json", headers=self._headers(headers)
        )

    def patch(self, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return self.client.patch(
            path, body or {}, content_type="application/json", headers=self._headers(headers)
        )

    def delete(self, path: str, headers: dict[str, str] | None = None) -> Any:
        return self.client.delete(path, headers=self._headers(headers))


@pytest.fixture
def api_client() -> Callable[..., ApiClient]:
    """api_client(user, *scopes): a client with a new token of `user` (every scope if none)."""

    def make(user: User, *scopes: str) -> ApiClient:
        _token, text = ApiToken.objects.issue(user, "tests", list(scopes or ALL_SCOPES))
        return ApiClient(text)

    return make


@pytest.fixture
def admin_api(db: Any, api_client: Callable[..., ApiClient]) -> ApiClient:
    """A token of a superuser with every scope."""
    boss = User.objects.create_superuser("boss", password="pw-boss")
    return api_client(boss)
