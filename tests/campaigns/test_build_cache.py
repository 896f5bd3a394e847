"""A large build's writer connection gets a page cache its indexes fit in (SQLite), and
only that connection: the worker's own keeps SQLite's default for the sends after."""

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection

from campaigns import sending
from campaigns.models import Campaign
from contacts.models import Group
from messaging.models import Message, ProviderAccount
from tests.messaging.test_short_links import sending as started

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's page cache"),
]


def cache_size() -> int:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        return int(cursor.fetchone()[0])


def test_a_large_build_writes_with_a_roomy_cache_on_its_own_connection(
    make_contacts: Callable[..., list[Any]],
    make_campaign: Callable[..., Campaign],
    locmem: ProviderAccount,
    marketer: User,
    approver: User,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.HERALD_SQLITE_BUILD_CACHE_MB = 48
    group = Group.objects.create(name="Many")
    make_contacts(12, group)
    campaign = started(make_campaign(locmem, group), marketer, approver)
    # Built in chunks of 5 by the second connection (a large build), not 10,000.
    monkeypatch.setattr(sending, "PIPELINE_FROM", 6)
    monkeypatch.setattr(sending, "MATERIALISE_CHUNK", 5)
    seen: list[int] = []
    write = sending._write_chunk

    def writing(*args: Any, **kwargs: Any) -> bool:
        seen.append(cache_size())  # in the writer's thread, on its connection
        return write(*args, **kwargs)

    monkeypatch.setattr(sending, "_write_chunk", writing)
    before = cache_size()
    sending.materialise(campaign)
    assert Message.objects.filter(campaign=campaign).count() == 12
    assert seen == [-48 * 1024] * 3
    assert cache_size() == before  # the worker's own connection is left as it was
