"""Contacts written a batch at a time from rows given as data (the API), by the import's rules.

A row goes through what a file's row goes through: the import's RowCleaner (the number
validated and put in E.164, lengths, e-mail, time zone, custom attributes as JSON), its
refusal of erased numbers and of a number repeated in the batch, and its ChunkWriter (new
contacts inserted, changed ones updated, an empty value never erasing one). Groups and tags
are named on each row; they are added, never taken away, as an import adds its groups.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction

from contacts.bulk import insert_missing, select_contacts_by_phone, tune_bulk_transaction
from contacts.importing import FIELDS, CleanRow, Columns, RowCleaner, RowError, normalise_header
from contacts.models import Contact, ErasedNumber, Group, Tag
from contacts.resources import ERASED_ROW, ChunkOutcome, ChunkWriter, ImportCounts, known_numbers
from contacts.storable import storable_text

#: A batch naming more attribute names than this sends each row's attributes as one JSON
#: cell (as Herald's own export writes them) rather than as a column each.
MOST_ATTRIBUTE_COLUMNS = 100
FIXED = ("phone", *FIELDS)
#: Writing again after another writer inserted one of the numbers first (PostgreSQL).
WRITE_ATTEMPTS = 3
WHOLE_ROW = "__all__"


@dataclass
class ContactRow:
    """One contact as given: its number in any form, the fields to set, groups and tags by name."""

    phone: str
    fields: dict[str, str] = field(default_factory=dict)  # names of importing.FIELDS
    attributes: dict[str, str] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


Errors = dict[str, list[str]]


@dataclass
class Upserted:
    """What a batch did: the import's counts, each refused row's errors, each written row's id."""

    counts: ImportCounts = field(default_factory=ImportCounts)
    errors: dict[int, Errors] = field(default_factory=dict)  # by row index
    ids: dict[int, int] = field(default_factory=dict)  # row index -> contact id

    @property
    def failed(self) -> int:
        return self.counts.invalid + self.counts.duplicates


def upsert(rows: list[ContactRow], region: str | None = None, consent_source: str = "") -> Upserted:
    """Create or update a contact for each good row, in one transaction; refuse the others.

    `region` reads numbers written without +; `consent_source` is what new contacts say
    they came by.
    """
    result = Upserted()
    groups = _ids_by_name(Group, (name for row in rows for name in row.groups))
    tags = _ids_by_name(Tag, (name for row in rows for name in row.tags))
    clean = _cleaned(rows, region, groups, tags, result)
    group_ids = {i: [groups[name] for name in rows[i].groups] for i in clean}
    tag_ids = {i: [tags[name] for name in rows[i].tags] for i in clean}
    memberships = (
        (Contact.groups.through, "group_id", group_ids),
        (Contact.tags.through, "tag_id", tag_ids),
    )
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            result.counts.add(_write(clean, consent_source, memberships, result.ids))
            break
        except IntegrityError:
            result.ids.clear()
            if attempt == WRITE_ATTEMPTS:
                raise
    return result


def _cleaned(
    rows: list[ContactRow],
    region: str | None,
    groups: dict[str, int],
    tags: dict[str, int],
    result: Upserted,
) -> dict[int, CleanRow]:
    """The good rows by index, each number once; the refused ones counted and explained."""
    layout = Layout.of(rows)
    cleaner = RowCleaner(layout.columns, region, known_numbers([row.phone for row in rows]))
    clean: dict[int, CleanRow] = {}
    first_of: dict[str, int] = {}  # each number's first good row
    for index, row in enumerate(rows):
        errors = _unknown_names(row.groups, groups, "group") | _unknown_names(row.tags, tags, "tag")
        try:
            cleaned = cleaner.clean(index + 1, layout.cells(row))
        except RowError as exc:
            errors.setdefault(exc.field or WHOLE_ROW, []).append(str(exc))
        if errors:
            result.errors[index] = errors
            result.counts.invalid += 1
        elif (first := first_of.setdefault(cleaned.phone, index)) != index:
            result.errors[index] = {"phone": [f"the same number as the row at index {first}"]}
            result.counts.duplicates += 1
        else:
            clean[index] = cleaned
    erased = ErasedNumber.objects.among(row.phone for row in clean.values())
    for index in [i for i, row in clean.items() if row.phone in erased]:
        del clean[index]
        result.errors[index] = {"phone": [ERASED_ROW]}
        result.counts.invalid += 1
    return clean


