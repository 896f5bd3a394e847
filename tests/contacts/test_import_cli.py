"""`manage.py import_contacts`: the bad-input corpus, idempotence, updates, and the summary line."""

import codecs
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from contacts.models import Contact, Group, ImportJob, OptOut, Tag
from tests.contacts.conftest import HEADER, csv_text, uk

pytestmark = pytest.mark.django_db


def run(path: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("import_contacts", str(path), *args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip().splitlines()[-1]


def phones() -> set[str]:
    return set(Contact.objects.values_list("phone", flat=True))


def test_imports_into_groups_and_tags_and_ends_with_the_summary_line(
    write_file: Callable[..., Path],
) -> None:
    path = write_file(
        "contacts.csv",
        csv_text([[uk(1), "Ada", "Brown", "ada@example.com", "gold"], [uk(2), "Ben", "", "", ""]]),
    )
    assert run(path, "--group", "Newsletter", "--group", "VIP", "--tag", "spring") == (
        "imported=2 updated=0 skipped=0 invalid=0"
    )
    ada = Contact.objects.get(phone=uk(1))
    assert (ada.first_name, ada.last_name, ada.email) == ("Ada", "Brown", "ada@example.com")
    assert ada.attributes == {"loyalty_tier": "gold"}
    assert set(ada.groups.values_list("name", flat=True)) == {"Newsletter", "VIP"}
    assert list(ada.tags.values_list("name", flat=True)) == ["spring"]
    assert Contact.objects.get(phone=uk(2)).attributes == {}
    job = ImportJob.objects.get()
    assert (job.status, job.origin, job.imported) == ("completed", "cli", 2)


def test_reimporting_the_same_file_changes_nothing(write_file: Callable[..., Path]) -> None:
    rows = [[uk(i), f"N{i}", "L", f"n{i}@example.com", "gold"] for i in range(30)]
    path = write_file("contacts.csv", csv_text(rows))
    run(path, "--group", "G")
    before = list(Contact.objects.order_by("pk").values_list("pk", "phone", "updated_at"))
    assert run(path, "--group", "G") == "imported=0 updated=0 skipped=30 invalid=0"
    assert list(Contact.objects.order_by("pk").values_list("pk", "phone", "updated_at")) == before
    assert Group.objects.get(name="G").contacts.count() == 30


def test_an_updated_file_updates_without_duplicating_or_dropping_memberships(
    write_file: Callable[..., Path],
) -> None:
    first = write_file(
        "v1.csv", csv_text([[uk(1), "Ada", "Brown", "", "gold"], [uk(2), "Ben", "X", "", ""]])
    )
    run(first, "--group", "Old")
    contact = Contact.objects.get(phone=uk(1))
    contact.attributes["city"] = "Leeds"
    contact.save()
    second = write_file(
        "v2.csv",
        csv_text(
            [[uk(1), "Adaline", "", "ada@example.com", "silver"], [uk(2), "Ben", "X", "", ""]]
        ),
    )
    assert run(second, "--group", "New") == "imported=0 updated=1 skipped=1 invalid=0"
    contact.refresh_from_db()
    assert (contact.first_name, contact.last_name, contact.email) == (
        "Adaline",
        "Brown",  # an empty cell never erases what we had
        "ada@example.com",
    )
    assert contact.attributes == {"loyalty_tier": "silver", "city": "Leeds"}
    assert set(contact.groups.values_list("name", flat=True)) == {"Old", "New"}
    assert Contact.objects.count() == 2


def test_importing_never_clears_an_opt_out(write_file: Callable[..., Path]) -> None:
    OptOut.objects.create(phone=uk(1), channel="sms")
    run(write_file("c.csv", csv_text([[uk(1), "Ada", "", "", ""]])), "--group", "G")
    assert OptOut.objects.filter(phone=uk(1), channel="sms").exists()
    assert list(Contact.objects.opted_out("sms").values_list("phone", flat=True)) == [uk(1)]


PHONE_CORPUS = [
    ("+44 7911 123456", "+447911123456"),
    ("07911 123457", "+447911123457"),
    ("(0)7911-123458", "+447911123458"),
    ("447911123459", "+447911123459"),
    ("00447911123450", "+447911123450"),
    ("+44 7700 900123", "invalid phone number"),  # Ofcom's drama range: valid nowhere
    ("(0)7700-900123", "invalid phone number"),
    ("call me maybe", "invalid phone number"),
    ("", "missing phone number"),
    ("+999 1234 5678", "invalid phone number"),
    ("12", "invalid phone number"),
]


def test_every_phone_in_the_corpus_is_imported_normalised_or_rejected_with_a_reason(
    write_file: Callable[..., Path], tmp_path: Path
) -> None:
    rows = [[raw, f"row{i}", "", "", ""] for i, (raw, _) in enumerate(PHONE_CORPUS)]
    path = write_file("phones.csv", csv_text(rows))
    report = tmp_path / "rejected.csv"
    assert run(path, "--region", "GB", "--errors-out", str(report)) == (
        "imported=5 updated=0 skipped=0 invalid=6"
    )
    good = {expected for raw, expected in PHONE_CORPUS if expected.startswith("+")}
    assert phones() == good
    rejected = report.read_text().splitlines()
    assert rejected[0] == "line,error," + ",".join(HEADER)
    for line_no, (raw, expected) in enumerate(PHONE_CORPUS, start=2):
        if not expected.startswith("+"):
            assert any(r.startswith(f"{line_no},") and expected in r for r in rejected), raw


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16"])
def test_files_in_common_encodings_keep_their_accents(
    write_file: Callable[..., Path], encoding: str
) -> None:
    name = "Zoë Renée" if encoding != "cp1252" else "Zoë “Renée”"
    path = write_file("enc.csv", csv_text([[uk(1), name, "Müller", "", ""]]), encoding=encoding)
    assert run(path).startswith("imported=1")
    assert Contact.objects.get().first_name == name
    assert Contact.objects.get().last_name == "Müller"


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_delimiters_are_recognised(write_file: Callable[..., Path], delimiter: str) -> None:
    text = csv_text(
        [[uk(1), "Ada", "Brown", "", "gold"], [uk(2), "Ben", "Cole", "", ""]], delimiter=delimiter
    )
    assert run(write_file("d.csv", text)) == "imported=2 updated=0 skipped=0 invalid=0"
    assert Contact.objects.get(phone=uk(1)).last_name == "Brown"


def test_quoted_newlines_and_empty_lines(write_file: Callable[..., Path]) -> None:
    text = (
        "phone,first_name,notes\r\n"
        f'{uk(1)},Ada,"first line\nsecond line"\r\n'
        "\r\n"
        ",,\r\n"
        f"{uk(2)},Ben,plain\r\n"
        "\r\n"
    )
    assert run(write_file("q.csv", text)) == "imported=2 updated=0 skipped=0 invalid=0"
    assert Contact.objects.get(phone=uk(1)).attributes == {"notes": "first line\nsecond line"}


def test_duplicates_in_the_file_are_imported_once_and_reported(
    write_file: Callable[..., Path], tmp_path: Path
) -> None:
    text = csv_text([[uk(1), "Ada", "", "", ""], ["07400000001", "Again", "", "", ""]])
    report = tmp_path / "r.csv"
    assert run(write_file("dup.csv", text), "--errors-out", str(report)) == (
        "imported=1 updated=0 skipped=1 invalid=0"
    )
    assert Contact.objects.get().first_name == "Ada"
    assert "duplicate of line 2" in report.read_text()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the file is empty"),
        (b"phone,first_name\r\n", "header but no data rows"),
        (b"name,email\r\nAda,ada@example.com\r\n", "no phone column"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "not a text CSV"),
        (b"PK\x03\x04not really a spreadsheet", "not a readable XLSX"),
    ],
)
def test_an_unusable_file_exits_1_with_a_one_line_reason(
    write_file: Callable[..., Path], content: bytes, reason: str
) -> None:
    path = write_file("bad.csv", content)
    with pytest.raises(CommandError, match=reason) as raised:
        run(path)
    assert "\n" not in str(raised.value)
    assert not Contact.objects.exists()


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read"):
        run(tmp_path / "nope.csv")


