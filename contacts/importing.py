"""Reading contact and opt-out files: formats, encodings, columns, and cleaning each row.

Nothing here touches the database, so row cleaning can run in worker processes;
contacts.resources persists what comes out. An XLSX is checked by contacts.workbooks
before openpyxl parses any of it.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import itertools
import json
import re
import zipfile
import zlib
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple
from xml.etree.ElementTree import ParseError

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from contacts.models import Channel, OptOut
from contacts.phones import InvalidPhoneNumber, to_e164_and_country
from contacts.spreadsheets import QUOTE, unguard
from contacts.storable import storable_text

COLUMN_ALIASES = {
    "phone": ("phone", "mobile", "number", "phone_number", "mobile_number", "msisdn", "cell",
              "cellphone", "telephone", "tel", "phone_no", "mobile_phone"),
    "first_name": ("first_name", "firstname", "given_name", "forename", "first", "name"),
    "last_name": ("last_name", "lastname", "surname", "family_name", "last"),
    "email": ("email", "e_mail", "email_address", "mail"),
    "language": ("language", "lang", "locale"),
    "timezone": ("timezone", "time_zone", "tz"),
}  # fmt: skip
# Columns of Herald's own export that are not contact data to import (groups and tags
# are chosen on the import form or with --group/--tag).
IGNORED_COLUMNS = frozenset({"id", "groups", "tags", "created_at", "updated_at"})
FIELD_LIMITS = {"first_name": 100, "last_name": 100, "email": 254, "language": 10, "timezone": 64}
DELIMITERS = ",;\t|"
SNIFF_BYTES = 64 * 1024
# Thousands of columns fit; a 10 MB "line" of a file that is no CSV does not.
MAX_LINE_CHARS = 1024 * 1024
XLSX_MAGIC = b"PK\x03\x04"


class FileProblem(Exception):
    """The file as a whole cannot be imported; the message is one line for a person."""


class NoPhoneColumn(FileProblem):
    """No column is the phone's, by its name or by the mapping: `header` says what there is."""

    def __init__(self, message: str, header: list[str]) -> None:
        super().__init__(message)
        self.header = header


#: Contact fields a file may set besides the phone, in CleanRow order.
FIELDS = ("first_name", "last_name", "email", "language", "timezone")


@dataclass(frozen=True)
class Layout:
    """What a kind of file holds: its known columns, and whether the others are attributes."""

    aliases: dict[str, tuple[str, ...]]
    attributes: bool


CONTACTS = Layout(COLUMN_ALIASES, attributes=True)
OPT_OUTS = Layout(
    {
        "phone": COLUMN_ALIASES["phone"],
        "channel": ("channel", "channels", "medium"),
        "source": ("source",),
        "note": ("note", "notes", "reason", "comment"),
    },
    attributes=False,
)


class CleanRow(NamedTuple):
    """A row ready to write. A tuple, not a dataclass: rows cross process boundaries by
    the million, and tuples pickle several times faster."""

    line: int
    phone: str
    fields: tuple[str, ...]  # FIELDS in order; "" where the file gave nothing
    attributes_json: str  # custom columns, JSON-encoded here in the worker; "" when none
    country: str = ""  # the number's ISO country, found while validating it

    def values(self) -> dict[str, str]:
        return {name: value for name, value in zip(FIELDS, self.fields, strict=True) if value}

    def attributes(self) -> dict[str, str]:
        return json.loads(self.attributes_json) if self.attributes_json else {}


@dataclass
class RowProblem:
    line: int
    error: str
    cells: list[str]


#: What a column may be mapped to besides a layout's fields (see Columns.from_header).
ATTRIBUTE, IGNORE = "attribute", "ignore"
Mapping = dict[str, str]


