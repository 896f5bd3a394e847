"""Every route of the schema, fed inputs that fit it and inputs that don't (schemathesis):
the API answers each with its documented shape, and never with a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from api.main import api
from api.models import ApiToken, Scope
from config.wsgi import application

#: Examples per route and mode: enough to meet malformed ids, cursors, phones and bodies,
#: few enough for the whole suite's time.
EXAMPLES = 20


@pytest.fixture(autouse=True)
def _requests_keep_the_test_connection() -> Iterator[None]:
    """As Django's test client does: a request must not close the test's connection (its
    transaction holds the token)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def bearer(db: Any) -> dict[str, str]:
    boss, _ = User.objects.get_or_create(
        username="fuzz-boss", defaults={"is_superuser": True, "is_staff": True}
    )
    _token, text = ApiToken.objects.issue(boss, "fuzz", list(Scope.values))
    return {"Authorization": f"Bearer {text}"}


# Loaded as the app serves it, straight from the API object (a lazy fixture-loaded schema
# does not work with this pytest), and called through the WSGI application.
schema = schemathesis.openapi.from_dict(dict(api.get_openapi_schema(path_prefix="/api/v1")))
schema.app = application
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=EXAMPLES
)


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_input_makes_the_api_answer_500(case: Any, bearer: dict[str, str]) -> None:
    response = case.call(headers=bearer)
    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code >= 400 and response.status_code != 405:
        error = response.json()["error"]
        assert set(error) == {"code", "message", "details"}, response.text
