"""Set-based reads and writes shared by the contact importer and the send engine.

Thousands of rows a statement: COPY or one prepared INSERT, ON CONFLICT DO NOTHING for
rows that may exist already, and lookups that hand the database one text parameter instead
of a list of thousands (PostgreSQL splits it, SQLite reads it as JSON). Table and column
names come from model meta, values always go in as parameters.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from django.db import connection

from contacts.models import Contact

T = TypeVar("T")

# A list as one JSON parameter, so that every lookup is one statement whatever its length.
# With an IN of as many placeholders as values, each length is a statement of its own,
# compiled (about 1 MB for 5,000 values) and kept in the connection's statement cache:
# an import's lookups held 100+ MB that way.
SQLITE_LIST = "(SELECT value FROM json_each(%s))"


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
    """Insert many rows fast: COPY on PostgreSQL, multi-row INSERTs on SQLite."""
    if not rows:
        return
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            _sqlite_insert(cursor.cursor, table, quoted, len(columns), rows)


#: SQLite: most values one multi-row INSERT carries. Compiled, a statement of 16,384 values
#: is about 2 MB, and the connection's statement cache keeps it.
SQLITE_VALUES_PER_INSERT = 16_384


def _sqlite_insert(raw: Any, table: str, quoted: str, width: int, rows: list[Any]) -> None:
    """SQLite: the rows in INSERTs of hundreds of rows each.

    Python lets go of the GIL only while SQLite runs a statement, and takes it back after
    each. A row at a time (executemany), a build's writing thread had to win the GIL back
    from the thread reading the next chunk after every row, so the two took turns
    instead of overlapping: a 1M build took 19 s that way, 14 s like this.

    Statements of a power of two rows (the largest that the limit allows, then the rest
    in halves: 5,000 rows of 26 columns are 9 x 512 + 256 + 128 + 8), so that whatever
    the row counts, the cache holds a few sizes of statement per table."""
    limit = raw.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per = 1 << max(0, (min(SQLITE_VALUES_PER_INSERT, limit) // width).bit_length() - 1)
    one = "(" + ", ".join(["?"] * width) + ")"
    start = 0
    # The raw sqlite3 cursor: the SQL has its ? already, and Django's debug cursor would
    # quote every value of a statement of thousands into its log.
    with connection.wrap_database_errors:
        while start < len(rows):
            while per > len(rows) - start:
                per //= 2
            sql = f"INSERT INTO {table} ({quoted}) VALUES {', '.join([one] * per)}"  # noqa: S608 - names from model meta
            values = list(itertools.chain.from_iterable(rows[start : start + per]))
            sqlite3.Cursor.execute(raw, sql, values)
            start += per


_SEQUENCES: dict[str, str] = {}  # table -> the sequence its ids come from (PostgreSQL)


def insert_numbered(table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[int]:
    """`bulk_insert`, returning the ids the rows were given, in order.

    PostgreSQL: ids are drawn from the table's sequence first, then written by COPY
    (which returns nothing). SQLite: the transaction holds the write lock from its start
    (transaction_mode IMMEDIATE), so the rows of one statement take consecutive ids,
    ending at last_insert_rowid().
    """
    if not rows:
        return []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            if table not in _SEQUENCES:
                cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
                _SEQUENCES[table] = cursor.fetchone()[0]
            # The sequence named once: looked up for each row, it took 7 times as long.
            cursor.execute(
                "SELECT nextval(%s::regclass) FROM generate_series(1, %s)",
                [_SEQUENCES[table], len(rows)],
            )
            ids = [row[0] for row in cursor.fetchall()]
            bulk_insert(
                table, ("id", *columns), [(pk, *row) for pk, row in zip(ids, rows, strict=True)]
            )
            return ids
        bulk_insert(table, columns, rows)
        cursor.execute("SELECT last_insert_rowid()")
        last = cursor.fetchone()[0]
        return list(range(last - len(rows) + 1, last + 1))


def existing(table: str, column: str, values: list[str]) -> set[str]:
    """Those of `values` (text) already in `column`: one statement whatever their number."""
    if not values:
        return set()
    name = connection.ops.quote_name(column)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            sql = f"SELECT {name} FROM {table} WHERE {name} = ANY(string_to_array(%s, ','))"  # noqa: S608
            cursor.execute(sql, [",".join(values)])
        else:
            sql = f"SELECT {name} FROM {table} WHERE {name} IN {SQLITE_LIST}"  # noqa: S608
            cursor.execute(sql, [json.dumps(values)])
        return {row[0] for row in cursor.fetchall()}


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
            sql = f"SELECT {names} FROM {table} WHERE phone IN {SQLITE_LIST}"  # noqa: S608
            cursor.execute(sql, [json.dumps(phones)])
        return cursor.fetchall()


def last_contact_id() -> int:
    """The highest contact id so far (0 for none)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MAX(id) FROM {Contact._meta.db_table}")  # noqa: S608
        return cursor.fetchone()[0] or 0


def add_new_contacts_to(
    table: str, column: str, target_ids: list[int], phones: list[str], after_id: int
) -> None:
    """Memberships in every target for the contacts a chunk has just inserted, in one
    statement (their ids never leave the database).

    On SQLite they are the contacts past `after_id`, the last id before the insert: the
    chunk's transaction holds the write lock, and ids (AUTOINCREMENT) only grow. On
    PostgreSQL, whose sequences promise no such order between sessions, they are found
    by their numbers.
    """
    contacts = Contact._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            sql = (
                f"INSERT INTO {table} (contact_id, {column}) "  # noqa: S608 - names from meta
                f"SELECT c.id, t.id FROM {contacts} c CROSS JOIN unnest(%s::bigint[]) t(id) "
                "WHERE c.phone = ANY(string_to_array(%s, ','))"
            )
            cursor.execute(sql, [target_ids, ",".join(phones)])
        else:
            sql = (
                f"INSERT INTO {table} (contact_id, {column}) "  # noqa: S608 - names from meta
                f"SELECT c.id, t.value FROM {contacts} c, json_each(%s) t WHERE c.id > %s"
            )
            cursor.execute(sql, [json.dumps(target_ids), after_id])


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
            sql = (
                f"SELECT contact_id, {column} FROM {table} "  # noqa: S608 - names from model meta
                f"WHERE contact_id IN {SQLITE_LIST} AND {column} IN {SQLITE_LIST}"
            )
            cursor.execute(sql, [json.dumps(contact_ids), json.dumps(target_ids)])
        return cursor.fetchall()


def json_column(value: Any) -> dict[str, Any]:
    """JSON columns come back decoded from PostgreSQL, as text from SQLite."""
    if isinstance(value, str):
        return json.loads(value) if value else {}
    return value or {}
