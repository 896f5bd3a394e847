"""Hypothesis against the contact and opt-out imports: every file ends checked or refused
with a reason, and no page shows a traceback or a path on the server (DEBUG is off).

A file goes through what the admin does (check, then import what the check passed),
through the admin's upload pages (contacts and opt-outs), and through `import_contacts`.
Every example runs in a savepoint that is rolled back, so each starts from the same data.
"""

import codecs
import csv
import io
import json
import sys
import tracemalloc
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contacts import jobs
from contacts.models import Channel, Contact, Group, ImportJob, OptOut, Tag
from tests.contacts.conftest import post_and_commit, uk

S = ImportJob.Status
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
#: Tables an import may write to; the job's own rows are its record, not contact data.
JOB_TABLES = {"contacts.ImportJob", "contacts.ImportJob_groups", "contacts.ImportJob_tags"} | {
    "contacts.ImportUndo"
}

Snapshot = dict[str, list[tuple[Any, ...]]]


def snapshot() -> Snapshot:
    """Every row of every contacts table (memberships too), by key, in plain SQL."""
    tables = {}
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for model in apps.get_app_config("contacts").get_models(include_auto_created=True):
            table, key = model._meta.db_table, str(model._meta.pk.column)
            cursor.execute(f"SELECT * FROM {quote(table)} ORDER BY {quote(key)}")  # noqa: S608
            tables[model._meta.label] = cursor.fetchall()
    return tables


def changed_tables(before: Snapshot, after: Snapshot) -> set[str]:
    return {label for label in before if before[label] != after[label]} - JOB_TABLES


def write_summary(name: str, counts: Counter[str]) -> None:
    """The run's numbers, for the closing note: tests/artefacts/fuzz-<name>.json."""
    path = Path(__file__).parents[1] / "artefacts" / f"fuzz-{name}.json"
    path.parent.mkdir(exist_ok=True)
    summary = {"500s": 0, "crashes": 0, **counts}
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    print(f"\nfuzz-{name}: {json.dumps(summary, sort_keys=True)}")


def rolled_back(check: Callable[[], None]) -> None:
    with transaction.atomic():
        try:
            check()
        finally:
            transaction.set_rollback(True)


# Strategies: files that are almost CSV, and files that are nothing at all.

HEADERS = [
    "phone", "Mobile", "PHONE NUMBER", "\ufeffphone", "first_name", "name", "last_name",
    "email", "language", "timezone", "attributes", "groups", "id", "notes", "", "phone",
    "=cmd|' /C calc'!A0", "a\"b", "ñame", "x" * 300,
]  # fmt: skip
FORMULAS = [
    "=cmd|' /C calc'!A0", "=HYPERLINK(\"http://evil\")", "+1+cmd|' /C calc'!A0", "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1", "\r=1", "'=SUM(A1)", "=1+1",
]  # fmt: skip
#: What Herald's own export writes in its attributes column, and what it could be made to.
ATTRIBUTES_JSON = [
    '{"tier": "gold"}', '{"a": {"b": [1, NaN]}}', "{not json", '{"a": "\\u0000"}',
    '{"a": "\\ud800"}', '{"a":' * 3000 + "1" + "}" * 3000, '{"n": ' + "9" * 5000 + "}",
    '{"": null, "=cmd": "=cmd|\' /C calc\'!A0"}',
]  # fmt: skip
CELLS = [
    uk(1), uk(2), uk(1), "+44 7911 200000", "07911 200001", "0044 7911 200002", "12", "",
    "Zoë", "ada@example.com", "not an email", "en", "Europe/London", "Mars/Olympus", "../etc",
    "[" * 1000, " ", "x" * 101,
    "\x00", "a\x00b", "\u2028", "\x85", "€", "\ud7ff", "😀",
]  # fmt: skip
text_cells = st.sampled_from(CELLS) | st.sampled_from(FORMULAS) | st.text(max_size=30)


