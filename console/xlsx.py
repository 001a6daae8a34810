"""A small, fast .xlsx writer: sheets of plain values, every text an inline string that never runs.

openpyxl spends ~30 µs per cell; the data file of 10,000 questionnaires has ~250,000 cells. Writing the
SpreadsheetML directly takes a fraction of that, and text cells are `inlineStr`, which a spreadsheet shows
and never evaluates (formula text is additionally prefixed with ' by the caller).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Sequence
from xml.sax.saxutils import escape

Cell = str | int | float | None
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # not allowed in XML 1.0
_BAD_TITLE = re.compile(r"[\[\]:*?/\\]")

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    "{sheets}</Types>"
)
_SHEET_TYPE = (
    '<Override PartName="/xl/worksheets/sheet{n}.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>'
)
_NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_NS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def clean(text: str) -> str:
    return _CONTROL.sub("", text)


def _column(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def _cell(ref: str, value: Cell) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        value = "是" if value else "否"
    if isinstance(value, int | float):
        return f'<c r="{ref}"><v>{value!r}</v></c>'
    text = escape(clean(str(value)))
    return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'


def _width(value: Cell) -> int:
    text = str(value) if value is not None else ""
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text[:60])  # CJK characters are twice as wide


def _sheet(rows: Iterable[Sequence[Cell]]) -> str:
    body: list[str] = []
    columns: list[str] = []
    widths: list[int] = []
    for number, row in enumerate(rows, start=1):
        while len(columns) < len(row):
            columns.append(_column(len(columns)))
            widths.append(6)
        for i, value in enumerate(row):
            widths[i] = max(widths[i], _width(value))
        cells = "".join(_cell(f"{columns[i]}{number}", value) for i, value in enumerate(row))
        body.append(f'<row r="{number}">{cells}</row>')
    cols = "".join(
        f'<col min="{i}" max="{i}" width="{min(w, 60) + 2}" customWidth="1"/>'
        for i, w in enumerate(widths, 1)
    )
    head = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="{_NS_MAIN}">'
    return (
        head
        + (f"<cols>{cols}</cols>" if cols else "")
        + "<sheetData>"
        + "".join(body)
        + "</sheetData></worksheet>"
    )


class Workbook:
    """Sheets in the order added; `save()` returns the .xlsx file's bytes."""

    def __init__(self) -> None:
        self.sheets: list[tuple[str, str]] = []

    def add_sheet(self, title: str, rows: Iterable[Sequence[Cell]]) -> None:
        title = _BAD_TITLE.sub("_", title)[:31] or f"Sheet{len(self.sheets) + 1}"
        self.sheets.append((title, _sheet(rows)))

    def save(self) -> bytes:
        out = io.BytesIO()
        count = len(self.sheets)
        sheets = "".join(
            f'<sheet name="{escape(title, {chr(34): "&quot;"})}" sheetId="{n}" r:id="rId{n}"/>'
            for n, (title, _) in enumerate(self.sheets, start=1)
        )
        workbook = (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            f'<workbook xmlns="{_NS_MAIN}" xmlns:r="{_NS_REL}"><sheets>{sheets}</sheets></workbook>'
        )
        rels = "".join(
            f'<Relationship Id="rId{n}" Type="{_NS_REL}/worksheet" Target="worksheets/sheet{n}.xml"/>'
            for n in range(1, count + 1)
        )
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            types = "".join(_SHEET_TYPE.format(n=n) for n in range(1, count + 1))
            archive.writestr("[Content_Types].xml", _CONTENT_TYPES.format(sheets=types))
            archive.writestr("_rels/.rels", _ROOT_RELS)
            archive.writestr("xl/workbook.xml", workbook)
            archive.writestr(
                "xl/_rels/workbook.xml.rels",
                '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}'
                "</Relationships>",
            )
            for n, (_, xml) in enumerate(self.sheets, start=1):
                archive.writestr(f"xl/worksheets/sheet{n}.xml", xml)
        return out.getvalue()
