"""Which custom attributes contacts carry: how many contacts have each, and its top values.

Reading every contact's attributes is a full scan. On PostgreSQL a table past SAMPLE_ABOVE
contacts is read as a sample (TABLESAMPLE SYSTEM: whole pages at random, about
SAMPLE_ROWS rows) and the counts scaled up, marked as estimates; SQLite reads them all with
json_each. Either way the answer is cached for FRESH_SECONDS, so the page costs one
computation per ten minutes at most, whoever asks.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from contacts.models import Contact

SAMPLE_ABOVE = 200_000
SAMPLE_ROWS = 100_000
TOP_VALUES = 5
MOST_ATTRIBUTES = 100
FRESH_SECONDS = 600
CACHE_KEY = "contacts:attribute-facets"


@dataclass
class Facet:
    name: str
    contacts: int
    top_values: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class Facets:
    facets: list[Facet]
    estimated: bool  # counts scaled up from a sample
    computed_at: Any


def attribute_facets(refresh: bool = False) -> Facets:
    """The facets, from the cache when computed in the last FRESH_SECONDS."""
    found = None if refresh else cache.get(CACHE_KEY)
    if found is None:
        found = compute()
        cache.set(CACHE_KEY, found, FRESH_SECONDS)
    return found


def compute(sample_above: int = SAMPLE_ABOVE) -> Facets:
    """Counted now; on PostgreSQL from a sample when the planner expects more contacts
    than `sample_above`."""
    table = connection.ops.quote_name(Contact._meta.db_table)
    if connection.vendor == "postgresql":
        rows, scale = _postgresql_pairs(table, sample_above)
    else:
        rows, scale = _sqlite_pairs(table), 1.0
    return Facets(_facets(rows, scale), estimated=scale != 1.0, computed_at=timezone.now())


def _sqlite_pairs(table: str) -> list[tuple[str, str, int]]:
    sql = (
        f"SELECT j.key, CAST(j.value AS TEXT), COUNT(*) FROM {table}, json_each({table}.attributes)"  # noqa: S608 - table from model meta
        " AS j GROUP BY j.key, CAST(j.value AS TEXT)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [(str(k), "" if v is None else str(v), int(n)) for k, v, n in cursor.fetchall()]


def _postgresql_pairs(table: str, sample_above: int) -> tuple[list[tuple[str, str, int]], float]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", [table])
        row = cursor.fetchone()
        estimate = max(int(row[0]), 0) if row else 0
        sampled = estimate > sample_above
        percent = min(100.0, 100.0 * SAMPLE_ROWS / estimate) if sampled else 100.0
        source = f"{table} AS c TABLESAMPLE SYSTEM (%s)" if sampled else f"{table} AS c"
        cursor.execute(
            f"SELECT a.key, a.value, COUNT(*) FROM {source}, jsonb_each_text(c.attributes)"  # noqa: S608 - table from model meta
            " AS a GROUP BY a.key, a.value",
            [percent] if sampled else [],
        )
        pairs = [(str(k), "" if v is None else str(v), int(n)) for k, v, n in cursor.fetchall()]
    return pairs, (100.0 / percent if sampled and percent < 100.0 else 1.0)


def _facets(rows: list[tuple[str, str, int]], scale: float) -> list[Facet]:
    by_name: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for name, value, count in rows:
        by_name[name].append((value, round(count * scale)))
    facets = []
    for name, values in by_name.items():
        values.sort(key=lambda pair: (-pair[1], pair[0]))
        facets.append(Facet(name, sum(n for _, n in values), values[:TOP_VALUES]))
    facets.sort(key=lambda facet: (-facet.contacts, facet.name))
    return facets[:MOST_ATTRIBUTES]