@st.composite
def quoted(draw: st.DrawFn, cell: str) -> str:
    """The cell as a CSV writer would quote it, or broken: unbalanced, doubled, nested."""
    return draw(
        st.sampled_from(
            [
                cell,
                '"' + cell.replace('"', '""') + '"',
                '"' + cell,
                cell + '"',
                '"""' + cell + '"',
                '"' + cell + '"x',
                '"' * 7 + cell + '"' * 6,
            ]
        )
    )


@st.composite
def csv_texts(draw: st.DrawFn) -> str:
    header = draw(st.lists(st.sampled_from(HEADERS) | st.text(max_size=12), max_size=8))
    if draw(st.integers(0, 3)):  # mostly a file that gets as far as its rows
        header = ["phone", "attributes", *header] if draw(st.booleans()) else ["phone", *header]
    delimiter = draw(st.sampled_from([",", ";", "\t", "|", " "]))
    width = max(len(header), 1)
    phones = st.sampled_from([uk(1), uk(2), uk(3), "+44 7911 200000", "12", ""])
    second = st.sampled_from(ATTRIBUTES_JSON) | text_cells  # the attributes column, if any
    rows = draw(
        st.lists(
            st.tuples(phones, second, st.lists(text_cells, max_size=width)).map(
                lambda row: [row[0], row[1], *row[2]]
            ),
            max_size=12,
        )
    )
    line_ends = st.sampled_from(["\r\n", "\n", "\r", "\r\r\n", ""])
    lines = [header, *rows]
    out = []
    for cells in lines:
        out.append(delimiter.join(draw(quoted(c)) for c in cells) + draw(line_ends))
    return "".join(out)


ENCODINGS = ["utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16", "utf-16-le", "utf-32"]


@st.composite
def encoded(draw: st.DrawFn) -> bytes:
    text = draw(csv_texts())
    encoding = draw(st.sampled_from(ENCODINGS))
    raw = text.encode(encoding, errors="replace" if encoding != "utf-8" else "surrogatepass")
    if draw(st.integers(0, 4)) == 0:  # a BOM that lies, or bytes in the middle
        raw = (
            draw(st.sampled_from([codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, b""]))
            + raw
        )
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + draw(st.binary(max_size=8)) + raw[cut:]
    return raw


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    for row in rows:
        workbook.active.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


GOOD_XLSX = xlsx_bytes([["phone", "first_name"], [uk(1), "Ada"], [447911200002, "=1+1"]])


@st.composite
def broken_xlsx(draw: st.DrawFn) -> bytes:
    """A real workbook with one part replaced, cut short or garbled."""
    source = zipfile.ZipFile(io.BytesIO(GOOD_XLSX))
    names = source.namelist()
    victim = draw(st.sampled_from(names))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as broken:
        for name in names:
            data = source.read(name)
            if name == victim:
                how = draw(st.sampled_from(["cut", "garble", "empty", "drop", "replace"]))
                if how == "drop":
                    continue
                if how == "cut":
                    data = data[: draw(st.integers(0, len(data)))]
                elif how == "garble":
                    at = draw(st.integers(0, len(data)))
                    data = data[:at] + draw(st.binary(min_size=1, max_size=20)) + data[at + 1 :]
                elif how == "empty":
                    data = b""
                else:
                    data = draw(st.sampled_from([b"<x/>", b"<?xml version='1.0'?><a>", b"\x00"]))
            broken.writestr(name, data)
    raw = out.getvalue()
    if draw(st.integers(0, 5)) == 0:
        raw = raw[: draw(st.integers(4, len(raw)))]  # the zip itself cut short
    return raw


files = st.one_of(
    encoded(),
    encoded(),
    st.binary(max_size=600),
    st.binary(max_size=300).map(lambda b: b"phone,first_name\r\n" + b),
    st.binary(max_size=300).map(lambda b: b"PK\x03\x04" + b),
    broken_xlsx(),
)


# The world each example starts from, and the counts the run reports.


