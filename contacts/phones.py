"""Phone numbers: parse anything a person types, keep E.164."""

import phonenumbers
from phonenumbers import timezone as phone_timezone


class InvalidPhoneNumber(ValueError):
    """The text is not a phone number valid in any country we could infer."""


def to_e164(raw: str, region: str | None = None) -> str:
    """Normalise `raw` to E.164, reading national numbers in `region` (ISO 3166 alpha-2)."""
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneNumber("no phone number given")
    if text.startswith("00"):
        # International prefix as dialled in most of Europe; phonenumbers only
        # understands it when the region's own prefix is 00.
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, region.upper() if region else None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(_parse_error_text(exc)) from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber("not a valid phone number in any known numbering plan")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def time_zones_for(e164: str) -> list[str]:
    """IANA zones the number may be in; empty when libphonenumber cannot say."""
    number = phonenumbers.parse(e164, None)
    zones = [z for z in phone_timezone.time_zones_for_number(number) if z != "Etc/Unknown"]
    return zones


def redact(e164: str) -> str:
    """A number fit for logs: country code and last two digits only."""
    if len(e164) <= 5:
        return "***"
    return f"{e164[:3]}…{e164[-2:]}"


def _parse_error_text(exc: phonenumbers.NumberParseException) -> str:
    if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
        return "no country code, and no default country to read it in"
    if exc.error_type == phonenumbers.NumberParseException.NOT_A_NUMBER:
        return "not a phone number"
    return "too short or too long to be a phone number"
