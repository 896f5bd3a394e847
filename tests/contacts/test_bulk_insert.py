"""contacts.bulk.bulk_insert and insert_numbered: every row, in order, whatever the count;
on SQLite in statements of many rows each, of a few sizes, within the connection's limit
of values a statement."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection

from contacts.bulk import bulk_insert, insert_numbered
from contacts.models import Group

pytestmark = pytest.mark.django_db

TABLE = Group._meta.db_table
COLUMNS = ("name", "description", "created_at")
sqlite_only = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="SQLite's statements (PostgreSQL writes by COPY)"
)


def groups(count: int, prefix: str = "g") -> list[tuple[str, str, str]]:
    return [(f"{prefix}{i:05d}", f"row {i}", "2026-12-07 10:00:00") for i in range(count)]


@contextmanager
def inserts_run() -> Iterator[list[int]]:
    """The row count of each INSERT SQLite runs meanwhile (a row at a time counts 1 each)."""
    seen: list[int] = []

    def traced(sql: str) -> None:
        if sql.startswith(f"INSERT INTO {TABLE} "):
            seen.append(sql.count("("))  # the column list's, and one a row
            seen[-1] -= 1

    connection.ensure_connection()
    raw = connection.connection
    raw.set_trace_callback(traced)
    try:
        yield seen
    finally:
        raw.set_trace_callback(None)


@pytest.mark.parametrize("count", [1, 7, 512, 513, 5000])
def test_every_row_goes_in_in_order_with_the_ids_it_was_given(count: int) -> None:
    rows = groups(count)
    ids = insert_numbered(TABLE, COLUMNS, rows)
    assert len(ids) == count
    stored = dict(Group.objects.values_list("pk", "name"))
    assert [stored[pk] for pk in ids] == [row[0] for row in rows]
    bulk_insert(TABLE, COLUMNS, groups(count, prefix="h"))
    assert Group.objects.count() == 2 * count


@sqlite_only
def test_thousands_of_rows_go_in_a_few_statements_of_a_few_sizes() -> None:
    """A row a statement, the thread writing a build's chunk won the GIL back from the one
    reading the next chunk after each row: they took turns instead of overlapping."""
    with inserts_run() as seen:
        bulk_insert(TABLE, COLUMNS, groups(5000))
        bulk_insert(TABLE, COLUMNS, groups(4321, prefix="h"))
        bulk_insert(TABLE, COLUMNS, groups(77, prefix="k"))
    assert sum(seen) == 5000 + 4321 + 77
    assert len(seen) <= 3 * 14
    assert all(size & (size - 1) == 0 for size in seen)  # powers of two: a few to cache
    assert max(seen) * len(COLUMNS) <= 16_384


@sqlite_only
def test_a_sqlite_that_allows_fewer_values_a_statement_still_takes_every_row() -> None:
    """Builds of SQLite before 3.32 allow 999 values a statement."""
    connection.ensure_connection()
    raw = connection.connection
    before = raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    try:
        with inserts_run() as seen:
            bulk_insert(TABLE, COLUMNS, groups(5000))
    finally:
        raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, before)
    assert Group.objects.count() == 5000
    assert max(seen) * len(COLUMNS) <= 999