def test_an_unknown_region_is_refused(write_file: Callable[..., Path]) -> None:
    with pytest.raises(CommandError, match="unknown region"):
        run(write_file("c.csv", csv_text([[uk(1), "", "", "", ""]])), "--region", "XX")


def test_dry_run_counts_but_writes_nothing(write_file: Callable[..., Path]) -> None:
    Contact.objects.create(phone=uk(1), first_name="Old")
    text = csv_text(
        [[uk(1), "New", "", "", ""], [uk(2), "Ben", "", "", ""], ["bad", "", "", "", ""]]
    )
    assert run(write_file("c.csv", text), "--dry-run", "--group", "G") == (
        "imported=1 updated=1 skipped=0 invalid=1"
    )
    assert phones() == {uk(1)}
    assert Contact.objects.get().first_name == "Old"
    assert not Group.objects.exists() and not ImportJob.objects.exists()


def test_xlsx_with_numeric_phone_cells(tmp_path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Mobile", "Name", "Tier"])
    sheet.append([447400000001, "Ada", "gold"])  # spreadsheets keep numbers as numbers
    sheet.append(["07400 000002", "Ben", None])
    sheet.append([None, None, None])
    path = tmp_path / "contacts.xlsx"
    book.save(path)
    assert run(path, "--tag", "xl") == "imported=2 updated=0 skipped=0 invalid=0"
    assert phones() == {uk(1), uk(2)}
    assert Contact.objects.get(phone=uk(1)).attributes == {"tier": "gold"}
    assert Tag.objects.get(name="xl").contacts.count() == 2


def test_parallel_workers_import_exactly_what_one_process_does(
    write_file: Callable[..., Path],
) -> None:
    rows = [[uk(i), f"N{i}", "", "", ""] for i in range(12_000)]
    rows += [["nonsense", "", "", "", ""], [uk(5), "dup", "", "", ""]]
    path = write_file("big.csv", csv_text(rows))
    assert (
        run(path, "--workers", "2", "--dry-run") == "imported=12000 updated=0 skipped=1 invalid=1"
    )
    assert run(path, "--workers", "2") == "imported=12000 updated=0 skipped=1 invalid=1"
    assert Contact.objects.count() == 12_000
    assert run(path, "--workers", "1") == "imported=0 updated=0 skipped=12001 invalid=1"


def test_a_50_megabyte_file(write_file: Callable[..., Path]) -> None:
    notes = "x" * 1000
    rows = [[uk(i), "N", "", "", notes] for i in range(53_000)]
    path = write_file("fat.csv", csv_text(rows))
    assert path.stat().st_size > 50 * 1024 * 1024
    assert run(path, "--dry-run") == "imported=53000 updated=0 skipped=0 invalid=0"


def test_bom_and_odd_header_spelling(write_file: Callable[..., Path]) -> None:
    text = codecs.BOM_UTF8.decode() + "Mobile Number;First Name;E-mail;Loyalty Tier\r\n"
    text += f"{uk(1)};Ada;ada@example.com;gold\r\n"
    assert run(write_file("c.csv", text)) == "imported=1 updated=0 skipped=0 invalid=0"
    ada = Contact.objects.get()
    assert (ada.first_name, ada.email, ada.attributes) == (
        "Ada",
        "ada@example.com",
        {"loyalty_tier": "gold"},
    )


def test_bad_emails_and_time_zones_are_row_errors(write_file: Callable[..., Path]) -> None:
    text = "phone,email,timezone\r\n"
    text += (
        f"{uk(1)},not-an-email,\r\n{uk(2)},,Mars/Olympus\r\n{uk(3)},ok@example.com,Europe/Paris\r\n"
    )
    assert run(write_file("c.csv", text)) == "imported=1 updated=0 skipped=0 invalid=2"
    assert Contact.objects.get().timezone == "Europe/Paris"
