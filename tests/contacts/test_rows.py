"""contacts.rows.Columns: instances from a hand-written SELECT equal the ORM's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from contacts.models import Contact
from contacts.rows import Columns

pytestmark = pytest.mark.django_db


def read(columns: Columns, table: str, pk: int) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns.select(connection, 't')}, 42 FROM {table} t WHERE t.id = %s",  # noqa: S608
            [pk],
        )
        return cursor.fetchone()


def test_every_kind_of_value_comes_back_as_the_orm_gives_it() -> None:
    contact = Contact.objects.create(
        phone="+447911123456",
        first_name="Ann",
        attributes={"plan": "gold", "visits": 3},
        consent_at=timezone.now() - timedelta(days=2),
    )
    every = [f.attname for f in Contact._meta.concrete_fields]
    columns = Columns(Contact, reversed(every))  # any order given: the model's is kept
    row = read(columns, Contact._meta.db_table, contact.pk)

    built = columns.build(row, connection)
    fresh = Contact.objects.get(pk=contact.pk)
    assert not built._state.adding and built._state.db == "default"
    for name in every:
        assert getattr(built, name) == getattr(fresh, name), name
        assert type(getattr(built, name)) is type(getattr(fresh, name)), name
    assert row[len(columns) :] == (42,)  # what follows is the caller's


def test_some_fields_the_rest_deferred() -> None:
    user = User.objects.create_user("ann", is_staff=True)
    columns = Columns(User, ("id", "is_staff", "is_active"))
    built = columns.build(read(columns, User._meta.db_table, user.pk), connection)
    assert built.is_staff is True and built.is_active is True  # bools, SQLite's 1s too
    assert built.get_deferred_fields() >= {"username", "password"}
    assert built.username == "ann"  # loads when asked


def test_an_unknown_column_is_refused() -> None:
    with pytest.raises(ValueError, match="no column nickname"):
        Columns(Contact, ("id", "nickname"))
