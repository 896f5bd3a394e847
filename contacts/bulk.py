"""Set-based reads and writes shared by the contact importer and the send engine.

Thousands of rows a statement: COPY or one prepared INSERT, ON CONFLICT DO NOTHING for
rows that may exist already, and lookups that hand PostgreSQL one text parameter instead
of a list of thousands. Table and column names come from model meta, values always go in
as parameters.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from django.db import connection

from contacts.models import Contact

T = TypeVar("T")


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Lists of `size` items (the last one shorter), read lazily."""
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def tune_bulk_transaction() -> None:
    """PostgreSQL settings for a transaction that writes one chunk of an import or audience.

    No waiting for the WAL flush at commit: a crash can lose the last chunks, but their
    progress record goes with them, so a resume simply redoes them. And point lookups
    of thousands of numbers: the planner would otherwise scan the table for each chunk.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
            cursor.execute("SET LOCAL enable_seqscan = off")


def bulk_insert(table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Insert many rows fast: COPY on PostgreSQL, one prepared statement on SQLite."""
    if not rows:
        return
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join(["%s"] * len(columns))
            sql = f"INSERT INTO {table} ({quoted}) VALUES ({marks})"  # noqa: S608 - names from model meta
            cursor.executemany(sql, rows)


def insert_missing(
    table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]], batch: int = 5000
) -> list[tuple[Any, ...]]:
    """Insert the rows a unique constraint does not already have; return those inserted."""
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    inserted: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch):
            part = rows[start : start + batch]
            values = ", ".join([one] * len(part))
            sql = (
                f"INSERT INTO {table} ({names}) VALUES {values} "  # noqa: S608 - names from meta
                f"ON CONFLICT DO NOTHING RETURNING {names}"
            )
            cursor.execute(sql, [value for row in part for value in row])
            inserted += cursor.fetchall()
    return inserted


def select_contacts_by_phone(columns: Iterable[str], phones: list[str]) -> list[tuple[Any, ...]]:
    """Plain SQL: the ORM's per-value work on an IN of thousands of numbers is the slow part.

    JSON columns come back as text (compared as text first, decoded only when they differ).
    """
    table = Contact._meta.db_table
    names = ", ".join(
        "attributes::text" if c == "attributes" and connection.vendor == "postgresql"
        else connection.ops.quote_name(c)
        for c in columns
    )  # fmt: skip
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One text parameter split server-side: far cheaper than adapting a 5,000-item list.
            sql = f"SELECT {names} FROM {table} WHERE phone = ANY(string_to_array(%s, ','))"  # noqa: S608
            cursor.execute(sql, [",".join(phones)])
        else:
            marks = ", ".join(["%s"] * len(phones))
            cursor.execute(f"SELECT {names} FROM {table} WHERE phone IN ({marks})", phones)  # noqa: S608
        return cursor.fetchall()


def select_pairs(
    table: str, column: str, contact_ids: list[int], target_ids: list[int]
) -> list[tuple[int, int]]:
    """The (contact, group or tag) memberships that already exist among these."""
    if not contact_ids:
        return []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            sql = (
                f"SELECT contact_id, {column} FROM {table} "  # noqa: S608 - names from model meta
                f"WHERE contact_id = ANY(string_to_array(%s, ',')::bigint[]) AND {column} = ANY(%s)"
            )
            cursor.execute(sql, [",".join(map(str, contact_ids)), target_ids])
        else:
            marks = ", ".join(["%s"] * len(contact_ids))
            targets = ", ".join(["%s"] * len(target_ids))
            sql = (
                f"SELECT contact_id, {column} FROM {table} "  # noqa: S608 - names from model meta
                f"WHERE contact_id IN ({marks}) AND {column} IN ({targets})"
            )
            cursor.execute(sql, [*contact_ids, *target_ids])
        return cursor.fetchall()


def json_column(value: Any) -> dict[str, Any]:
    """JSON columns come back decoded from PostgreSQL, as text from SQLite."""
    if isinstance(value, str):
        return json.loads(value) if value else {}
    return value or {}
