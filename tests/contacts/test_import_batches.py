"""How a big import travels: CSV batches parsed in the workers, numbers already contacts not
parsed again, and what the first import of a file and its re-import report."""

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from contacts.importing import (
    MAX_LINE_CHARS,
    Columns,
    FileProblem,
    RowCleaner,
    RowError,
    encode_attributes,
    open_source,
)
from contacts.models import Contact, Group
from contacts.resources import KnownNumbers, known_numbers
from contacts.spreadsheets import unguard
from tests.contacts.conftest import HEADER, csv_text, uk


def run(path: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("import_contacts", str(path), *args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip().splitlines()[-1]


# Cells with what makes CSV hard: quotes, delimiters and every kind of line break.
cell = st.text(alphabet=st.sampled_from(['"', ",", ";", "\n", "\r", " ", "a", "+", "4", "é"]))
rows = st.lists(st.lists(cell, min_size=1, max_size=4), max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    rows=rows,
    delimiter=st.sampled_from([",", ";"]),
    terminator=st.sampled_from(["\r\n", "\n", "\r"]),
    size=st.integers(1, 5),
    raw_lines=st.lists(st.sampled_from(['a"b,c\n', '"\n', "\n", "x\r"]), max_size=3),
)
def test_batches_read_every_row_with_its_line_as_the_csv_module_does(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[list[str]],
    delimiter: str,
    terminator: str,
    size: int,
    raw_lines: list[str],
) -> None:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=terminator)
    writer.writerow(["phone", "note"])
    writer.writerows(rows)
    text = out.getvalue() + "".join(raw_lines)  # and lines no writer would write
    path = tmp_path_factory.mktemp("csv") / "c.csv"
    path.write_text(text, encoding="utf-8", newline="")

    try:
        one_by_one = open_source(path)
    except FileProblem:  # the delimiter sniffed otherwise, no phone column: nothing to read
        assume(False)
    expected = list(one_by_one.rows)
    one_by_one.close()
    batched = open_source(path)
    batches = list(batched.batches(size))
    batched.close()
    assert [row for batch in batches for row in batch.records()] == expected


def test_a_line_past_the_limit_is_refused_with_its_number_in_a_quoted_record_too(
    write_file: Callable[..., Path],
) -> None:
    long = "x" * (MAX_LINE_CHARS + 1)
    plain = write_file("plain.csv", f"phone,note\r\n{uk(1)},a\r\n{uk(2)},{long}\r\n")
    with pytest.raises(FileProblem, match="line 3 is longer than"):
        list(open_source(plain).batches(10))
    quoted = write_file("quoted.csv", f'phone,note\r\n{uk(1)},"a\r\nb\r\n{long}"\r\n')
    with pytest.raises(FileProblem, match="line 4 is longer than"):
        list(open_source(quoted).batches(10))


@pytest.mark.django_db
def test_a_field_past_the_csv_limit_stops_the_import_after_the_batches_before_it(
    write_file: Callable[..., Path],
) -> None:
    lines = csv_text([[uk(i), f"N{i}", "", "", ""] for i in range(12_000)]).split("\r\n")
    lines[11_000] = f"{uk(10_999)},{'x' * 200_000},,,"  # unquoted: parsed in a worker
    path = write_file("broken.csv", "\r\n".join(lines))
    with pytest.raises(Exception, match="CSV broken near line 11001"):
        run(path, "--workers", "2")
    assert Contact.objects.count() == 10_000  # two batches of 5,000 lines before it


@pytest.mark.django_db
def test_a_reimport_updates_a_changed_row_and_reports_a_now_invalid_one(
    write_file: Callable[..., Path], tmp_path: Path
) -> None:
    rows = [[uk(i), f"N{i}", "L", f"n{i}@example.com", "gold"] for i in range(50)]
    first = write_file("first.csv", csv_text(rows))
    assert run(first, "--group", "G") == "imported=50 updated=0 skipped=0 invalid=0"

    rows[3][1] = "Renamed"
    rows[4][3] = "not-an-email"
    rows[5][4] = "silver"
    rows[6][0] = uk(6) + "99"  # a stored number, made too long
    report = tmp_path / "rejected.csv"
    second = write_file("second.csv", csv_text(rows))
    assert run(second, "--group", "G", "--errors-out", str(report)) == (
        "imported=0 updated=2 skipped=46 invalid=2"
    )
    assert Contact.objects.get(phone=uk(3)).first_name == "Renamed"
    assert Contact.objects.get(phone=uk(4)).email == "n4@example.com"
    assert Contact.objects.get(phone=uk(5)).attributes == {"loyalty_tier": "silver"}
    rejected = report.read_text()
    assert "6,invalid email 'not-an-email'" in rejected
    assert "8,invalid phone number" in rejected
    assert Group.objects.get(name="G").contacts.count() == 50


@pytest.mark.django_db
def test_a_number_stored_without_passing_validation_is_validated_again(
    write_file: Callable[..., Path], tmp_path: Path
) -> None:
    # Ofcom's drama range, written without validation (its country left empty).
    Contact.objects.bulk_create([Contact(phone="+447700900123")])
    assert known_numbers(["+447700900123", uk(1)]) == {}
    report = tmp_path / "rejected.csv"
    path = write_file("c.csv", csv_text([["+447700900123", "Ada", "", "", ""]]))
    assert run(path, "--errors-out", str(report)) == "imported=0 updated=0 skipped=0 invalid=1"
    assert "invalid phone number" in report.read_text()


@pytest.mark.django_db
def test_known_numbers_are_the_cells_that_are_exactly_a_validated_contacts_number() -> None:
    Contact.objects.create(phone=uk(1))  # saving finds its country
    Contact.objects.create(phone="+33612345678")
    cells = [uk(1), f" {uk(2)}", "+33612345678\r\n", "07400000001", "+44 7400 000001", "n/a"]
    assert known_numbers(cells) == {uk(1): "GB", "+33612345678": "FR"}


def test_a_known_number_is_taken_as_it_is_and_the_rest_of_the_row_still_checked() -> None:
    columns = Columns.from_header(HEADER)
    cleaner = RowCleaner(columns, "GB", known={uk(1): "GB"})
    row = cleaner.clean(2, [f" {uk(1)} ", "Ada", "", "ada@example.com", "gold"])
    assert (row.phone, row.country, row.values()) == (
        uk(1),
        "GB",
        {"first_name": "Ada", "email": "ada@example.com"},
    )
    assert row.attributes() == {"loyalty_tier": "gold"}
    with pytest.raises(RowError, match="invalid email"):
        cleaner.clean(3, [uk(1), "Ada", "", "not-an-email", ""])
    with pytest.raises(RowError, match="invalid phone number"):
        cleaner.clean(4, ["+447700900123", "Ada", "", "", ""])


def test_custom_columns_are_encoded_in_jsonb_order_whichever_way_they_come() -> None:
    header = ["phone", "zz", "b", "a", "city"]
    cleaner = RowCleaner(Columns.from_header(header), "GB")
    row = cleaner.clean(2, [uk(1), "1", "2", "", "Leeds"])
    assert row.attributes_json == '{"b": "2", "zz": "1", "city": "Leeds"}'
    twice = RowCleaner(Columns.from_header(["phone", "City", "city"]), "GB")
    assert twice.clean(2, [uk(1), "Leeds", ""]).attributes() == {"city": "Leeds"}
    assert twice.clean(2, [uk(1), "Leeds", "York"]).attributes() == {"city": "York"}


@given(st.lists(st.text(), min_size=3, max_size=3))
def test_custom_columns_are_written_as_encode_attributes_writes_them(values: list[str]) -> None:
    header = ["phone", "tier", "a_note", "a"]
    row = RowCleaner(Columns.from_header(header), "GB").clean(2, [uk(1), *values])
    cells = [unguard(value.strip()) for value in values]
    expected = {key: cell for key, cell in zip(header[1:], cells, strict=True) if cell}
    assert row.attributes_json == (encode_attributes(expected) if expected else "")


@pytest.mark.django_db
def test_known_numbers_are_asked_for_less_often_while_none_are_found(
    django_assert_num_queries: Any,
) -> None:
    Contact.objects.create(phone=uk(1))
    known = KnownNumbers()
    with django_assert_num_queries(1):
        assert known.among([uk(2)]) == {}
        for _ in range(KnownNumbers.PAUSE):
            assert known.among([uk(1)]) == {}  # not asked: a validation is all it costs
    with django_assert_num_queries(2):
        assert known.among([uk(1)]) == {uk(1): "GB"}
        assert known.among([uk(1)]) == {uk(1): "GB"}  # found some: asked again at once
