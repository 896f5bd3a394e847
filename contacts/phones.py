"""Phone numbers: parse anything a person types, keep E.164; and the zones a number is in."""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import phonenumbers
from babel import Locale
from phonenumbers import timezone as phone_timezone
from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

# libphonenumber recompiles a metadata pattern whenever it has dropped out of re's own
# cache (512 patterns), which numbers from many countries make it do all the time: parsing
# and typing them gets several times slower. Its ~1,200 patterns are cheap to keep.
phonenumbers.enable_pattern_cache()

_COUNTRY_CODES = frozenset(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


class InvalidPhoneNumber(ValueError):
    """The text is not a phone number valid in any country we could infer."""


def to_e164(raw: str, region: str | None = None) -> str:
    """Normalise `raw` to E.164, reading national numbers in `region` (ISO 3166 alpha-2)."""
    return to_e164_and_country(raw, region)[0]


def to_e164_and_country(raw: str, region: str | None = None) -> tuple[str, str]:
    """(E.164, the ISO country the number belongs to), from one parse.

    Validating a number finds its country anyway (libphonenumber's `is_valid_number` is
    these two calls), so an import learns every contact's country at no extra cost.
    """
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
    country = phonenumbers.region_code_for_number(number) or ""
    if not phonenumbers.is_valid_number_for_region(number, country):
        raise InvalidPhoneNumber(_invalid_number_text(number))
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    # Numbers of no country (+800 freephone, +882 networks) are of region "001".
    return e164, country if country.isalpha() else ""


def country_of(e164: str) -> str:
    """The ISO country of a stored number ("" for one that is not valid E.164)."""
    if not e164.startswith("+"):
        return ""
    try:
        return to_e164_and_country(e164)[1]
    except InvalidPhoneNumber:
        return ""


def time_zones_for(e164: str) -> tuple[str, ...]:
    """The IANA zones a valid E.164 number may be in, sorted; empty when libphonenumber cannot say.

    Exactly libphonenumber's `time_zones_for_number` less "Etc/Unknown", for a valid number
    (what every Contact.phone is); empty for text that is not "+", digits and a known country
    code. Costs ~2-3 µs a number (parsing, then asking libphonenumber: ~40 µs), ~20 µs for
    the few (premium, personal, pager...) whose type only libphonenumber can tell.
    """
    digits = e164[1:]
    if not (e164.startswith("+") and digits.isascii() and digits.isdigit()):
        return ()
    country = _country_of(digits)
    if country is None or len(digits) == len(country.code):
        return ()
    if country.only_zones is not None:
        return country.only_zones
    # libphonenumber gives a number of a type tied to an area (fixed line; mobile in a few
    # countries) the zones of its longest prefix in its data, and any other the country's
    # zones (a valid number always has a type). Only where the two differ does the type,
    # costly to find, matter.
    by_prefix = country.zones_by_prefix(digits)
    if by_prefix == country.zones:
        return by_prefix
    tied_to_area = country.tied_to_area(digits[len(country.code) :])
    if tied_to_area is None:
        return _zones_by_type(country.code, digits)
    return by_prefix if tied_to_area else country.zones


# The number types libphonenumber never ties to an area, whatever the country.
_TYPES_WITHOUT_AREA = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)


@dataclass(frozen=True, slots=True)
class _Country:
    """A country calling code: every zone answer its numbers can get, and how to choose one."""

    code: str
    zones: tuple[str, ...]  # its own, for numbers of types not tied to an area
    prefix_lengths: tuple[int, ...]  # of the prefixes in the data its numbers can start with
    only_zones: tuple[str, ...] | None  # when every number of it gets the same answer
    # Full matches of the patterns of its regions' types, by kind (see `tied_to_area`).
    untied_types: re.Pattern[str]
    fixed_lines: re.Pattern[str]
    mobiles: re.Pattern[str]
    mobiles_tied_to_area: bool

    def zones_by_prefix(self, digits: str) -> tuple[str, ...]:
        """The zones of the longest prefix of `digits` in the data, as libphonenumber finds it."""
        for length in self.prefix_lengths:
            zones = _ZONES.get(digits[:length])
            if zones is not None:
                return zones
        return ()

    def tied_to_area(self, national: str) -> bool | None:
        """Whether a valid number's type ties it to an area; None when only its type can tell.

        libphonenumber types a number only as a type whose pattern (in the metadata of the
        number's region, one of the code's) it matches. So a valid number matching no untied
        type's pattern in any of the regions is a fixed line or a mobile; no mobile if it
        matches no region's mobile pattern (a region whose mobile and fixed-line patterns are
        one types none mobile); a mobile if it matches no region's fixed-line pattern.
        """
        if self.untied_types.fullmatch(national):
            return None
        if self.mobiles_tied_to_area or not self.mobiles.fullmatch(national):
            return True
        if not self.fixed_lines.fullmatch(national):
            return False
        return None


def _known_zones(zones: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(zone for zone in zones if zone != phone_timezone.UNKNOWN_TIMEZONE))


_ZONES = {
    prefix: _known_zones(zones)
    for prefix, zones in TIMEZONE_DATA.items()
    if len(prefix) <= TIMEZONE_LONGEST_PREFIX
}


def _country_of(digits: str) -> _Country | None:
    return _country_by_head(digits[:3])


@cache  # at most the 1,110 strings of one to three digits
def _country_by_head(head: str) -> _Country | None:
    # Country calling codes are prefix-free, so the first one found is the only one.
    for length in (1, 2, 3):
        if head[:length] in _COUNTRY_CODES:
            return _country(head[:length])
    return None


