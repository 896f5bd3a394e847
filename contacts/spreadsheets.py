"""Cells Herald writes for spreadsheets: never run as a formula, and read back as they were.

Excel, LibreOffice and Google Sheets run a cell that starts with = + - or @ as a formula,
and do so too when blanks or control characters come first (" =HYPERLINK(...)",
"\\t=1+1"); a formula can open links, leak other cells or, through DDE, start programs.
Every CSV and XLSX cell Herald writes goes through `guard_cell`, which puts a quote in
front of such a cell, and the importer's `unguard` takes off exactly that quote again,
so a contact list exported and imported back is unchanged.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any

QUOTE = "'"
FORMULA_STARTS = frozenset("=+-@")
# Tab and carriage return are quoted wherever they lead (OWASP's list): some programs
# drop them and read what follows.
LEADING_ALWAYS_QUOTED = frozenset("\t\r")
# What a spreadsheet skips before it looks for a formula: spaces and line or paragraph
# separators, control characters (tab, CR, NUL, ...) and invisible format characters.
BLANK_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})
# Phone numbers and amounts start with + or - but run nothing: "+44 7911 123456", "-12.5".
PLAIN_NUMBER = re.compile(r"[+-][\d\s().-]*\d")


def runs_as_formula(text: str) -> bool:
    """Whether a spreadsheet could read `text` as a formula."""
    if PLAIN_NUMBER.fullmatch(text):
        return False
    if text[:1] in LEADING_ALWAYS_QUOTED:
        return True
    return _without_leading_blanks(text)[:1] in FORMULA_STARTS


def _without_leading_blanks(text: str) -> str:
    for index, char in enumerate(text):
        if unicodedata.category(char) not in BLANK_CATEGORIES:
            return text[index:]
    return ""


def needs_guard(text: str) -> bool:
    """A formula needs the quote; so does a formula that already has quotes in front
    ("'=1"), or `unguard` could not tell it from one we quoted and would take one off."""
    return runs_as_formula(text.lstrip(QUOTE))


def guard(text: str) -> str:
    """`text` as a spreadsheet shows it and never runs it: quoted when it is a formula."""
    return QUOTE + text if needs_guard(text) else text


def unguard(text: str) -> str:
    """`text` without the quote `guard` put in front; any other text exactly as it is."""
    if text.startswith(QUOTE) and needs_guard(text[1:]):
        return text[1:]
    return text


def guard_cell(value: Any) -> Any:
    """A cell value for a CSV or XLSX file: text guarded, numbers and dates as they are."""
    return guard(value) if isinstance(value, str) else value


def guard_row(row: Iterable[Any]) -> list[Any]:
    return [guard_cell(value) for value in row]


class _Echo:
    """csv.writer's file: hands each line back instead of storing it."""

    def write(self, line: str) -> str:
        return line


def csv_lines(rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    """Each row as one line of CSV, every cell guarded: a download streamed as it is read."""
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow(guard_row(row))
