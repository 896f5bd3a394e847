"""Model instances read by a hand-written SELECT, as the ORM would have made them.

For the few statements run on every API request (a token and its owner, the active
accounts with a number's lookups): the ORM's compiling of a queryset, and a RawQuerySet's
working out of its columns each time, cost more than the statement itself. `Columns` names
some of a model's fields once; its `select()` is their part of a SELECT, and `build()`
makes an instance from a row's values through the same converters the ORM applies (a
SQLite 0/1 becomes a bool, a text a datetime, a JSON text a list), the other fields
deferred.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper

M = TypeVar("M", bound=models.Model)
Converter = Callable[[Any, Any, BaseDatabaseWrapper], Any]
#: (index in the row, its converters, the column expression they are given)
Converting = list[tuple[int, list[Converter], Any]]


class Columns(Generic[M]):
    """Some of `model`'s fields (by attname; in the model's own order whatever the order
    given), read as the first len(self) columns of a row."""

    def __init__(self, model: type[M], attnames: Iterable[str]) -> None:
        wanted = set(attnames)
        self.model = model
        self.fields = [f for f in model._meta.concrete_fields if f.attname in wanted]
        missing = wanted - {f.attname for f in self.fields}
        if missing:
            raise ValueError(f"{model.__name__} has no column {', '.join(sorted(missing))}")
        self.attnames = [f.attname for f in self.fields]
        self.columns = [f.column for f in self.fields if f.column]
        self._selects: dict[tuple[str, str], str] = {}
        self._by_alias: dict[str, Converting] = {}

    def __len__(self) -> int:
        return len(self.fields)

    def select(self, connection: BaseDatabaseWrapper, alias: str = "") -> str:
        """`alias.col, ...` (alias: the table's name in the FROM clause, if any)."""
        found = self._selects.get((connection.alias, alias))
        if found is None:
            quote = connection.ops.quote_name
            prefix = f"{alias}." if alias else ""
            found = ", ".join(f"{prefix}{quote(column)}" for column in self.columns)
            self._selects[(connection.alias, alias)] = found
        return found

    def build(self, row: Sequence[Any], connection: BaseDatabaseWrapper) -> M:
        """The instance row[:len(self)] describes, loaded from `connection`'s database."""
        values = list(row[: len(self.fields)])
        for index, converters, column in self._converters(connection):
            value = values[index]
            for convert in converters:
                value = convert(value, column, connection)
            values[index] = value
        return self.model.from_db(connection.alias, self.attnames, values)

    def _converters(self, connection: BaseDatabaseWrapper) -> Converting:
        """Each field's converters (those of the backend, then the field's), worked out once
        per database: the same for every connection to it (each thread has its own)."""
        found = self._by_alias.get(connection.alias)
        if found is None:
            found = []
            for index, field in enumerate(self.fields):
                column = field.get_col(self.model._meta.db_table)
                converters = connection.ops.get_db_converters(column)
                converters += column.get_db_converters(connection)
                if converters:
                    found.append((index, converters, column))
            self._by_alias[connection.alias] = found
        return found