@dataclass
class Columns:
    """Where each known field sits in a row; every other named column is an attribute."""

    header: list[str]
    index: dict[str, int]
    attributes: list[tuple[int, str]] = field(default_factory=list)

    @classmethod
    def from_header(
        cls, header: list[str], layout: Layout = CONTACTS, mapping: Mapping | None = None
    ) -> Columns:
        """Columns found by their names (COLUMN_ALIASES), except where `mapping` says.

        `mapping` is what a person chose on the preview: {column number (from 0, as
        text): a field of the layout, ATTRIBUTE or IGNORE}; columns it does not name are
        read by their names as usual.
        """
        keys = [normalise_header(h) for h in header]
        chosen = {int(i): target for i, target in (mapping or {}).items() if int(i) < len(keys)}
        index = {target: i for i, target in chosen.items() if target in layout.aliases}
        for name, aliases in layout.aliases.items():
            for alias in aliases:  # aliases in order of preference
                if name in index:
                    break
                found = keys.index(alias) if alias in keys else None
                if found is not None and found not in chosen and found not in index.values():
                    index[name] = found
        if "phone" not in index:
            raise NoPhoneColumn(
                "no phone column: name one of "
                + ", ".join(COLUMN_ALIASES["phone"][:4])
                + f" (found: {names_for_a_message(header)})",
                header,
            )
        taken = set(index.values())
        attributes = [
            (i, k or f"column_{i + 1}")
            for i, k in enumerate(keys)
            if i not in taken
            and chosen.get(i) != IGNORE
            and (chosen.get(i) == ATTRIBUTE or (k and k not in IGNORED_COLUMNS))
        ]
        return cls(header=header, index=index, attributes=attributes if layout.attributes else [])


def names_for_a_message(header: list[str], most: int = 10) -> str:
    """The header's names on one line: each shortened, a few of them, line breaks flattened."""
    names = [" ".join(str(name).split())[:40] for name in header if str(name or "").strip()]
    shown = ", ".join(names[:most])
    if len(names) > most:
        shown += f" and {len(names) - most} more"
    return shown or "no header"


def normalise_header(text: Any) -> str:
    text = str(text or "").strip().lstrip("\ufeff").lower()
    return re.sub(r"[^0-9a-z]+", "_", text).strip("_")


# Opening files.


@dataclass
class Source:
    """An open contact file: its header, its rows, and how far reading has got.

    Its rows are read either one at a time (`rows`) or in batches for worker processes
    (`batches`), not both.
    """

    columns: Columns
    rows: Iterator[tuple[int, list[str]]]  # (line number in the file, cells)
    size: int
    handle: IO[bytes] | None = None  # kept open (and alive) while rows are read
    lines: CsvLines | None = None  # a CSV's lines past its header, for `batches`

    def bytes_read(self) -> int:
        """How far reading has got, in bytes (0 where the format cannot tell)."""
        if self.handle is None:
            return 0
        return self.size if self.handle.closed else self.handle.tell()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()

    def batches(self, size: int) -> Iterator[Batch]:
        """The rows about `size` at a time, as workers clean them (see Batch)."""
        if self.lines is not None:
            yield from _csv_batches(self.lines, self.columns.index["phone"], size)
            return
        phone_at = self.columns.index["phone"]
        while rows := list(itertools.islice(self.rows, size)):
            phones = [cells[phone_at] if phone_at < len(cells) else "" for _, cells in rows]
            yield Batch(phones, rows=rows)


@dataclass
class CsvLines:
    """A CSV file's text, read up to line `line_number`."""

    text: IO[str]
    delimiter: str
    line_number: int


