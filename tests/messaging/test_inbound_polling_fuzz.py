"""Polled replies fuzzed like webhooks: whatever Bwatmesaj's list holds, a poll stores each
reply once or raises a ProviderError, never anything else, and logs no number or body.

The list comes over real HTTP from the fake gateway (a 200 answer injected per page).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from messaging.exceptions import ProviderError
from messaging.inbound import poll_account
from messaging.models import InboundMessage, ProviderAccount
from tests.fakegateway import FakeGateway

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
LIST = "/api/v3/sms"
SECRET_BODY = "¤secret words"  # "¤": in no log line of ours

texts = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "\x00", "\ud800", "x" * 5000, "+447911200001", "447911200002"]),
)
values = st.one_of(
    texts,
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
recent = st.integers(min_value=0, max_value=3000).map(
    lambda s: (timezone.now() - timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
)
times = st.one_of(recent, values, st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31"]))
entries = st.one_of(
    st.fixed_dictionaries(
        {
            "uid": st.one_of(st.text(min_size=1, max_size=20), values),
            "from": st.one_of(st.sampled_from(["447911200001", "+447911200003"]), values),
            "to": values,
            "message": st.one_of(st.just(SECRET_BODY), texts, values),
            "direction": st.one_of(st.sampled_from(["inbound", "outbound", "INBOUND"]), values),
            "sent_at": times,
        }
    ),
    values,  # entries that are no object at all
)
pages = st.one_of(
    st.fixed_dictionaries(
        {
            "status": st.just("success"),
            "data": st.fixed_dictionaries(
                {
                    "data": st.lists(entries, max_size=6),
                    "last_page": st.one_of(st.just(1), values),
                    "current_page": values,
                }
            ),
        }
    ),
    st.dictionaries(st.sampled_from(["status", "data", "message"]), values, max_size=3),
)


def rolled_back(check: Callable[[], None]) -> None:
    with transaction.atomic():
        try:
            check()
        finally:
            transaction.set_rollback(True)


@pytest.fixture
def account(make_account: Callable[..., ProviderAccount]) -> ProviderAccount:
    return make_account("bwatmesaj")


def poll_with(gateway: FakeGateway, account: ProviderAccount, page: dict[str, Any]) -> int | None:
    """One poll of one page (answered with `page`); None when it raised a ProviderError."""
    gateway.inject(LIST, "status", status=200, body=page)
    account.inbound_cursor = {}
    try:
        return poll_account(account, page_budget=1)
    except ProviderError:
        return None


@FUZZ
@given(page=pages)
@example(
    page={
        "status": "success",
        "data": {"data": [{"uid": "u1", "from": "", "direction": "inbound"}], "last_page": 1e999},
    }
)
@example(
    page={
        "status": "success",
        "data": {
            "data": [
                {"uid": "u1", "from": "447911200001", "message": "STOP\x00", "direction": "in"},
                {"uid": "u1", "from": "447911200001", "message": "STOP", "direction": "in"},
            ],
            "last_page": 1,
        },
    }
)
@example(
    page={
        "status": "success",
        "data": {
            "data": [{"uid": " ", "from": "447911200001", "message": "hi", "direction": "in"}],
            "last_page": 1,
        },
    }
)
def test_any_list_page_is_polled_without_a_crash_and_each_reply_stored_once(
    gateway: FakeGateway,
    account: ProviderAccount,
    caplog: pytest.LogCaptureFixture,
    page: dict[str, Any],
) -> None:
    caplog.set_level(logging.DEBUG)

    def check() -> None:
        caplog.clear()
        first = poll_with(gateway, account, page)
        stored = InboundMessage.objects.count()
        assert first is None or first == stored
        # The same page again (the cursor forgotten): nothing is stored twice.
        again = poll_with(gateway, account, page)
        assert again in (None, 0)
        assert InboundMessage.objects.count() == stored
        ids = list(InboundMessage.objects.values_list("provider_message_id", flat=True))
        assert len(ids) == len(set(ids)) and "" not in ids
        assert "¤" not in caplog.text and "447911200001" not in caplog.text

    rolled_back(check)