@dataclass
class Layout:
    """A batch's rows as the cells of a file's lines: the fixed fields, then a column for
    each attribute name the batch uses, read as a file's columns are (names normalised,
    blank cells skipped). Past MOST_ATTRIBUTE_COLUMNS names, one JSON cell a row instead."""

    columns: Columns
    names: list[str]  # the attribute names with a column each
    refused_names: dict[str, str]  # name -> why no row may use it
    as_json: bool = False

    @classmethod
    def of(cls, rows: list[ContactRow]) -> Layout:
        names = list(dict.fromkeys(name for row in rows for name in row.attributes))
        refused = {name: why for name in names if (why := _refusal_of_name(name))}
        index = {field_name: i for i, field_name in enumerate(FIXED)}
        if len(names) > MOST_ATTRIBUTE_COLUMNS:
            json_column = [(len(FIXED), "attributes")]
            columns = Columns([*FIXED, "attributes"], index, json_column)
            return cls(columns, [], refused, as_json=True)
        named = [(len(FIXED) + i, normalise_header(name)) for i, name in enumerate(names)]
        return cls(Columns([*FIXED, *names], index, named), names, refused)

    def cells(self, row: ContactRow) -> list[str]:
        """RowError for text no database stores (a file holding it is refused whole before
        any of its rows is read), and for a refused attribute name."""
        values = [row.phone, *row.fields.values(), *row.attributes.values()]
        if not storable_text("".join(values)):  # one look for the whole row
            raise _unstorable(row)
        if self.refused_names and (refused := self.refused_names.keys() & row.attributes):
            raise RowError(self.refused_names[min(refused)], "attributes")
        fixed = [row.phone, *(row.fields.get(name, "") for name in FIELDS)]
        if not self.as_json:
            return fixed + [row.attributes.get(name, "") for name in self.names]
        given = {name: text for name, value in row.attributes.items() if (text := value.strip())}
        return [*fixed, json.dumps(given, ensure_ascii=False) if given else ""]


def _refusal_of_name(name: str) -> str:
    if not storable_text(name):
        return "an attribute's name holds NUL or unpaired surrogate characters"
    if not normalise_header(name):
        return f"the attribute name {name[:40]!r} has no letter or digit"
    return ""


def _unstorable(row: ContactRow) -> RowError:
    for name, value in (("phone", row.phone), *row.fields.items()):
        if not storable_text(value):
            return RowError(f"{name} holds NUL or unpaired surrogate characters", name)
    return RowError("an attribute holds NUL or unpaired surrogate characters", "attributes")


def _ids_by_name(model: type[Group] | type[Tag], names: Iterable[str]) -> dict[str, int]:
    wanted = set(names)
    if not wanted:
        return {}
    return dict(model.objects.filter(name__in=wanted).values_list("name", "pk"))


def _unknown_names(names: list[str], known: dict[str, int], kind: str) -> Errors:
    unknown = [name for name in dict.fromkeys(names) if name not in known]
    if not unknown:
        return {}
    return {f"{kind}s": [f"there is no {kind} named {name!r}" for name in unknown]}


Memberships = tuple[tuple[Any, str, dict[int, list[int]]], ...]


def _write(
    clean: dict[int, CleanRow], consent_source: str, memberships: Memberships, ids: dict[int, int]
) -> ImportCounts:
    """One transaction: the contacts through the import's writer, then their memberships."""
    counts = ImportCounts()
    if not clean:
        return counts
    rows = list(clean.values())
    # COPY runs on psycopg's own cursor: its errors are made Django's here, so that another
    # writer's insert of a number meanwhile is an IntegrityError, to be written again.
    with transaction.atomic(), connection.wrap_database_errors:
        tune_bulk_transaction()
        writer = ChunkWriter([], [], None, dry_run=False, consent_source=consent_source)
        writer.write(rows, ChunkOutcome(counts, rows[-1].line))
        by_phone = dict(select_contacts_by_phone(("phone", "id"), [row.phone for row in rows]))
        ids.update({index: by_phone[row.phone] for index, row in clean.items()})
        for through, column, targets_of in memberships:
            pairs = {(ids[i], target) for i, targets in targets_of.items() for target in targets}
            insert_missing(through._meta.db_table, ("contact_id", column), sorted(pairs))
    return counts
