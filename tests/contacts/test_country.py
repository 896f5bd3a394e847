"""Each contact keeps its number's country (ISO code) for segments: from imports, saves and
the migration that filled it in for contacts already there."""

import importlib
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection

from contacts.models import Contact
from contacts.phones import InvalidPhoneNumber, country_of, to_e164_and_country

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("number", "country"),
    [
        ("+447400123456", "GB"),
        ("+447911123456", "GG"),  # Guernsey's mobiles share +44 with the UK's
        ("+33612345678", "FR"),
        ("+14155550123", "US"),
        ("+16135550123", "CA"),  # +1 again, told apart by the area code
        ("+80012345678", ""),  # freephone of no country
        ("0791120", ""),  # not E.164: a number that slipped in unvalidated
    ],
)
def test_the_country_is_the_numbers_own(number: str, country: str) -> None:
    assert country_of(number) == country


def test_a_national_number_is_read_in_the_given_region() -> None:
    assert to_e164_and_country("06 12 34 56 78", "FR") == ("+33612345678", "FR")
    with pytest.raises(InvalidPhoneNumber):
        to_e164_and_country("12", "FR")


def test_saving_a_contact_sets_its_country_and_a_new_number_moves_it() -> None:
    contact = Contact.objects.create(phone="+447400123456")
    assert Contact.objects.get().country == "GB"

    contact.phone = "+33612345678"
    contact.save(update_fields=["phone"])

    assert Contact.objects.get().country == "FR"


def test_an_import_writes_each_contacts_country(write_file: Callable[..., Path]) -> None:
    path = write_file("mixed.csv", "phone,first_name\n+447400123456,Ada\n+33612345678,Ben\n")
    call_command("import_contacts", str(path), stdout=io.StringIO(), stderr=io.StringIO())

    assert dict(Contact.objects.values_list("first_name", "country")) == {"Ada": "GB", "Ben": "FR"}


def test_the_migration_fills_in_the_country_of_contacts_already_there() -> None:
    Contact.objects.create(phone="+447400123456")
    Contact.objects.create(phone="+33612345678")
    Contact.objects.create(phone="0791120")
    with connection.cursor() as cursor:  # as they were before the column existed
        cursor.execute("UPDATE contacts_contact SET country = ''")
    migration = importlib.import_module("contacts.migrations.0008_contact_country")

    migration.fill_countries(apps, None)

    countries = sorted(Contact.objects.values_list("phone", "country"))
    assert countries == [("+33612345678", "FR"), ("+447400123456", "GB"), ("0791120", "")]
