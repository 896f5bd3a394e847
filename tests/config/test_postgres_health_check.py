"""The PostgreSQL health check (config/postgresql): a quiet kept connection is taken
without a round trip; one the server has ended is found and replaced."""

from __future__ import annotations

import select
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

MARKER = "SELECT 'herald health marker'"


@pytest.fixture
def kept() -> Iterator[Any]:
    """A connection of its own, as a web process keeps one between requests."""
    wrapper = connections.create_connection("default")
    wrapper.ensure_connection()
    yield wrapper
    wrapper.close()


@pytest.fixture
def observer() -> Iterator[Any]:
    wrapper = connections.create_connection("default")
    yield wrapper
    wrapper.close()


def last_query(observer: Any, pid: int) -> str:
    with observer.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])
        (query,) = cursor.fetchone()
    return str(query)


def test_the_engine_is_ours(kept: Any) -> None:
    assert kept.settings_dict["ENGINE"] == "config.postgresql"
    assert kept.vendor == "postgresql"
    assert kept.health_check_enabled


def test_a_quiet_connection_is_usable_without_asking_the_server(kept: Any, observer: Any) -> None:
    with kept.cursor() as cursor:
        cursor.execute(MARKER)
    pid = kept.connection.info.backend_pid
    assert last_query(observer, pid) == MARKER

    # What Django does at the start of a request, then before its first query.
    kept.close_if_unusable_or_obsolete()
    kept.close_if_health_check_failed()

    assert kept.connection is not None  # kept, not reopened
    assert kept.connection.info.backend_pid == pid
    assert last_query(observer, pid) == MARKER  # no SELECT 1 reached the server


def test_a_connection_the_server_ended_is_replaced(kept: Any, observer: Any) -> None:
    pid = kept.connection.info.backend_pid
    socket = kept.connection.pgconn.socket
    with observer.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 5
    while not select.select([socket], [], [], 0.05)[0]:
        assert time.monotonic() < deadline, "the server did not end the connection"

    assert kept.is_usable() is False
    kept.close_if_unusable_or_obsolete()
    kept.close_if_health_check_failed()
    assert kept.connection is None

    with kept.cursor() as cursor:  # the next query opens a fresh one
        cursor.execute("SELECT pg_backend_pid()")
        (fresh,) = cursor.fetchone()
    assert fresh != pid


def test_anything_waiting_on_the_socket_is_decided_by_the_server(kept: Any, observer: Any) -> None:
    # A notification makes the socket readable on a live connection: the stock SELECT 1
    # runs, and finds it usable.
    with kept.cursor() as cursor:
        cursor.execute("LISTEN herald_health")
    pid = kept.connection.info.backend_pid
    socket = kept.connection.pgconn.socket
    with observer.cursor() as cursor:
        cursor.execute("NOTIFY herald_health")
    deadline = time.monotonic() + 5
    while not select.select([socket], [], [], 0.05)[0]:
        assert time.monotonic() < deadline, "the notification did not arrive"

    assert kept.is_usable() is True
    assert last_query(observer, pid) == "SELECT 1"
