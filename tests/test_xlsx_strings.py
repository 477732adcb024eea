"""The bounded shared-strings table reads every string as openpyxl's own reader does."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import openpyxl
import pytest
from openpyxl.cell.rich_text import CellRichText, TextBlock
from openpyxl.cell.text import InlineFont

from bulkadmin import parsing, xlsx_strings
from tests.hostile import workbook

STRINGS = [
    "plain",
    "  spaces kept  ",
    "<tag> & \"quotes\" & 'apostrophes'",
    "José Müller — 日本語 😀",
    "line one\nline two",
    "_x005F_x000D_ literal",
    "x" * 300,
    "&amp; as text",
]


def read(path: Path) -> list[list[str]]:
    with parsing.open_table(path, path.name, ["a", "b"]) as table:
        return [[row.values["a"], row.values["b"]] for row in table.rows]


def openpyxl_reads(path: Path) -> list[list[str]]:
    book = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = list(book.worksheets[0].iter_rows(min_row=2, values_only=True))
    finally:
        book.close()
    return [[parsing._cell_text(value) for value in row] for row in rows]


@pytest.mark.parametrize("chunk", [xlsx_strings._CHUNK, 7, 97])
def test_strings_are_read_as_openpyxl_reads_them(tmp_path, monkeypatch, chunk):
    """Small chunks put every tag astride two of them somewhere."""
    monkeypatch.setattr(xlsx_strings, "_CHUNK", chunk)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["a", "b"])
    for index, text in enumerate(STRINGS * 3):
        sheet.append([text, f"row {index}"])
    sheet.append([CellRichText(["bold ", TextBlock(InlineFont(b=True), "part")]), "rich"])
    path = tmp_path / "strings.xlsx"
    book.save(path)

    expected = openpyxl_reads(path)
    assert read(path) == expected
    assert expected[0] == [STRINGS[0], "row 0"]
    assert expected[-1] == ["bold part", "rich"]


def test_a_prefixed_table_empty_strings_and_phonetic_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(xlsx_strings, "_CHUNK", 11)
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    path = workbook(tmp_path / "odd.xlsx", [], [[0, 1], [2, 3], [4, 5]])
    table = (
        f'<?xml version="1.0"?>\n<x:sst xmlns:x="{main}" count="6">'
        "<x:si><x:t>a</x:t></x:si><x:si><x:t>b</x:t></x:si>"
        "<x:si/><x:si ><x:t>after an empty one</x:t></x:si >"
        "<x:si><x:r><x:t>ruby </x:t></x:r><x:rPh sb='0' eb='1'><x:t>ignored</x:t></x:rPh>"
        "<x:r><x:t>base</x:t></x:r></x:si>"
        "<x:si><x:t xml:space='preserve'>&#x41;&#66;&lt;</x:t></x:si>"
        "</x:sst>"
    ).encode()
    rewritten = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(rewritten, "w") as target:
        for info in source.infolist():
            content = table if info.filename == "xl/sharedStrings.xml" else source.read(info)
            target.writestr(info.filename, content)
    path.write_bytes(rewritten.getvalue())

    assert read(path) == openpyxl_reads(path) == [["", "after an empty one"], ["ruby base", "AB<"]]


def test_a_string_longer_than_a_cell_may_hold_is_never_decoded(tmp_path, settings):
    settings.BULKADMIN = {**settings.BULKADMIN, "MAX_FIELD_LENGTH": 10}
    path = workbook(
        tmp_path / "long.xlsx",
        [b"<si><t>a</t></si><si><t>b</t></si><si><t>short</t></si><si><t>", b"y" * 2000, b"</t></si>"],
        [[0, 1], [2, 3]],
    )
    with parsing.open_table(path, path.name, ["a", "b"]) as table:
        [row] = list(table.rows)
    assert row.values == {"a": "short", "b": ""}
    assert row.errors == {"b": ["The value is longer than 10 characters, the limit."]}


def test_a_cell_pointing_past_the_table_is_a_damaged_workbook(tmp_path):
    path = workbook(tmp_path / "past.xlsx", [b"<si><t>a</t></si><si><t>b</t></si>"], [[0, 1], [0, 9]])
    with (
        pytest.raises(parsing.ParseError, match="damaged"),
        parsing.open_table(path, path.name, ["a", "b"]) as t,
    ):
        list(t.rows)