@dataclass
class Batch:
    """Rows on their way to a worker process, and each one's phone cell as written.

    A CSV's rows travel as the file's lines, whole records, and are parsed in the worker:
    a string crosses to another process at the speed of a copy, a list of cells ten
    times slower. Other files' rows travel as cells.
    """

    phones: list[str]  # the phone cells, or what may be them (see RowCleaner)
    rows: list[tuple[int, list[str]]] = field(default_factory=list)
    text: str = ""  # whole records, from line `first_line` on
    first_line: int = 0
    delimiter: str = ","

    def records(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, cells) of each row; empty lines are no rows."""
        if not self.text:
            yield from self.rows
            return
        # Split into lines as the file was read (newline=""), for the same line numbers.
        reader = csv.reader(io.StringIO(self.text, newline=""), delimiter=self.delimiter)
        before = self.first_line - 1
        try:
            for cells in reader:
                if "".join(cells).strip():
                    yield before + reader.line_num, cells
        except csv.Error as exc:
            line = before + reader.line_num
            raise FileProblem(f"CSV broken near line {line}: {exc}") from None


def open_source(
    path: str | Path, layout: Layout = CONTACTS, mapping: Mapping | None = None
) -> Source:
    """Open a CSV (any common encoding and delimiter) or XLSX file for import; `mapping`
    overrides how columns are read (Columns.from_header)."""
    raw, size = _open(path)
    head = raw.read(SNIFF_BYTES)
    raw.seek(0)
    if head.startswith(XLSX_MAGIC):
        return _open_xlsx(raw, size, layout, mapping)
    if not head.strip():
        raw.close()
        raise FileProblem("the file is empty")
    encoding = detect_encoding(raw)
    return _open_csv(raw, size, encoding, layout, mapping)


def _open(path: str | Path) -> tuple[IO[bytes], int]:
    path = Path(path)
    try:
        return path.open("rb"), path.stat().st_size
    except OSError as exc:
        raise FileProblem(f"cannot read {path.name}: {exc.strerror}") from exc


def unpacked_size(path: str | Path) -> int:
    """What reading the file means, in bytes: a CSV's size, an XLSX's size unpacked.

    Only an XLSX's zip directory is read (milliseconds, whatever the file); one past the
    directory limits is refused here already (contacts.workbooks).
    """
    from contacts import workbooks

    raw, size = _open(path)
    with raw:
        if not raw.read(len(XLSX_MAGIC)).startswith(XLSX_MAGIC):
            return size
        return workbooks.inspect(raw, workbooks.Limits.from_settings())


def detect_encoding(raw: IO[bytes]) -> str:
    """UTF-16 by its BOM; else UTF-8 (with or without BOM) when the whole file decodes so;
    else Windows-1252, else Latin-1. Files with NUL characters are no text files."""
    head = raw.read(4)
    raw.seek(0)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        if not _decodes(raw, "utf-16"):
            raise FileProblem("not readable as the UTF-16 text its first bytes announce")
        return "utf-16"
    for encoding in ("utf-8-sig", "cp1252"):
        if _decodes(raw, encoding):
            return encoding
    _decodes(raw, "latin-1")  # decodes any byte: the last resort, read for NUL characters only
    return "latin-1"


def _decodes(raw: IO[bytes], encoding: str) -> bool:
    """Whether the whole file decodes as `encoding`, a chunk at a time (never all of it
    in memory): a decoding error later, halfway through an import, would be a crash."""
    decoder = codecs.getincrementaldecoder(encoding)()
    raw.seek(0)
    try:
        while chunk := raw.read(1 << 20):
            if "\x00" in decoder.decode(chunk):
                raise FileProblem("this is not a text CSV file (it contains NUL bytes)")
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    finally:
        raw.seek(0)
    return True


def _open_csv(
    raw: IO[bytes], size: int, encoding: str, layout: Layout, mapping: Mapping | None
) -> Source:
    text = io.TextIOWrapper(raw, encoding=encoding, newline="")
    sample = text.read(SNIFF_BYTES)
    text.seek(0)
    delimiter = sniff_delimiter(sample)
    reader_lines = _bounded_lines(text)
    reader = csv.reader(reader_lines, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise FileProblem("the file is empty") from None
    except csv.Error as exc:
        raise FileProblem(f"not a readable CSV file: {exc}") from None
    columns = Columns.from_header(header, layout, mapping)
    # The reader has taken the header's lines only: the text goes on from the first row.
    lines = CsvLines(text, delimiter, reader.line_num)
    return Source(columns, _csv_rows(reader, text), size, raw, lines)


def _bounded_lines(text: IO[str], after: int = 0) -> Iterator[str]:
    """The file's lines, refusing one past MAX_LINE_CHARS before it is all in memory.

    The csv module's field size limit only applies once a whole line has been read, and a
    file without line breaks is one line: gigabytes of it.
    """
    read = functools.partial(text.readline, MAX_LINE_CHARS + 1)
    for number, line in enumerate(iter(read, ""), after + 1):
        if len(line) > MAX_LINE_CHARS:
            raise _line_too_long(number)
        yield line


def _line_too_long(number: int) -> FileProblem:
    return FileProblem(
        f"line {number} is longer than {MAX_LINE_CHARS:,} characters: not a contact list"
    )


def _csv_rows(reader: Any, text: IO[str]) -> Iterator[tuple[int, list[str]]]:
    # Holding `text` keeps the wrapper (and so the file) open until the rows run out.
    while not text.closed:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise FileProblem(f"CSV broken near line {reader.line_num}: {exc}") from None
        if "".join(cells).strip():  # empty lines are not rows
            yield reader.line_num, cells


def _csv_batches(source: CsvLines, phone_at: int, size: int) -> Iterator[Batch]:
    """Whole records, `size` lines or a few more a batch.

    A line without a quote character is a whole record (only quotes let a record run on
    past a line break): only the lines with one are parsed here, to find where it ends.
    """
    records = _RecordReader(source)
    phone_cells = _phone_cells(source.delimiter, phone_at)
    read = functools.partial(source.text.readline, MAX_LINE_CHARS + 1)
    lines: list[str] = []
    first = number = source.line_number + 1
    for line in iter(read, ""):
        if len(line) > MAX_LINE_CHARS:
            raise _line_too_long(number)
        if '"' in line:
            taken = records.read(line, number)
            lines += taken
            number += len(taken)
        else:
            lines.append(line)
            number += 1
        if len(lines) >= size:
            text = "".join(lines)
            yield Batch(phone_cells(text), text=text, first_line=first, delimiter=source.delimiter)
            first, lines = number, []
    if lines:
        text = "".join(lines)
        yield Batch(phone_cells(text), text=text, first_line=first, delimiter=source.delimiter)


def _phone_cells(delimiter: str, phone_at: int) -> Callable[[str], list[str]]:
    """What stands in each line at the phone's place, when no quotes move it (all a lookup
    of the numbers that are contacts already needs: a miss only costs a validation)."""
    other = f"[^{re.escape(delimiter)}\r\n]*"
    pattern = re.compile(f"^(?:{other}{re.escape(delimiter)}){{{phone_at}}}({other})", re.M)
    return pattern.findall


class _RecordReader:
    """The csv module reading one record at a time, handing back the lines it took."""

    def __init__(self, source: CsvLines) -> None:
        self._read = functools.partial(source.text.readline, MAX_LINE_CHARS + 1)
        self._first: str | None = None
        self._taken: list[str] = []
        self._number = 0
        self._reader = csv.reader(self._feed(), delimiter=source.delimiter)

    def _feed(self) -> Iterator[str]:
        while True:
            if self._first is not None:
                line, self._first = self._first, None
            else:
                line = self._read()
                if len(line) > MAX_LINE_CHARS:
                    raise _line_too_long(self._number + len(self._taken))
                if not line:
                    return
            self._taken.append(line)
            yield line

    def read(self, first: str, number: int) -> list[str]:
        """The lines of the record that starts with `first`, line `number` of the file."""
        self._first, self._taken, self._number = first, [], number
        try:
            next(self._reader, None)  # None: what the csv module reads as no record at all
        except csv.Error as exc:
            line = number + len(self._taken) - 1
            raise FileProblem(f"CSV broken near line {line}: {exc}") from None
        return self._taken


def sniff_delimiter(sample: str) -> str:
    first_lines = "\n".join(sample.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(first_lines, delimiters=DELIMITERS).delimiter
    except csv.Error:
        header = sample.splitlines()[0] if sample else ""
        counts = {d: header.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


# What a damaged workbook raises from inside openpyxl: its zip, its XML, its values (and
# TypeError for an XML attribute it does not know). Its sheets are read as the rows are,
# so these can come up halfway through as well.
XLSX_ERRORS = (
    *(zipfile.BadZipFile, zlib.error, EOFError, ParseError),
    *(KeyError, ValueError, TypeError, OSError),
)


def _open_xlsx(raw: IO[bytes], size: int, layout: Layout, mapping: Mapping | None) -> Source:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    from contacts import workbooks

    limits = workbooks.Limits.from_settings()
    try:
        workbooks.inspect(raw, limits)
        workbooks.scan(raw, limits)
        workbook = load_workbook(raw, read_only=True, data_only=True)
    except FileProblem:
        raw.close()
        raise
    except (InvalidFileException, *XLSX_ERRORS) as exc:
        raw.close()
        raise FileProblem(f"not a readable XLSX file: {_one_line(exc)}") from None
    if not workbook.worksheets:
        raise FileProblem("the spreadsheet has no sheet")
    sheet = workbook.worksheets[0]
    # The sheet's own <dimension> is not believed: openpyxl would pad every row to its
    # width (16,384 columns) and add empty rows up to its height.
    sheet.reset_dimensions()
    rows = _xlsx_rows(sheet.iter_rows(values_only=True), limits.rows, limits.cell_chars)
    try:
        header = next(rows)[1]
    except StopIteration:
        raise FileProblem("the spreadsheet is empty") from None
    columns = Columns.from_header(header, layout, mapping)

    def numbered() -> Iterator[tuple[int, list[str]]]:
        for line, cells in rows:
            if any(cells):
                yield line, cells

    # openpyxl reads the zip as it goes; progress is told in rows, not bytes.
    return Source(columns, numbered(), size)


def _xlsx_rows(
    values: Iterator[tuple[Any, ...]], max_rows: int, max_cell_chars: int
) -> Iterator[tuple[int, list[str]]]:
    line = 1
    try:
        for line, row in enumerate(values, start=1):
            # Counted as read too: rows the sheet skips (<row r="900000">) are no tags.
            if line > max_rows:
                raise FileProblem(
                    f"the sheet goes past row {max_rows:,}, the most allowed "
                    "(HERALD_IMPORT_XLSX_MAX_ROWS): save it as CSV, or split it"
                )
            cells = [_cell_text(c) for c in row]
            if cells and max(map(len, cells)) > max_cell_chars:
                raise FileProblem(
                    f"row {line} holds a cell longer than {max_cell_chars:,} characters "
                    "(HERALD_IMPORT_XLSX_MAX_CELL_CHARS; Excel's own limit is 32,767)"
                )
            yield line, cells
    except XLSX_ERRORS as exc:
        raise FileProblem(f"XLSX broken near row {line}: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # spreadsheets store phone numbers as floats
    return str(value).strip()


# Cleaning rows (runs in worker processes: plain data in, plain data out).


@dataclass
class CleanChunk:
    rows: list[CleanRow]
    problems: list[RowProblem]

    # Rows cross from the workers as plain tuples: a NamedTuple unpickles through its
    # Python-level __new__, four times slower.
    def __getstate__(self) -> tuple[list[tuple[Any, ...]], list[RowProblem]]:
        return [tuple(row) for row in self.rows], self.problems

    def __setstate__(self, state: tuple[list[tuple[Any, ...]], list[RowProblem]]) -> None:
        rows, self.problems = state
        self.rows = list(map(CleanRow._make, rows))


#: A worker's job: a batch, the file's columns, the region national numbers are read in,
#: and the numbers that are contacts already, each with its country ({E.164: country}).
CleanJob = tuple[Batch, Columns, str | None, dict[str, str]]


def clean_batch(job: CleanJob) -> CleanChunk:
    batch, columns, region, known = job
    cleaner = RowCleaner(columns, region, known)
    chunk = CleanChunk([], [])
    for line, cells in batch.records():
        try:
            chunk.rows.append(cleaner.clean(line, cells))
        except RowError as exc:
            chunk.problems.append(RowProblem(line, str(exc), cells))
    return chunk


class RowError(ValueError):
    """A row that cannot be imported as it is; `field` names the value at fault ("" for none)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def clean_row(line: int, cells: list[str], columns: Columns, region: str | None) -> CleanRow:
    return RowCleaner(columns, region).clean(line, cells)