@cache
def _country(code: str) -> _Country:
    of_code = {prefix: zones for prefix, zones in _ZONES.items() if prefix.startswith(code)}
    heads = [code[:length] for length in range(len(code), 0, -1) if code[:length] in _ZONES]
    # What a number matching no prefix longer than its code gets; the country's own zones
    # are looked up the same way, but never by a one-digit prefix of a longer code.
    fallback = _ZONES[heads[0]] if heads else ()
    own = next((_ZONES[head] for head in heads if len(head) >= min(2, len(code))), ())
    lengths = sorted({len(prefix) for prefix in of_code} | {len(head) for head in heads})
    answers = {*of_code.values(), fallback, own}
    regions = _regions_metadata(int(code))
    return _Country(
        code=code,
        zones=own,
        prefix_lengths=tuple(reversed(lengths)),
        only_zones=answers.pop() if len(answers) == 1 else None,
        untied_types=_any_of(getattr(m, kind) for m in regions for kind in _TYPES_WITHOUT_AREA),
        fixed_lines=_any_of(m.fixed_line for m in regions),
        # A region whose mobiles share the fixed lines' pattern has no number typed mobile.
        mobiles=_any_of(m.mobile for m in regions if not m.same_mobile_and_fixed_line_pattern),
        mobiles_tied_to_area=phonenumbers.is_number_type_geographical(
            phonenumbers.PhoneNumberType.MOBILE, int(code)
        ),
    )


def _regions_metadata(code: int) -> list[phonenumbers.PhoneMetadata]:
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]
    found = (
        phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(code, r) for r in regions
    )
    return [metadata for metadata in found if metadata is not None]


def _any_of(descs: Iterable[phonenumbers.PhoneNumberDesc | None]) -> re.Pattern[str]:
    """A pattern matching in full what any of the descriptions' patterns does."""
    # An empty pattern matches no number in libphonenumber; "(?!)" matches nothing at all.
    patterns = {desc.national_number_pattern for desc in descs if desc is not None}
    alternatives = sorted(f"(?:{pattern})" for pattern in patterns if pattern)
    return re.compile("|".join(alternatives) or "(?!)")


def _zones_by_type(code: str, digits: str) -> tuple[str, ...]:
    # Built from its digits rather than parsed: the same number, at a fraction of the cost.
    national = digits[len(code) :]
    number = phonenumbers.PhoneNumber(country_code=int(code), national_number=int(national))
    # Italian numbers keep their leading zeros (06 for Rome) as part of the number.
    leading_zeros = min(len(national) - len(national.lstrip("0")), len(national) - 1)
    if leading_zeros:
        number.italian_leading_zero = True
        number.number_of_leading_zeros = leading_zeros
    return _known_zones(phone_timezone.time_zones_for_number(number))


def redact(e164: str) -> str:
    """A number fit for logs: country code and last two digits only."""
    if len(e164) <= 5:
        return "***"
    return f"{e164[:3]}…{e164[-2:]}"


#: How rejections name a few countries people call by another name than their ISO one.
_COUNTRY_NAMES = {"GB": "UK", "US": "US"}
# Country names from CLDR (Babel), not from libphonenumber's geocoder: importing that loads
# its whole per-prefix place data, ~95 MB in every process, for these names alone.
_ENGLISH = Locale("en")
_LENGTH_WORDS = {
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "the wrong length",
}


def _invalid_number_text(number: phonenumbers.PhoneNumber) -> str:
    """Why a parsed number is not valid, in words: "too short for a UK mobile number"."""
    region = phonenumbers.region_code_for_country_code(number.country_code or 0)
    if region == phonenumbers.UNKNOWN_REGION:
        return f"+{number.country_code} is no country's calling code"
    country = _country_name(region)
    mobile = _looks_mobile(number, region)
    types = phonenumbers.PhoneNumberType
    kind = types.MOBILE if mobile else types.FIXED_LINE
    length = _LENGTH_WORDS.get(phonenumbers.is_possible_number_for_type_with_reason(number, kind))
    if length is None:
        return f"not a valid phone number: no {country} number starts like this"
    return f"{length} for a {country}{' mobile' if mobile else ''} number"


def _country_name(region: str) -> str:
    if region in _COUNTRY_NAMES:
        return _COUNTRY_NAMES[region]
    return str(_ENGLISH.territories.get(region) or region)


def _looks_mobile(number: phonenumbers.PhoneNumber, region: str) -> bool:
    """Whether it starts as the region's mobiles do and its fixed lines do not (first digit)."""
    mobile, fixed = _first_digits_of_examples(region)
    first = str(number.national_number)[:1]
    return first == mobile and first != fixed


@cache  # libphonenumber parses its example numbers anew at each call
def _first_digits_of_examples(region: str) -> tuple[str | None, str | None]:
    """The first digits of the region's example mobile and fixed-line numbers (None: none)."""
    mobile = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    fixed = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.FIXED_LINE)
    return _first_digit(mobile), _first_digit(fixed)


def _first_digit(number: phonenumbers.PhoneNumber | None) -> str | None:
    return str(number.national_number)[:1] if number is not None else None


def _parse_error_text(exc: phonenumbers.NumberParseException) -> str:
    if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
        return "no country code, and no default country to read it in"
    if exc.error_type == phonenumbers.NumberParseException.NOT_A_NUMBER:
        return "not a phone number"
    if exc.error_type == phonenumbers.NumberParseException.TOO_LONG:
        return "too long to be a phone number"
    return "too short to be a phone number"
