"""Workbooks the import tests build for themselves: zip bombs, and real ones of many rows.

Written part by part with zipfile and deflate (never whole in memory), as an attacker
would: a workbook is a zip of XML parts, and nothing makes the zip tell the truth.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

MAIN = b"http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELATIONSHIPS = b"http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def content_types(shared_strings: bool) -> bytes:
    table = (
        b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.'
        b'openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
    )
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        b'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        b'<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
        b'officedocument.spreadsheetml.sheet.main+xml"/>'
        b'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.'
        b'openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        + (table if shared_strings else b"")
        + b"</Types>"
    )


PACKAGE_RELS = (
    b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
    b'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="'
    + RELATIONSHIPS
    + b'/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
WORKBOOK = (
    b'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="'
    + MAIN
    + b'" xmlns:r="'
    + RELATIONSHIPS
    + b'"><sheets><sheet name="List" sheetId="1" r:id="rId1"/></sheets></workbook>'
)


def workbook_rels(shared_strings: bool) -> bytes:
    table = (
        b'<Relationship Id="rId2" Type="' + RELATIONSHIPS + b'/sharedStrings" '
        b'Target="sharedStrings.xml"/>'
    )
    return (
        b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
        b'openxmlformats.org/package/2006/relationships">'
        b'<Relationship Id="rId1" Type="' + RELATIONSHIPS + b'/worksheet" '
        b'Target="worksheets/sheet1.xml"/>'
        + (table if shared_strings else b"")
        + b"</Relationships>"
    )


SHEET_START = b'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="' + MAIN + b'">'


def workbook(
    path: Path, sheet: Iterable[bytes], shared_strings: Iterable[bytes] | None = None
) -> Path:
    """An XLSX at `path` whose first sheet (and shared strings) are the given XML, streamed."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", content_types(shared_strings is not None))
        archive.writestr("_rels/.rels", PACKAGE_RELS)
        archive.writestr("xl/workbook.xml", WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", workbook_rels(shared_strings is not None))
        parts = {"xl/worksheets/sheet1.xml": sheet, "xl/sharedStrings.xml": shared_strings}
        for name, content in parts.items():
            if content is None:
                continue
            with archive.open(name, "w", force_zip64=True) as stream:
                for piece in content:
                    stream.write(piece)
    return path


def text_cell(ref: str, text: str) -> bytes:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'.encode()


def one_cell_bomb(path: Path, megabytes: int = 250) -> Path:
    """The issue's 256 KB file: a header, then one cell of `megabytes` MB of "A"."""

    def sheet() -> Iterator[bytes]:
        yield SHEET_START + b'<sheetData><row r="1">' + text_cell("A1", "phone") + b"</row>"
        yield b'<row r="2"><c r="A2" t="inlineStr"><is><t>'
        block = b"A" * (1 << 20)
        for _ in range(megabytes):
            yield block
        yield b"</t></is></c></row></sheetData></worksheet>"

    return workbook(path, sheet())


def shared_strings_bomb(path: Path, strings: int = 20_000_000) -> Path:
    """A one-cell sheet whose shared-string table holds `strings` entries (340 MB unpacked)."""

    def sheet() -> Iterator[bytes]:
        yield SHEET_START + b'<sheetData><row r="1"><c r="A1" t="s"><v>0</v></c></row>'
        yield b"</sheetData></worksheet>"

    def table() -> Iterator[bytes]:
        yield b'<sst xmlns="' + MAIN + b'" count="%d" uniqueCount="%d">' % (strings, strings)
        block = b"<si><t>x</t></si>" * 10_000
        for _ in range(strings // 10_000):
            yield block
        yield b"</sst>"

    return workbook(path, sheet(), table())


def phone_rows(rows: int, start: int = 2, channel: bytes = b"") -> Iterator[bytes]:
    """Rows of distinct UK mobiles (and a channel cell), as Excel writes them: compressed
    about ten to one, like any real list."""
    for first in range(start, start + rows, 1000):
        block = []
        for line in range(first, min(first + 1000, start + rows)):
            cells = b'<c r="A%d"><v>%d</v></c>' % (line, 447400000000 + line)
            if channel:
                cells += b'<c r="B%d" t="inlineStr"><is><t>%s</t></is></c>' % (line, channel)
            block.append(b'<row r="%d">%s</row>' % (line, cells))
        yield b"".join(block)


def many_rows_xlsx(path: Path, rows: int, header: bytes = b"") -> Path:
    """A real-looking list of `rows` numbers (100,000 rows: about 900 KB, the issue's file)."""

    def sheet() -> Iterator[bytes]:
        yield SHEET_START + b'<sheetData><row r="1">' + text_cell("A1", "phone") + b"</row>"
        yield from phone_rows(rows)
        yield b"</sheetData></worksheet>"

    return workbook(path, sheet())


def opt_out_xlsx(path: Path, rows: int, with_channel: bool = True) -> Path:
    """An opt-out list of `rows` distinct numbers, with or without its channel column."""

    def sheet() -> Iterator[bytes]:
        header = text_cell("A1", "phone") + (text_cell("B1", "channel") if with_channel else b"")
        yield SHEET_START + b'<sheetData><row r="1">' + header + b"</row>"
        yield from phone_rows(rows, channel=b"sms" if with_channel else b"")
        yield b"</sheetData></worksheet>"

    return workbook(path, sheet())
