"""Message bodies: `{{variable}}` substitution, and what the text costs in SMS segments.

`{{city}}` is the contact's value; `{{city|there}}` gives a fallback for contacts with no
(or an empty) value, `{{city|}}` says empty is meant. This module is the one parser of
that syntax: the preview, the test send, the build and WhatsApp parameters all read it
here. Substitution is plain string replacement, never a template language, so nothing
a contact's data contains can run.
"""

import codecs
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import gsm0338  # noqa: F401 - registers the "gsm03.38" codec

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|([^}]*))?\}\}")

GSM7 = "gsm7"
UCS2 = "ucs2"

# Units in a message sent alone, and per part once concatenated: the user data header
# that numbers the parts takes 7 septets (GSM-7) or 3 UTF-16 units (UCS-2) of each part.
_SINGLE_UNITS = {GSM7: 160, UCS2: 70}
_PART_UNITS = {GSM7: 153, UCS2: 67}

_ESCAPE = 0x1B


def _gsm7_septets() -> dict[int, bytes]:
    """Code point -> its GSM-7 septets, read from the gsm0338 basic and extension tables."""
    septets: dict[int, bytes] = {}
    for code in range(128):
        if code == _ESCAPE:
            # A bare escape would make the handset read the next character from the
            # extension table, so it is not a character a message can carry.
            continue
        # Basic table last, so it wins should a character ever appear in both.
        for encoded in (bytes((_ESCAPE, code)), bytes((code,))):
            try:
                septets[ord(encoded.decode("gsm03.38"))] = encoded
            except UnicodeDecodeError:
                continue
    return septets


# The codec's own encode() is a Python loop (about 0.5 µs a character); charmap_encode over
# the same table does the work in C, which matters when every recipient's text is measured.
_GSM7_SEPTETS = _gsm7_septets()
_GSM7_CHARACTERS = frozenset(map(chr, _GSM7_SEPTETS))


def _septets(text: str) -> int:
    """GSM-7 septets in `text`, escapes included; UnicodeEncodeError if it is not GSM-7."""
    return len(codecs.charmap_encode(text, "strict", _GSM7_SEPTETS)[0])


def _utf16_units(text: str) -> int:
    """UTF-16 code units in `text`: two for characters outside the Basic Multilingual Plane."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


_UNITS_OF: dict[str, Callable[[str], int]] = {GSM7: _septets, UCS2: _utf16_units}


def _measure(text: str) -> tuple[str, int]:
    """(encoding, units): septets for GSM-7, UTF-16 code units for UCS-2."""
    try:
        return GSM7, _septets(text)
    except UnicodeEncodeError:
        return UCS2, _utf16_units(text)


@dataclass(frozen=True)
class Placeholder:
    """One use of a variable: `{{name}}`, or `{{name|fallback}}`."""

    name: str
    fallback: str | None  # None: none given ("" is an empty one, given on purpose)

    @classmethod
    def of(cls, match: re.Match[str]) -> "Placeholder":
        fallback = match.group(2)
        return cls(match.group(1), None if fallback is None else fallback.strip())


def parse(body: str) -> list[Placeholder]:
    """Every use of a variable in `body`, in order."""
    return [Placeholder.of(match) for match in PLACEHOLDER.finditer(body)]


def placeholders(body: str) -> list[str]:
    """Variable names used in `body`, in order of first use."""
    return list(dict.fromkeys(p.name for p in parse(body)))


def fallbacks(*texts: str) -> dict[str, str | None]:
    """{variable: its fallback} over every use in `texts`: None when some use gives none
    (a contact without a value then gets nothing there), else the first use's."""
    found: dict[str, str | None] = {}
    for placeholder in (p for text in texts for p in parse(text)):
        if placeholder.name not in found:
            found[placeholder.name] = placeholder.fallback
        elif placeholder.fallback is None:
            found[placeholder.name] = None
    return found


def render(body: str, fields: Mapping[str, str]) -> str:
    """Fill `{{name}}` / `{{name|fallback}}` from `fields`; empty values take the fallback."""

    # Runs per message and placeholder in a build: no Placeholder made each time.
    def substitute(match: re.Match[str]) -> str:
        value = fields.get(match.group(1), "")
        return value if value else (match.group(2) or "").strip()

    return PLACEHOLDER.sub(substitute, body)


def parameter(spec: str) -> str:
    """A WhatsApp template parameter's spec ("city" or "city|there") as a placeholder."""
    return "{{" + spec + "}}"


def encoding_of(text: str) -> str:
    """GSM7 if every character is in the GSM 03.38 basic or extension table, else UCS2."""
    return _measure(text)[0]


def ucs2_characters(text: str) -> list[str]:
    """The distinct characters that force UCS-2, in order of first appearance."""
    return list(dict.fromkeys(char for char in text if char not in _GSM7_CHARACTERS))


def split_parts(text: str) -> list[str]:
    """The parts a handset sends `text` as; one part (possibly empty) if it fits alone.

    Parts are packed greedily and never cut an escape + extension septet pair or a
    UTF-16 surrogate pair, so a part may hold 152 septets or 66 units.
    """
    encoding, units = _measure(text)
    if units <= _SINGLE_UNITS[encoding]:
        return [text]
    return _pack(text, _PART_UNITS[encoding], _UNITS_OF[encoding])


def _pack(text: str, per_part: int, units_of: Callable[[str], int]) -> list[str]:
    """Cut `text` into the longest successive slices of at most `per_part` units each."""
    parts: list[str] = []
    start = 0
    while start < len(text):
        # A character costs at least one unit, so no part holds more than `per_part` of them.
        end = min(start + per_part, len(text))
        units = units_of(text[start:end])
        while units > per_part:
            end -= 1
            units -= units_of(text[end])
        parts.append(text[start:end])
        start = end
    return parts


def segments_of(text: str) -> tuple[str, int]:
    """(encoding, segment count): 160/153 septets for GSM-7, 70/67 UTF-16 units for UCS-2."""
    encoding, units = _measure(text)
    if units <= _SINGLE_UNITS[encoding]:
        return encoding, 1
    return encoding, len(_pack(text, _PART_UNITS[encoding], _UNITS_OF[encoding]))
