"""The one formula guard: every cell Herald writes is safe to open, and reads back unchanged."""

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.management import call_command
from hypothesis import example, given
from hypothesis import strategies as st

from contacts.importing import Columns, RowProblem, clean_row
from contacts.models import Contact
from contacts.resources import ContactResource, ErrorReport
from contacts.spreadsheets import csv_lines, guard, guard_cell, runs_as_formula, unguard
from contacts.storable import storable_text
from tests.contacts.conftest import uk

FORMULAS = [
    '=HYPERLINK("http://evil")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1)",
    ' =HYPERLINK("http://evil")',
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    "  \t @SUM(1)",
    "\x00=1",
    "\x1f+cmd",
    "\u00a0=1",  # no-break space
    "\u2028=1",  # line separator
    "\u200b=1",  # zero-width space
    "\ufeff=1",  # byte order mark
    " -2+3",
    "\tplain",  # a leading tab or carriage return is quoted whatever follows
    "\rplain",
    "-",
    "+",
]
LEFT_ALONE = [
    "+44 7911 123456",
    "-12.5",
    "+(44) 7911-123456",
    "12",
    "(020) 7946 0958",
    "plain",
    "ada@example.com",
    "a=b",
    "",
    " plain",
    '{"note": "=1"}',
]


@pytest.mark.parametrize("text", FORMULAS)
def test_a_formula_gets_a_leading_quote_even_behind_blanks_and_control_characters(
    text: str,
) -> None:
    assert runs_as_formula(text)
    assert guard(text) == "'" + text


@pytest.mark.parametrize("text", LEFT_ALONE)
def test_numbers_and_plain_text_are_written_as_they_are(text: str) -> None:
    assert not runs_as_formula(text)
    assert guard(text) == text


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("'=SUM(A1)", "''=SUM(A1)"),
        ("'' =1", "''' =1"),
        ("'plain", "'plain"),
        ("'+44 7911 123456", "'+44 7911 123456"),
        ("'", "'"),
    ],
)
def test_text_that_starts_with_quotes_gets_one_more_only_when_a_formula_follows(
    text: str, written: str
) -> None:
    assert guard(text) == written
    assert unguard(written) == text


@pytest.mark.parametrize(
    ("cell", "read"),
    [
        ("'=SUM(A1)", "=SUM(A1)"),
        ("' =HYPERLINK(1)", " =HYPERLINK(1)"),
        ("'\t=1+1", "\t=1+1"),
        ("''=1", "'=1"),
        ("'plain", "'plain"),  # a quote we never add stays
        ("'+44 7911 123456", "'+44 7911 123456"),
        ("'-12.5", "'-12.5"),
        ("=1", "=1"),
    ],
)
def test_reading_back_takes_off_exactly_the_quote_the_guard_added(cell: str, read: str) -> None:
    assert unguard(cell) == read


def test_only_text_cells_are_guarded() -> None:
    assert [guard_cell(value) for value in (-5, 1.5, None, "=1")] == [-5, 1.5, None, "'=1"]


@given(st.text())
@example("'=1")
@example("\u3000=1")
def test_any_text_survives_guard_then_unguard(text: str) -> None:
    assert unguard(guard(text)) == text


@given(st.text())
def test_no_guarded_text_runs_as_a_formula(text: str) -> None:
    assert not runs_as_formula(guard(text))


# What clean_row keeps of a cell: stripped, never empty, and storable by every database.
importable_text = st.text().map(str.strip).filter(lambda text: text and storable_text(text))


@given(importable_text)
@example('=HYPERLINK("http://evil")')
@example("'=SUM(A1)")
@example("+44 7911 123456")
def test_the_importer_reads_any_exported_cell_back_as_it_was(text: str) -> None:
    row = clean_row(2, [guard(uk(1)), guard(text)], Columns.from_header(["phone", "note"]), "GB")
    assert row.attributes() == {"note": text}


def test_the_rejected_rows_report_quotes_formulas_in_the_header_and_the_rows() -> None:
    out = io.StringIO()
    report = ErrorReport(out, ["phone", " =cmd|' /C calc'!A0"])
    report.add(RowProblem(3, "invalid phone number", ["\t=1+1", "+44 7911 123456"]))
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows == [
        ["line", "error", "phone", "' =cmd|' /C calc'!A0"],
        ["3", "invalid phone number", "'\t=1+1", "+44 7911 123456"],
    ]


def test_streamed_csv_guards_every_cell_and_keeps_numbers() -> None:
    lines = csv_lines([["name", "sent"], [" @SUM(1)", 12], ["-12.5", -3]])
    assert list(csv.reader(io.StringIO("".join(lines)))) == [
        ["name", "sent"],
        ["' @SUM(1)", "12"],
        ["-12.5", "-3"],
    ]


NAMES = ["=1+1", ' =HYPERLINK("http://evil")', "\t=1+1", "'=SUM(A1)", "-12.5", "Zoë"]


@pytest.mark.django_db
@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_our_own_export_imports_back_unchanged(
    file_format: str, write_file: Callable[..., Path]
) -> None:
    for i, name in enumerate(NAMES):
        Contact.objects.create(phone=uk(i), first_name=name, attributes={"note": name})
    exported = getattr(ContactResource().export(), file_format)
    Contact.objects.all().delete()
    path = write_file(f"contacts.{file_format}", exported)
    call_command("import_contacts", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    imported = Contact.objects.order_by("phone").values_list("first_name", "attributes")
    assert list(imported) == [(name, {"note": name}) for name in NAMES]
