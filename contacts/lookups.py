"""`column among a long list of values`, sent to the database as one parameter.

The ORM's `field__in=[...]` prepares and binds every value on its own: for the 10,000
ids of a claim, or the numbers in it, that costs more than the statement itself (about
10 µs a value). `Among(F("pk"), ids)` hands the whole list over as one parameter (a JSON
array to SQLite, an array to PostgreSQL) and works in filter(), update() and delete()
like any lookup.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.sql.compiler import SQLCompiler


class Among(models.Lookup):
    """True for rows whose `lhs` is one of `values` (ints or strings)."""

    lookup_name = "among"
    prepare_rhs = False  # the values go in as they are: no per-value preparation

    def __init__(self, lhs: Any, values: Iterable[Any]) -> None:
        super().__init__(lhs, list(values))

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, Any]:
        lhs, params = self.process_lhs(compiler, connection)
        values = self.rhs
        if connection.vendor == "postgresql":
            if isinstance(self.lhs.output_field, models.IntegerField):
                # One text parameter split server-side: cheaper still than an int array.
                joined = ",".join(str(int(value)) for value in values)
                return f"{lhs} = ANY(string_to_array(%s, ',')::bigint[])", [*params, joined]
            return f"{lhs} = ANY(%s)", [*params, [str(value) for value in values]]
        sql = f"{lhs} IN (SELECT value FROM json_each(%s))"  # noqa: S608 - lhs is a column
        return sql, [*params, json.dumps(values)]


class Picked(models.Lookup):
    """True for rows whose `lhs` is one of the values a subquery picks, the subquery run
    exactly once: `Picked(F("pk"), Subquery(rows.values("pk")[:n]))`.

    On PostgreSQL `id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)` may be planned as
    a join that runs the subquery again, so an UPDATE could take more than n rows (or
    rows another worker holds); `= ANY(ARRAY(SELECT ...))` is run once, before the
    statement (an InitPlan). SQLite runs an uncorrelated IN subquery once already.
    """

    lookup_name = "picked"
    prepare_rhs = False

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, Any]:
        lhs, params = self.process_lhs(compiler, connection)
        subquery, sub_params = compiler.compile(self.rhs)  # "(SELECT ...)"
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(ARRAY{subquery})", [*params, *sub_params]
        return f"{lhs} IN {subquery}", [*params, *sub_params]