_EMAIL, _TIME_ZONE = FIELDS.index("email"), FIELDS.index("timezone")


class RowCleaner:
    """Cleans the rows of one file: what its columns decide is worked out once, not per row.

    `known` holds numbers that are contacts already, in E.164, with their country. Every
    way in validates a number before it is stored, and the stored country comes from that
    validation (it is "" for a number that never passed it): a cell that is exactly such a
    number is the same valid number, and is not parsed again. That is most of the cost of a
    file imported a second time.
    """

    def __init__(
        self, columns: Columns, region: str | None, known: dict[str, str] | None = None
    ) -> None:
        self.region = region
        self.known = known or {}
        self.phone_at = columns.index["phone"]
        # The first field too long is the one reported, in the order of columns.index.
        self.fields = [
            (FIELDS.index(name), i, FIELD_LIMITS[name], name)
            for name, i in columns.index.items()
            if name != "phone"
        ]
        keys = [key for _, key in columns.attributes]
        # Custom columns of distinct names are put in jsonb's order once (encode_attributes);
        # an "attributes" column of our own export, or two columns of one name, row by row.
        self.plain_attributes = "attributes" not in keys and len(set(keys)) == len(keys)
        self.attributes = columns.attributes
        if self.plain_attributes:  # (column, '"key": ') in jsonb's order of the keys
            ordered = sorted(columns.attributes, key=lambda column: _jsonb_order(column[1]))
            self.attributes = [(i, _encode_string(key) + ": ") for i, key in ordered]

    def clean(self, line: int, cells: list[str]) -> CleanRow:
        count = len(cells)
        phone = _stripped(cells[self.phone_at]) if self.phone_at < count else ""
        country = self.known.get(phone)
        if country is None:
            phone, country = _phone_and_country(phone, self.region)
        fields = ["", "", "", "", ""]
        for slot, i, limit, name in self.fields:
            if i < count and (value := _stripped(cells[i])):
                if len(value) > limit:
                    raise RowError(f"{name} is longer than {limit} characters", name)
                fields[slot] = value
        if (email := fields[_EMAIL]) and not is_email(email):
            raise RowError(f"invalid email {email[:60]!r}", "email")
        if (zone := fields[_TIME_ZONE]) and not _is_time_zone(zone):
            raise RowError(f"unknown time zone {zone[:40]!r}", "timezone")
        return CleanRow(line, phone, tuple(fields), self._encoded_attributes(cells), country)

    def _encoded_attributes(self, cells: list[str]) -> str:
        count = len(cells)
        if self.plain_attributes:
            # The JSON text itself, keys encoded once: what _JSON.encode gives, 7x faster.
            members = [
                key + _encode_string(value)
                for i, key in self.attributes
                if i < count and (value := _stripped(cells[i]))
            ]
            return "{" + ", ".join(members) + "}" if members else ""
        attributes: dict[str, str] = {}
        for i, key in self.attributes:
            if i < count and (value := _stripped(cells[i])):
                if key == "attributes" and value.startswith("{"):
                    attributes.update(_attributes_json(value))  # a column from our own export
                else:
                    attributes[key] = value
        return encode_attributes(attributes) if attributes else ""


