import pytest
from django.contrib.auth.models import User
from django.test import Client

from contacts.models import Contact
from contacts.phones import InvalidPhoneNumber, redact, to_e164


@pytest.mark.parametrize(
    "typed",
    ["+44 7911 123456", "(0)7911-123456", "07911 123456", "447911123456", "00447911123456"],
)
def test_what_people_type_becomes_e164(typed: str) -> None:
    assert to_e164(typed, "GB") == "+447911123456"


def test_a_national_number_is_read_in_the_region_given() -> None:
    assert to_e164("06 12 34 56 78", "FR") == "+33612345678"


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("", "no phone number"),
        ("call me", "not a phone number"),
        ("+44 7700 900123", "not a valid phone number"),  # Ofcom drama range
        ("123", "not a valid phone number"),
    ],
)
def test_invalid_numbers_are_refused_with_a_reason(typed: str, reason: str) -> None:
    with pytest.raises(InvalidPhoneNumber, match=reason):
        to_e164(typed, "GB")


def test_national_numbers_without_a_region_are_refused() -> None:
    with pytest.raises(InvalidPhoneNumber, match="no country code"):
        to_e164("07911 123456", None)


def test_redacted_numbers_keep_only_country_and_last_digits() -> None:
    assert redact("+447911123456") == "+44…56"


@pytest.mark.django_db
def test_model_validation_normalises_the_number() -> None:
    contact = Contact(phone="07911 123456")
    contact.full_clean()
    assert contact.phone == "+447911123456"


def test_a_contact_is_in_the_zones_of_its_number_unless_it_has_its_own() -> None:
    assert Contact(phone="+33612345678").time_zones == ["Europe/Paris"]
    assert "Europe/London" in Contact(phone="+447911123456").time_zones
    assert Contact(phone="+447911123456", timezone="Asia/Tokyo").time_zones == ["Asia/Tokyo"]


@pytest.mark.django_db
def test_admin_form_shows_a_clear_error_for_an_invalid_number(admin_client: Client) -> None:
    response = admin_client.post("/admin/contacts/contact/add/", {"phone": "not a number"})
    assert response.status_code == 200
    assert "Enter a valid phone number" in response.content.decode()
    assert not Contact.objects.exists()


@pytest.mark.django_db
def test_admin_form_stores_the_normalised_number(admin_client: Client, admin_user: User) -> None:
    response = admin_client.post(
        "/admin/contacts/contact/add/", {"phone": "07911 123456", "attributes": "{}"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Contact.objects.get().phone == "+447911123456"