@pytest.fixture
def fuzz_world(db: Any, settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    group = Group.objects.create(name="Fuzz")
    Tag.objects.create(name="fuzzed")
    ada = Contact.objects.create(phone=uk(1), first_name="Ada", attributes={"tier": "silver"})
    ada.groups.add(group)
    OptOut.objects.create(phone=uk(2), channel=Channel.SMS)


# Session-scoped: pytest-django runs the live-server (transactional) tests after the rest,
# so a module-scoped counter would be torn down and restarted between them.
@pytest.fixture(scope="session")
def fuzz_counts() -> Iterator[Counter[str]]:
    counts: Counter[str] = Counter()
    yield counts
    write_summary("import", counts)


def new_job(path: Path) -> ImportJob:
    job = ImportJob.objects.create(
        origin=ImportJob.Origin.CLI,
        source_path=str(path),
        original_name=path.name,
        region="GB",
    )
    job.groups.set(Group.objects.filter(name="Fuzz"))
    job.tags.set(Tag.objects.filter(name="fuzzed"))
    return job


def assert_no_traceback(response: Any) -> None:
    """With DEBUG off nothing of the server's insides reaches a page: no traceback, no path."""
    assert not django_settings.DEBUG
    text = response.content.decode(errors="replace")
    assert "Traceback" not in text and 'File "' not in text
    for path in (str(django_settings.BASE_DIR), sys.prefix, str(django_settings.MEDIA_ROOT)):
        assert path not in text, f"{path} shown in a page"


def assert_readable(reason: str) -> None:
    """One line a person can read: no traceback, no exception class dump, not a page long."""
    assert reason and "\n" not in reason and len(reason) < 1000, reason
    assert "Traceback" not in reason


def check_then_import(path: Path, counts: Counter[str]) -> None:
    """What the admin does with a file: check it; if it passed, import it for real."""
    counts["cases"] += 1
    before = snapshot()
    job = new_job(path)
    try:
        jobs.check(job)
    except Exception:
        counts["crashes"] += 1
        raise
    job.refresh_from_db()
    assert changed_tables(before, snapshot()) == set(), "a check wrote contact data"
    if job.status == S.FAILED:
        counts["rejected_files"] += 1
        assert_readable(job.failure_reason)
        return
    assert job.status == S.VALIDATED, job.status
    preview = job.preview["counts"]
    assert jobs.confirm(job)  # queues the task on commit, which never comes here: run it
    job.refresh_from_db()
    try:
        jobs.run(job)
    except Exception:
        counts["crashes"] += 1
        raise
    job.refresh_from_db()
    assert job.status == S.COMPLETED, job.failure_reason
    counts["imported_files"] += 1
    counts["rejected_rows"] += job.invalid
    done = {name: getattr(job, name) for name in ("imported", "updated", "unchanged", "invalid")}
    assert done == {name: preview[name] for name in done}, (
        "the import did not do what the check said"
    )
    assert Contact.objects.count() == len(before["contacts.Contact"]) + job.imported


# The fuzz tests.


@FUZZ
@given(content=files)
def test_any_file_is_checked_or_refused_with_a_reason_and_a_refused_one_imports_nothing(
    fuzz_world: None, fuzz_counts: Counter[str], tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes(content)
    rolled_back(lambda: check_then_import(path, fuzz_counts))


@pytest.fixture
def fuzz_marketer(fuzz_world: None, make_user: Callable[..., User]) -> Client:
    client = Client()
    client.force_login(make_user("mia", "Marketers"))
    return client


@settings(FUZZ, max_examples=60)
@given(content=files, name=st.sampled_from(["list.csv", "list.xlsx", "list", "..\\x.csv"]))
def test_the_admin_upload_page_never_answers_500_and_imports_nothing_before_confirming(
    fuzz_marketer: Client, fuzz_counts: Counter[str], content: bytes, name: str
) -> None:
    def check() -> None:
        fuzz_counts["cases_admin"] += 1
        before = snapshot()
        upload = SimpleUploadedFile(name, content, content_type="text/csv")
        data = {"file": upload, "region": "GB", "new_groups": "Fuzz", "new_tags": "fuzzed"}
        response = post_and_commit(fuzz_marketer, "/admin/contacts/importjob/add/", data)
        assert response.status_code == 200
        assert_no_traceback(response)
        assert changed_tables(before, snapshot()) == set()
        job = ImportJob.objects.order_by("pk").last()
        if job is None:  # the form refused it (an empty file)
            fuzz_counts["rejected_files_admin"] += 1
            return
        assert job.status in (S.VALIDATED, S.FAILED)
        if job.status == S.FAILED:
            fuzz_counts["rejected_files_admin"] += 1
            assert_readable(job.failure_reason)

    rolled_back(check)


# Opt-out lists: a phone and a channel column, mostly, and everything the contact files get.

OPT_OUT_HEADERS = ["phone", "channel", "Channel", "medium", "note", "source", "Mobile", ""]
CHANNELS = ["sms", "whatsapp", "WhatsApp", "SMS", "Whats App", "", "fax", "=cmd|' /C calc'!A0"]


@st.composite
def opt_out_rows(draw: st.DrawFn) -> list[list[Any]]:
    header = draw(st.lists(st.sampled_from(OPT_OUT_HEADERS) | st.text(max_size=12), max_size=5))
    if draw(st.integers(0, 3)):
        header = ["phone", "channel", *header] if draw(st.booleans()) else ["phone", *header]
    phones = st.sampled_from([uk(1), uk(2), uk(3), "+44 7911 200000", "12", "", 447911200003])
    cells = st.sampled_from(CHANNELS) | text_cells
    rows = draw(st.lists(st.tuples(phones, cells, text_cells), max_size=10))
    return [header, *[list(row) for row in rows]]


def opt_out_csv(rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode("utf-8", errors="surrogatepass")


def opt_out_workbook(rows: list[list[Any]]) -> bytes:
    # XLSX cannot hold control characters (openpyxl refuses them): those cells go blank.
    return xlsx_bytes(
        [[c if not isinstance(c, str) or c.isprintable() else "" for c in r] for r in rows]
    )


opt_out_files = st.one_of(
    opt_out_rows().map(opt_out_csv),
    opt_out_rows().map(opt_out_workbook),
    files,
)


@settings(FUZZ, max_examples=80)
@given(
    content=opt_out_files,
    name=st.sampled_from(["stop.csv", "stop.xlsx", "stop"]),
    channel=st.sampled_from(["", "sms", "whatsapp"]),
)
def test_the_opt_out_import_never_answers_500_or_shows_a_traceback_and_adds_only_when_confirmed(
    fuzz_marketer: Client, fuzz_counts: Counter[str], content: bytes, name: str, channel: str
) -> None:
    def check() -> None:
        fuzz_counts["cases_opt_outs"] += 1
        before = snapshot()
        data = {"file": SimpleUploadedFile(name, content), "channel": channel, "region": "GB"}
        response = post_and_commit(fuzz_marketer, "/admin/contacts/optout/import/", data)
        assert response.status_code == 200
        assert_no_traceback(response)
        assert changed_tables(before, snapshot()) == set(), "a check wrote opt-outs"
        job = ImportJob.objects.order_by("pk").last()
        if job is None:  # the form refused it (an empty file)
            fuzz_counts["rejected_files_opt_outs"] += 1
            return
        assert_no_traceback(fuzz_marketer.get(f"/admin/contacts/importjob/{job.pk}/progress/"))
        if job.status == S.FAILED:
            fuzz_counts["rejected_files_opt_outs"] += 1
            assert_readable(job.failure_reason)
            return
        assert job.status == S.VALIDATED, job.status
        done = post_and_commit(fuzz_marketer, f"/admin/contacts/importjob/{job.pk}/confirm/", {})
        assert done.status_code == 200
        assert_no_traceback(done)
        job.refresh_from_db()
        assert job.status == S.COMPLETED, job.failure_reason
        fuzz_counts["imported_files_opt_outs"] += 1
        assert job.imported == job.preview["counts"]["imported"]
        assert OptOut.objects.count() == len(before["contacts.OptOut"]) + job.imported

    rolled_back(check)


@settings(FUZZ, max_examples=60)
@given(content=files)
def test_the_cli_ends_in_a_summary_or_a_one_line_error_and_a_refused_file_leaves_nothing(
    fuzz_world: None, fuzz_counts: Counter[str], tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes(content)

    def check() -> None:
        fuzz_counts["cases_cli"] += 1
        before = snapshot()
        out = io.StringIO()
        try:
            call_command("import_contacts", str(path), "--workers=1", "--group=Fuzz", stdout=out)
        except CommandError as exc:
            fuzz_counts["rejected_files_cli"] += 1
            assert_readable(str(exc))
            # Whatever a broken file got in before it broke is the job's, and rolls back.
            job = ImportJob.objects.order_by("pk").last()
            if job is not None and job.status == S.FAILED and job.imported + job.updated:
                assert jobs.roll_back(job)
            assert changed_tables(before, snapshot()) == set()
            return
        assert out.getvalue().splitlines()[-1].startswith("imported=")

    rolled_back(check)


# Pinned: what the fuzzers found, and the inputs too big to draw at random.


def check_file(path: Path) -> ImportJob:
    job = new_job(path)
    jobs.check(job)
    job.refresh_from_db()
    return job


def import_file(path: Path) -> ImportJob:
    job = check_file(path)
    assert job.status == S.VALIDATED, job.failure_reason
    assert jobs.confirm(job)
    job.refresh_from_db()
    jobs.run(job)
    job.refresh_from_db()
    return job


def test_a_file_without_a_phone_column_says_so_on_one_short_line(
    fuzz_world: None, tmp_path: Path
) -> None:
    path = tmp_path / "f.csv"
    path.write_text('"first\r\nname",' + ",".join(f"column{i}" for i in range(5000)) + "\r\nx\r\n")
    job = check_file(path)
    assert job.status == S.FAILED
    assert job.failure_reason.startswith("no phone column")
    assert "first name, column0" in job.failure_reason and "and 4991 more" in job.failure_reason
    assert_readable(job.failure_reason)


@pytest.mark.parametrize(
    "content",
    [
        codecs.BOM_UTF16_LE + "phone\r\n".encode("utf-16-le") + b"\x00\xd8",  # lone surrogate
        codecs.BOM_UTF16_LE + "phone\r\n".encode("utf-16-le") + b"1",  # odd length
    ],
)
def test_a_file_that_is_not_the_utf16_its_bom_announces_is_refused(
    fuzz_world: None, tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    job = check_file(path)
    assert (job.status, job.failure_reason) == (
        S.FAILED,
        "not readable as the UTF-16 text its first bytes announce",
    )


def replaced_part(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(GOOD_XLSX)) as good, zipfile.ZipFile(out, "w") as broken:
        for part in good.namelist():
            broken.writestr(part, data if part == name else good.read(part))
    return out.getvalue()


@pytest.mark.parametrize(
    ("part", "data"),
    [
        ("xl/workbook.xml", b"<workbook"),  # XML cut short: ParseError
        ("xl/workbook.xml", b'<workbook xmlns="http://schemas.openxmlformats.org/spread'
         b'sheetml/2006/main"><bookViews><workbookView howVertical="1"/></bookViews></workbook>'),
        ("xl/worksheets/sheet1.xml", b"<worksheet><sheetData><row>"),  # read with the rows
    ],
)  # fmt: skip
def test_a_damaged_workbook_is_refused_with_a_reason(
    fuzz_world: None, tmp_path: Path, part: str, data: bytes
) -> None:
    path = tmp_path / "f.xlsx"
    path.write_bytes(replaced_part(part, data))
    job = check_file(path)
    assert job.status == S.FAILED
    assert "XLSX" in job.failure_reason or "spreadsheet" in job.failure_reason
    assert_readable(job.failure_reason)


@pytest.mark.parametrize(
    "attributes",
    [
        '{"a":' * 3000 + "1" + "}" * 3000,  # RecursionError in json
        '{"n": ' + "9" * 5000 + "}",  # ValueError: past Python's 4,300 digits
        '{"a": "\\u0000"}',  # PostgreSQL refuses NUL in jsonb
        '{"a": "\\ud800"}',  # no database encodes a lone surrogate
    ],
)
def test_attribute_json_no_database_can_store_rejects_the_row_not_the_import(
    fuzz_world: None, tmp_path: Path, attributes: str
) -> None:
    path = tmp_path / "f.csv"
    cell = '"' + attributes.replace('"', '""') + '"'
    path.write_text(f"phone,attributes\r\n{uk(5)},{cell}\r\n{uk(6)},\r\n")
    job = import_file(path)
    assert (job.status, job.imported, job.invalid) == (S.COMPLETED, 1, 1)
    assert list(Contact.objects.filter(phone__in=[uk(5), uk(6)]).values_list("phone")) == [(uk(6),)]


def test_a_nul_deep_in_a_windows_encoded_file_refuses_the_file(
    fuzz_world: None, tmp_path: Path
) -> None:
    # The NUL check used to stop at the first byte that is not UTF-8.
    rows = "".join(f"{uk(i)},Zo\xeb\r\n" for i in range(10, 60_000))
    path = tmp_path / "f.csv"
    path.write_bytes(f"phone,first_name\r\n{rows}{uk(3)},a\x00b\r\n".encode("cp1252"))
    assert path.stat().st_size > 1 << 20
    job = check_file(path)
    assert (job.status, job.failure_reason) == (
        S.FAILED,
        "this is not a text CSV file (it contains NUL bytes)",
    )


def peak_memory_of(check: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        check()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
@pytest.mark.parametrize("where", ["header", "row"])
def test_a_20_megabyte_field_is_refused_in_bounded_memory(
    fuzz_world: None, tmp_path: Path, encoding: str, where: str
) -> None:
    huge = "é" + "x" * 20_000_000
    text = (
        f"phone,{huge}\r\n{uk(5)},a\r\n" if where == "header" else f"phone,n\r\n{uk(5)},{huge}\r\n"
    )
    path = tmp_path / "f.csv"
    path.write_bytes(text.encode(encoding))
    del huge, text
    job = new_job(path)
    peak = peak_memory_of(lambda: jobs.check(job))
    job.refresh_from_db()
    assert job.status == S.FAILED
    assert "longer than 1,048,576 characters" in job.failure_reason
    assert peak < 12_000_000, f"peak {peak:,} bytes"


def test_half_a_million_empty_lines_are_refused_in_bounded_memory(
    fuzz_world: None, tmp_path: Path
) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"phone,name\r\n" + b",\r\n\n\r" * 170_000)
    job = new_job(path)
    peak = peak_memory_of(lambda: jobs.check(job))
    job.refresh_from_db()
    assert (job.status, job.failure_reason) == (S.FAILED, "the file has a header but no data rows")
    assert peak < 12_000_000, f"peak {peak:,} bytes"


def test_thousands_of_columns_and_repeated_headers_import(fuzz_world: None, tmp_path: Path) -> None:
    header = ["phone", "phone", "first_name", *(f"c{i % 2500}" for i in range(5000))]
    row = [uk(7), uk(8), "Ada", *(str(i) for i in range(5000))]
    path = tmp_path / "f.csv"
    path.write_text(",".join(header) + "\r\n" + ",".join(row) + "\r\n")
    job = import_file(path)
    assert (job.status, job.imported) == (S.COMPLETED, 1)
    contact = Contact.objects.get(phone=uk(7))
    # The first phone column is the phone, the next an attribute; a repeated column keeps
    # its last cell.
    assert (contact.attributes["phone"], contact.attributes["c0"]) == (uk(8), "2500")
    assert len(contact.attributes) == 2501


@pytest.mark.parametrize("formula", FORMULAS)
def test_formula_cells_are_stored_as_text_never_run(
    fuzz_world: None, tmp_path: Path, formula: str
) -> None:
    path = tmp_path / "f.csv"
    cell = '"' + formula.replace('"', '""') + '"'
    path.write_text(f"phone,first_name,note\r\n{uk(9)},{cell},{cell}\r\n", newline="")
    job = import_file(path)
    assert (job.status, job.imported) == (S.COMPLETED, 1)
    contact = Contact.objects.get(phone=uk(9))
    # Stripped of surrounding blanks like every cell; a quote our own export put in front
    # of a formula is taken off again (contacts.spreadsheets.unguard).
    stored = formula.strip().removeprefix("'")
    assert (contact.first_name, contact.attributes) == (stored, {"note": stored})