def _stripped(cell: str) -> str:
    """A cell as it is imported: stripped, and without the quote our own export put in
    front of a formula ("'=SUM(...)")."""
    text = cell.strip()
    return unguard(text) if text[:1] == QUOTE else text


def _phone(raw_phone: str, region: str | None) -> str:
    return _phone_and_country(raw_phone, region)[0]


def _phone_and_country(raw_phone: str, region: str | None) -> tuple[str, str]:
    if not raw_phone:
        raise RowError("missing phone number", "phone")
    try:
        return to_e164_and_country(raw_phone, region)
    except InvalidPhoneNumber as exc:
        raise RowError(f"invalid phone number {raw_phone[:40]!r}: {exc}", "phone") from None


class OptOutRow(NamedTuple):
    line: int
    phone: str
    channel: str
    source: str
    note: str


#: How files spell the channels (after normalise_header): values, labels, "whats app".
CHANNEL_SPELLINGS = {
    **{normalise_header(label): value for value, label in Channel.choices},
    **{value: value for value in Channel.values},
    "whats_app": Channel.WHATSAPP.value,
}
NOTE_LIMIT = 200


def clean_opt_out_row(
    line: int, cells: list[str], columns: Columns, region: str | None, default_channel: str
) -> OptOutRow:
    """A row of an opt-out list; `default_channel` ("" for none) where a row names none."""

    def cell(name: str) -> str:
        i = columns.index.get(name)
        return unguard(cells[i].strip()) if i is not None and i < len(cells) else ""

    phone = _phone(cell("phone"), region)
    written = cell("channel")
    channel = CHANNEL_SPELLINGS.get(normalise_header(written), "") if written else default_channel
    if not channel:
        raise RowError(
            f"unknown channel {written[:20]!r}: write sms or whatsapp"
            if written
            else "no channel: write sms or whatsapp, or choose one for such rows on the form",
            "channel",
        )
    source = cell("source").lower()
    if source not in OptOut.Source.values:
        source = OptOut.Source.IMPORT
    note = cell("note")
    if len(note) > NOTE_LIMIT:
        raise RowError(f"note is longer than {NOTE_LIMIT} characters", "note")
    return OptOutRow(line, phone, channel, source, note)


