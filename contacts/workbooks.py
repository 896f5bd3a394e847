"""An XLSX looked at before anything parses it: a zip can unpack to a thousand times its size.

openpyxl's read-only mode streams a sheet's rows, but it reads the shared strings, the
styles and every other part whole, and builds each cell and each tag in memory however
long it is. So a workbook passes two checks first:

- its zip directory (`inspect`): how many parts, how big each unpacks, how hard each is
  compressed. It costs a few milliseconds whatever the file, so the web request runs it.
- its XML (`scan`), unpacked a megabyte at a time: the longest tag or cell, the rows of
  each sheet and the number of shared strings, and no DOCTYPE, entity, comment or CDATA
  (Excel writes none, and CDATA could hide a cell's length from the first check).

Every refusal is a FileProblem whose message says which limit, and which setting.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO

from django.conf import settings

from contacts.importing import FileProblem

#: A workbook has a few dozen parts; a zip of millions of entries is a bomb of its own
#: (its directory alone, parsed by zipfile, takes hundreds of megabytes).
MAX_PARTS = 10_000
MAX_DIRECTORY_BYTES = 10 * 1024 * 1024
#: Parts this small are harmless however hard they are compressed.
RATIO_GRACE_BYTES = 1024 * 1024
#: The end of a zip (its last record, 22 bytes, and a comment of up to 64 KB).
END_SEARCH_BYTES = 22 + 65_535
CHUNK_BYTES = 256 * 1024
#: A tag's bytes per character of a cell, at most: four of UTF-8, or an entity (&quot;).
BYTES_PER_CHAR = 8
#: Rows and shared strings, whatever namespace prefix the writer chose (<row>, <x:row>).
COUNTED_TAGS = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(row|si)[\s/>]")
XML_DECLARATION = re.compile(rb"\s*(?:\xef\xbb\xbf)?\s*<\?xml[^>]{0,200}\?>")
#: XML in UTF-16 (by its BOM, or a "<" with a NUL beside it): the checks read bytes as UTF-8.
UTF16_STARTS = (b"\xff\xfe", b"\xfe\xff", b"<\x00", b"\x00<")


@dataclass(frozen=True)
class Limits:
    unpacked_bytes: int
    ratio: int
    rows: int
    shared_strings: int
    cell_chars: int

    @classmethod
    def from_settings(cls) -> Limits:
        return cls(
            unpacked_bytes=settings.HERALD_IMPORT_XLSX_MAX_BYTES,
            ratio=settings.HERALD_IMPORT_XLSX_MAX_RATIO,
            rows=settings.HERALD_IMPORT_XLSX_MAX_ROWS,
            shared_strings=settings.HERALD_IMPORT_XLSX_MAX_SHARED_STRINGS,
            cell_chars=settings.HERALD_IMPORT_XLSX_MAX_CELL_CHARS,
        )

    @property
    def token_bytes(self) -> int:
        """The longest tag with its text a cell within `cell_chars` can take."""
        return self.cell_chars * BYTES_PER_CHAR + 4096


def megabytes(size: int) -> str:
    return f"{size / 1_000_000:,.1f} MB" if size < 10_000_000 else f"{size / 1_000_000:,.0f} MB"


def inspect(raw: IO[bytes], limits: Limits) -> int:
    """Check the zip's directory against the limits; the workbook's unpacked size."""
    _check_directory_size(raw)
    raw.seek(0)
    try:
        with zipfile.ZipFile(raw) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise FileProblem(f"not a readable XLSX file: {_one_line(exc)}") from None
    finally:
        raw.seek(0)
    unpacked = sum(part.file_size for part in parts)
    if unpacked > limits.unpacked_bytes:
        raise FileProblem(
            f"the spreadsheet unpacks to {megabytes(unpacked)}, more than the "
            f"{megabytes(limits.unpacked_bytes)} allowed (HERALD_IMPORT_XLSX_MAX_BYTES): "
            "save it as CSV, or split it"
        )
    for part in parts:
        if part.file_size > RATIO_GRACE_BYTES and part.file_size > limits.ratio * max(
            part.compress_size, 1
        ):
            ratio = part.file_size // max(part.compress_size, 1)
            raise FileProblem(
                f"the spreadsheet's part {part.filename[:60]} unpacks to {ratio:,} times its "
                f"packed size, past the {limits.ratio:,} a real spreadsheet stays under "
                "(HERALD_IMPORT_XLSX_MAX_RATIO): refused as a zip bomb"
            )
    return unpacked


def _check_directory_size(raw: IO[bytes]) -> None:
    """Count the zip's entries from its last record, before zipfile reads every one of them."""
    raw.seek(0, 2)
    size = raw.tell()
    raw.seek(max(size - END_SEARCH_BYTES, 0))
    tail = raw.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        raise FileProblem("not a readable XLSX file: the zip's directory is missing")
    entries, directory_bytes = struct.unpack("<10xHL4x", tail[at : at + 20])[0:2]
    if entries == 0xFFFF or directory_bytes == 0xFFFFFFFF:
        entries, directory_bytes = _zip64_directory(tail, at)
    if entries > MAX_PARTS or directory_bytes > MAX_DIRECTORY_BYTES:
        raise FileProblem(
            f"the spreadsheet is a zip of {entries:,} parts: a workbook has a few dozen"
        )


