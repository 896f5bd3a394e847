import random

import phonenumbers
import pytest
from django.contrib.auth.models import User
from django.test import Client
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from phonenumbers import timezone as phone_timezone

from contacts.models import Contact
from contacts.phones import InvalidPhoneNumber, redact, time_zones_for, to_e164


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
        ("123", "too short for a UK number"),
        ("07911 12345", "too short for a UK mobile number"),
        ("+44 7911 1234567", "too long for a UK mobile number"),
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


# --- Which zones a number is in ----------------------------------------------------------

NUMBER_TYPES = (
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER,
    PhoneNumberType.UAN,
    PhoneNumberType.VOICEMAIL,
)
UK_ZONES = ("Europe/Guernsey", "Europe/Isle_of_Man", "Europe/Jersey", "Europe/London")


def libphonenumber_zones(e164: str) -> tuple[str, ...]:
    """What libphonenumber says of the number when it parses it, less its "unknown"."""
    zones = phone_timezone.time_zones_for_number(phonenumbers.parse(e164))
    return tuple(sorted(zone for zone in zones if zone != phone_timezone.UNKNOWN_TIMEZONE))


def valid_e164(candidate: str) -> str | None:
    """The number as a Contact would store it, or None when libphonenumber finds it invalid."""
    number = phonenumbers.parse(candidate)
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def example_numbers() -> list[phonenumbers.PhoneNumber]:
    """libphonenumber's example of every type of number, in every region and global code."""
    examples = [
        phonenumbers.example_number_for_type(region, kind)
        for region in sorted(phonenumbers.SUPPORTED_REGIONS)
        for kind in NUMBER_TYPES
    ]
    examples += [
        phonenumbers.example_number_for_non_geo_entity(code)
        for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS)
    ]
    return [example for example in examples if example is not None]


EXAMPLES = example_numbers()


def with_new_tail(example: phonenumbers.PhoneNumber, kept: int, tail: str) -> str:
    national = phonenumbers.national_significant_number(example)
    return f"+{example.country_code}{national[:kept]}{tail}"


def sample_of_valid_numbers() -> list[str]:
    """Every example, and valid numbers got by giving each one random trailing digits."""
    rng = random.Random(20260611)
    candidates = [phonenumbers.format_number(e, PhoneNumberFormat.E164) for e in EXAMPLES]
    for example in EXAMPLES:
        national = phonenumbers.national_significant_number(example)
        for _ in range(12):
            kept = rng.randint(1, len(national) - 1)
            tail = "".join(rng.choice("0123456789") for _ in national[kept:])
            candidates.append(with_new_tail(example, kept, tail))
    # Where a country spans zones, whole national numbers drawn at random besides.
    for country, digits in (("1", 10), ("7", 10), ("44", 10), ("61", 9), ("55", 10)):
        for _ in range(1500):
            candidates.append(
                f"+{country}" + "".join(rng.choice("0123456789") for _ in range(digits))
            )
    for country, digits in (("55", 11), ("52", 10), ("62", 9), ("62", 10), ("62", 11)):
        for _ in range(1500):
            candidates.append(
                f"+{country}" + "".join(rng.choice("0123456789") for _ in range(digits))
            )
    for _ in range(1500):  # Italian landlines keep the trunk's 0: +39 06 for Rome
        candidates.append(
            "+390" + "".join(rng.choice("0123456789") for _ in range(rng.randint(5, 10)))
        )
    valid = {valid_e164(candidate) for candidate in candidates}
    return sorted(number for number in valid if number is not None)


def test_zones_of_valid_numbers_are_what_libphonenumber_says_parsing_them() -> None:
    numbers = sample_of_valid_numbers()
    assert {int(phonenumbers.parse(n).country_code or 0) for n in numbers} == set(
        phonenumbers.COUNTRY_CODE_TO_REGION_CODE
    )
    disagreements = [n for n in numbers if time_zones_for(n) != libphonenumber_zones(n)]
    assert disagreements == []


@settings(max_examples=500, deadline=None)
@given(example=st.sampled_from(EXAMPLES), data=st.data())
def test_zones_of_any_valid_number_are_what_libphonenumber_says(
    example: phonenumbers.PhoneNumber, data: st.DataObject
) -> None:
    national = phonenumbers.national_significant_number(example)
    kept = data.draw(st.integers(min_value=0, max_value=len(national) - 1))
    digits = st.text("0123456789", min_size=len(national) - kept, max_size=len(national) - kept)
    number = valid_e164(with_new_tail(example, kept, data.draw(digits)))
    assume(number is not None)
    assert number is not None
    assert time_zones_for(number) == libphonenumber_zones(number)


@pytest.mark.parametrize(
    ("number", "zones"),
    [
        ("+12125550100", ("America/New_York",)),
        ("+17877234567", ("America/Puerto_Rico",)),
        ("+18765230123", ("America/Jamaica",)),  # Jamaican landline
        ("+442079460000", ("Europe/London",)),
        ("+441534456789", ("Europe/Jersey",)),
        ("+441481256789", ("Europe/Guernsey",)),
        ("+441624756789", ("Europe/Isle_of_Man",)),
        ("+447797712345", UK_ZONES),  # a Jersey mobile is in no area: every UK zone
        ("+74951234567", ("Europe/Moscow",)),
        ("+61291234567", ("Australia/Sydney",)),
        ("+5511912345678", ("America/Sao_Paulo",)),  # Brazilian mobiles have an area
        ("+526641234567", ("America/Tijuana",)),
        ("+62218350123", ("Asia/Jakarta",)),
        ("+390612345678", ("Europe/Rome",)),
        ("+390669812345", ("Europe/Vatican",)),
        ("+33612345678", ("Europe/Paris",)),
        ("+80012345678", ()),  # international freephone: no zone
    ],
)
def test_zones_of_a_number(number: str, zones: tuple[str, ...]) -> None:
    assert time_zones_for(number) == zones


def test_zones_of_numbers_in_no_area_are_every_zone_of_the_country() -> None:
    russian_mobile = time_zones_for("+79123431291")
    assert "Europe/Moscow" in russian_mobile and "Asia/Vladivostok" in russian_mobile
    assert len(time_zones_for("+18005550100")) > 30  # NANPA toll free
    assert time_zones_for("+61412345678") == libphonenumber_zones("+61412345678")
    assert "Australia/Perth" in time_zones_for("+61412345678")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "+",
        "+44",
        "+999123456",
        "447911123456",
        "+44 7911 123456",
        "+\uff14\uff14\uff17\uff19\uff11\uff11",  # fullwidth digits
    ],
)
def test_zones_of_text_that_is_no_e164_number_are_none(text: str) -> None:
    assert time_zones_for(text) == ()


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