def encode_attributes(attributes: dict[str, str]) -> str:
    """JSON with keys in PostgreSQL jsonb's own order (shorter first, then bytewise), so an
    unchanged contact can be recognised by comparing text, on either database."""
    return _JSON.encode(dict(sorted(attributes.items(), key=lambda kv: _jsonb_order(kv[0]))))


def _jsonb_order(key: str) -> tuple[int, bytes]:
    encoded = key.encode()
    return len(encoded), encoded


# json.dumps builds an encoder for every call that asks for other than its defaults.
_JSON = json.JSONEncoder(ensure_ascii=False)
#: How _JSON writes a string.
_encode_string = json.encoder.encode_basestring


def _attributes_json(text: str) -> dict[str, str]:
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):  # also numbers of 4,300+ digits, absurd nesting
        raise RowError("the attributes column is not a JSON object", "attributes") from None
    if not isinstance(parsed, dict):
        raise RowError("the attributes column is not a JSON object", "attributes")
    attributes = {normalise_header(k): "" if v is None else str(v) for k, v in parsed.items()}
    # JSON escapes can spell what no file could hold: NUL (PostgreSQL refuses it) and
    # lone surrogates (no database can encode them).
    if not all(storable_text(value) for value in attributes.values()):
        raise RowError(
            "the attributes column holds NUL or unpaired surrogate characters", "attributes"
        )
    return attributes


def is_email(text: str) -> bool:
    """Django's e-mail validation (the model's EmailField runs the same)."""
    try:
        _validate_email(text)
    except ValidationError:
        return False
    return True


class _EmailValidator(EmailValidator):
    """Django's, with its user-part pattern compiled here once rather than reached through
    a lazy object at each call, and its verdict on each domain remembered (a file's
    addresses share a few): a third of the time, the same answers."""

    def __init__(self) -> None:
        super().__init__()
        lazy = EmailValidator.user_regex
        self.user_regex = re.compile(lazy.pattern, lazy.flags)

    def validate_domain_part(self, domain_part: str) -> bool:
        return _is_email_domain(domain_part)


@functools.lru_cache(maxsize=4096)
def _is_email_domain(domain_part: str) -> bool:
    return bool(EmailValidator().validate_domain_part(domain_part))


_validate_email = _EmailValidator()


@functools.lru_cache(maxsize=1024)
def _is_time_zone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True