def _zip64_directory(tail: bytes, end_at: int) -> tuple[int, int]:
    """Entries and directory size from a ZIP64 end record (found through its locator)."""
    locator = end_at - 20
    if locator < 0 or tail[locator : locator + 4] != b"PK\x06\x07":
        raise FileProblem("not a readable XLSX file: the zip's directory is damaged")
    record = tail.rfind(b"PK\x06\x06", 0, locator)
    if record < 0 or len(tail) < record + 48:
        # The ZIP64 record is further back than the tail read: no workbook's directory is.
        raise FileProblem("the spreadsheet's zip directory is too large for a workbook")
    entries, directory_bytes = struct.unpack("<32xQQ", tail[record : record + 48])
    return entries, directory_bytes


def scan(raw: IO[bytes], limits: Limits) -> None:
    """Read every XML part once, unpacked a chunk at a time, against the limits."""
    try:
        with zipfile.ZipFile(raw) as archive:
            for part in archive.infolist():
                with archive.open(part) as stream:
                    _scan_part(part.filename, stream, limits)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise FileProblem(f"not a readable XLSX file: {_one_line(exc)}") from None
    finally:
        raw.seek(0)


def _scan_part(name: str, stream: IO[bytes], limits: Limits) -> None:
    first = stream.read(CHUNK_BYTES)
    if first.startswith(UTF16_STARTS):
        raise FileProblem(f"the spreadsheet's part {name[:60]} is not UTF-8 XML")
    if not first.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        return  # not XML (a picture, a printer's settings): openpyxl does not parse it
    declaration = XML_DECLARATION.match(first)
    carry = first[declaration.end() :] if declaration else first
    counted = {b"row": 0, b"si": 0}
    while True:
        chunk = stream.read(CHUNK_BYTES)
        data = carry + chunk if chunk else carry + b"<"  # a final "<" closes the last token
        cut = data.rfind(b"<")
        done, carry = (data[:cut], data[cut:]) if cut > 0 else (b"", data)
        _check_tokens(name, done, carry, limits)
        for tag in COUNTED_TAGS.findall(done):
            counted[tag] += 1
        _check_counts(counted, limits)  # as it goes: a bomb is refused a part of the way in
        if not chunk:
            return


def _check_tokens(name: str, done: bytes, carry: bytes, limits: Limits) -> None:
    if b"<!" in done or b"<?" in done:
        raise FileProblem(
            f"the spreadsheet's part {name[:60]} holds XML declarations, comments or CDATA, "
            "which spreadsheet programs never write"
        )
    longest = max(len(carry), max(map(len, done.split(b"<"))) if done else 0)
    if longest > limits.token_bytes:
        raise FileProblem(
            f"the spreadsheet holds a cell or tag longer than {limits.cell_chars:,} characters "
            "(HERALD_IMPORT_XLSX_MAX_CELL_CHARS; Excel's own limit is 32,767)"
        )


def _check_counts(counted: dict[bytes, int], limits: Limits) -> None:
    if counted[b"row"] > limits.rows:
        raise FileProblem(
            f"a sheet has more than the {limits.rows:,} rows allowed "
            "(HERALD_IMPORT_XLSX_MAX_ROWS): save it as CSV, or split it"
        )
    if counted[b"si"] > limits.shared_strings:
        raise FileProblem(
            f"the spreadsheet holds more than the {limits.shared_strings:,} different texts "
            "allowed (HERALD_IMPORT_XLSX_MAX_SHARED_STRINGS): save it as CSV, or split it"
        )


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]
