"""Message bodies: `{{variable}}` substitution, and what the text costs in SMS segments.

Substitution is plain string replacement, never a template language, so nothing
a contact's data contains can run.
"""

import math
import re
from collections.abc import Mapping

import gsm0338  # noqa: F401 - registers the "gsm03.38" codec

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|([^}]*))?\}\}")

GSM7 = "gsm7"
UCS2 = "ucs2"


def placeholders(body: str) -> list[str]:
    """Variable names used in `body`, in order of first use."""
    seen: dict[str, None] = {}
    for match in PLACEHOLDER.finditer(body):
        seen.setdefault(match.group(1), None)
    return list(seen)


def render(body: str, fields: Mapping[str, str]) -> str:
    """Fill `{{name}}` / `{{name|default}}` from `fields`; empty values take the default."""

    def substitute(match: re.Match[str]) -> str:
        value = fields.get(match.group(1), "")
        return value if value else (match.group(2) or "").strip()

    return PLACEHOLDER.sub(substitute, body)


def encoding_of(text: str) -> str:
    try:
        text.encode("gsm03.38")
    except UnicodeEncodeError:
        return UCS2
    return GSM7


def segments_of(text: str) -> tuple[str, int]:
    """(encoding, segment count): 160/153 septets for GSM-7, 70/67 UTF-16 units for UCS-2."""
    encoding = encoding_of(text)
    if encoding == GSM7:
        # Extension characters (€, {, ...) encode as an escape plus a septet.
        units, single, multi = len(text.encode("gsm03.38")), 160, 153
    else:
        units, single, multi = len(text.encode("utf-16-le")) // 2, 70, 67
    return encoding, 1 if units <= single else math.ceil(units / multi)
