"""parsing.open_table: formats, encodings, dialects, limits, streaming and closing the file."""

from __future__ import annotations

import gc
import json
import os
import re
import tracemalloc
from pathlib import Path

import pytest
from django.test import override_settings

from bulkadmin import conf, parsing
from bulkadmin.fixit import is_template_row
from bulkadmin.parsing import ParseError, detect_format, normalize_header, open_table

COLUMNS = ["username", "email", "first_name", "last_name", "password", "is_active", "groups"]


def read(path: Path, name: str | None = None, columns=COLUMNS):
    with open_table(path, name or path.name, columns) as table:
        return table.headers, [(r.number, r.values, r.errors) for r in table.rows]


def limits(**values):
    from django.conf import settings

    return override_settings(BULKADMIN={**settings.BULKADMIN, **values})


def open_fds() -> int:
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(" First Name ", "first_name"), ("first-name", "first_name"), ("EMAIL", "email"), ("a  -b", "a_b")],
)
def test_normalize_header(raw, expected):
    assert normalize_header(raw) == expected


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        ("users.csv", b"username\n", "csv"),
        ("users.TXT", b"username\n", "csv"),
        ("users.tsv", b"username\n", "tsv"),
        ("users.json", b"[]", "json"),
        ("upload", b' \n[{"a": 1}]', "json"),
        ("upload", b"\xef\xbb\xbf[{}]", "json"),
        ("upload", b"username\n", "csv"),
        ("users.xlsx", b"junk", "xlsx"),
        ("users.csv", b"PK\x03\x04rest", "xlsx"),  # a renamed workbook is still a workbook
        ("../../etc/passwd.csv", b"username\n", "csv"),
        ("C:\\x\\users.tsv", b"username\n", "tsv"),
    ],
)
def test_detect_format(name, head, expected):
    assert detect_format(name, head) == expected


@pytest.mark.parametrize("name", ["a.xls", "a.ODS", "a.numbers"])
def test_unsupported_spreadsheets_are_named(name):
    with pytest.raises(ParseError, match="files are not supported; save the sheet as XLSX or CSV"):
        detect_format(name, b"whatever")


def test_rows_are_numbered_as_in_the_spreadsheet(write_file):
    path = write_file("u.csv", 'username,first_name\nann,"two\nlines"\n\nbob,Bob\n')
    headers, rows = read(path)
    assert headers == ["username", "first_name"]
    assert [(n, v) for n, v, _ in rows] == [
        (2, {"username": "ann", "first_name": "two\nlines"}),
        (4, {"username": "bob", "first_name": "Bob"}),
    ]


def test_missing_cells_are_blank(write_file):
    _, rows = read(write_file("u.csv", "username,email,first_name\nann\n"))
    assert rows == [(2, {"username": "ann", "email": "", "first_name": ""}, {})]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("shift", range(-3, 4))
def test_line_endings_across_read_boundaries(tmp_path, ending, shift):
    """A line ending that straddles the reader's 64 KB chunks is still one line ending."""
    filler = parsing._READ_BYTES - len(b"username" + ending) - len(ending) + shift
    body = b"username" + ending + b"a" * 100 + ending
    rows = [b"u%05d" % i for i in range(parsing._READ_BYTES // 6 + 50)]
    path = tmp_path / "u.csv"
    data = body + ending.join(rows) + ending
    path.write_bytes(data[:filler] + data[filler:])
    with limits(MAX_FIELD_LENGTH=200):
        _, got = read(path)
    assert [v["username"] for _, v, _ in got] == ["a" * 100, *(r.decode() for r in rows)]
    assert [n for n, _, _ in got] == list(range(2, len(rows) + 3))


def test_bom_is_dropped_from_the_first_header(write_file):
    headers, rows = read(write_file("u.csv", b"\xef\xbb\xbfusername\nann\n"))
    assert headers == ["username"]
    assert rows[0][1] == {"username": "ann"}


def test_invalid_utf8_late_in_the_file_names_its_row(tmp_path):
    """A UTF-8 file (its first row has an é) with a broken byte far down: not guessed as another
    code page, which would garble its accents; the bad row is named."""
    path = tmp_path / "u.csv"
    good = b"".join(b"user%05d\n" % i for i in range(20_000))  # well past the 64 KB sniff window
    path.write_bytes("username\nrené\n".encode() + good + b"jos\xe9\n")
    with pytest.raises(ParseError) as caught:
        read(path)
    assert str(caught.value).startswith("Row 20003: The file is not UTF-8 text (byte 200,018 is invalid).")


@pytest.mark.parametrize(
    ("content", "encoding"),
    [
        ("username,first_name\nrene,René\n".encode("cp1252"), "Windows-1252"),
        ("username\tfirst_name\r\nrene\tRené\r\n".encode("utf-16"), "UTF-16"),  # Excel's "Unicode Text"
    ],
)
def test_what_excel_writes_on_windows_is_read_and_says_how(tmp_path, content, encoding):
    """Before: refused ("The file is not UTF-8 text…", "The file is UTF-16 text. Save it as…")."""
    path = tmp_path / "excel.csv"
    path.write_bytes(content)
    with open_table(path, "excel.csv", ["username", "first_name"]) as table:
        rows = list(table.rows)
        assert table.encoding == encoding
    assert rows[0].values == {"username": "rene", "first_name": "René"}


def test_nul_late_in_the_file_is_a_row_error(tmp_path):
    path = tmp_path / "u.csv"
    path.write_bytes(b"username\n" + b"".join(b"user%05d\n" % i for i in range(10_000)) + b"a\x00b\n")
    _, rows = read(path)
    assert rows[-1] == (10_002, {"username": "ab"}, {"username": ["The value contains a NUL character."]})


def test_ten_megabyte_single_field_is_refused_without_reading_it_whole(tmp_path):
    path = tmp_path / "big.csv"
    path.write_bytes(b"username,first_name\nann," + b"x" * (10 * 1024 * 1024) + b"\n")
    tracemalloc.start()
    try:
        with pytest.raises(ParseError, match=r"^Row 2: The row is longer than [\d,]+ bytes; a value is far"):
            read(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * 1024 * 1024


def test_ten_megabyte_quoted_field_over_many_lines(tmp_path):
    path = tmp_path / "big.csv"
    path.write_bytes(b'username,first_name\nann,"' + b"xxxxxxxxx\n" * (1024 * 1024) + b'"\n')
    with pytest.raises(ParseError, match=r"^Row 2: A value is far longer than any field allows"):
        read(path)


def test_thousands_of_columns_generated(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"col{i}" for i in range(20_000)) + "\n" + "x\n")
    with pytest.raises(ParseError, match=r"^The header has 20,000 columns; at most 50 are allowed."):
        read(path)


def test_trailing_blank_header_cells_do_not_count_against_the_column_limit(tmp_path):
    path = tmp_path / "u.csv"
    path.write_text("username" + "," * 500 + "\nann\n")
    assert read(path)[1] == [(2, {"username": "ann"}, {})]


def test_too_many_rows_counts_only_non_blank_rows(write_file):
    path = write_file("u.csv", "username\n\n\na\nb\n\nc\n")
    with limits(MAX_ROWS=3):
        assert len(read(path)[1]) == 3
    with limits(MAX_ROWS=2), pytest.raises(ParseError, match=r"^Row 7: The file has more than 2 rows"):
        read(path)


def test_upload_limit_is_read_at_call_time(write_file):
    path = write_file("u.csv", "username\nann\n")
    with (
        limits(MAX_UPLOAD_BYTES=5),
        pytest.raises(ParseError, match=r"The file is 13 bytes; the limit is 5."),
    ):
        read(path)
    assert read(path)[1]


def test_value_longer_than_the_limit_is_a_row_error_and_truncated(write_file):
    path = write_file("u.csv", "username,first_name\nann," + "é" * 12 + "\n")
    with limits(MAX_FIELD_LENGTH=10):
        _, rows = read(path)
    assert rows == [
        (
            2,
            {"username": "ann", "first_name": "é" * 10},
            {"first_name": ["The value is 12 characters long; the limit is 10."]},
        )
    ]


def test_file_is_closed_when_the_header_is_refused(write_file):
    path = write_file("u.csv", "nope\nann\n")
    before = open_fds()
    for _ in range(5):
        with pytest.raises(ParseError):
            open_table(path, "u.csv", COLUMNS)
    assert open_fds() == before


@pytest.mark.parametrize("name", ["valid.xlsx", "formulas.xlsx", "utf8_bom.csv", "valid.json"])
def test_file_is_closed_when_rows_are_abandoned(name):
    path = Path(__file__).parent / "corpus" / "files" / name
    before = open_fds()
    for _ in range(3):
        with open_table(path, name, COLUMNS) as table:
            next(table.rows)
    assert open_fds() == before


def test_csv_memory_does_not_grow_with_the_file(tmp_path):
    """Reading 20x the rows costs no more memory: rows are streamed, never listed."""

    def peak_for(count: int) -> int:
        path = tmp_path / f"u{count}.csv"
        with path.open("w") as handle:
            handle.write("username,email,first_name\n")
            for i in range(count):
                handle.write(f"user{i},user{i}@example.com,Name {i}\n")
        tracemalloc.start()
        try:
            with open_table(path, path.name, COLUMNS) as table:
                for _ in table.rows:
                    pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak_for(5_000), peak_for(100_000)
    assert large < small * 1.5 + 256 * 1024, (small, large)


def test_xlsx_values_are_text(tmp_path):
    from datetime import datetime

    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["username", "first_name", "last_name", "is_active", "email"])
    sheet.append(["ann", 12.0, datetime(2024, 5, 1, 9, 30), True, None])
    sheet.append([None, None, None, None, None])
    sheet.append(["bob", 1.5, "x", False, "b@example.com"])
    path = tmp_path / "u.xlsx"
    workbook.save(path)
    _, rows = read(path)
    assert rows == [
        (
            2,
            {
                "username": "ann",
                "first_name": "12",
                "last_name": "2024-05-01T09:30:00",
                "is_active": "true",
                "email": "",
            },
            {},
        ),
        (
            4,
            {
                "username": "bob",
                "first_name": "1.5",
                "last_name": "x",
                "is_active": "false",
                "email": "b@example.com",
            },
            {},
        ),
    ]


def test_json_header_is_the_union_of_keys(write_file):
    path = write_file("u.json", json.dumps([{"username": "ann"}, {"username": "bob", "groups": ["A", "B"]}]))
    headers, rows = read(path)
    assert headers == ["username", "groups"]
    assert rows == [(2, {"username": "ann", "groups": ""}, {}), (3, {"username": "bob", "groups": "A;B"}, {})]


def test_json_scalars_become_text(write_file):
    path = write_file("u.json", '[{"username": 7, "is_active": true, "first_name": null, "last_name": 2.5}]')
    assert read(path)[1] == [
        (2, {"username": "7", "is_active": "true", "first_name": "", "last_name": "2.5"}, {})
    ]


def test_excel_sep_line_sets_the_delimiter(write_file):
    path = write_file("u.csv", "sep=|\nusername|first_name\nann|A, B\n")
    assert read(path)[1] == [(2, {"username": "ann", "first_name": "A, B"}, {})]


def test_parse_error_names_row_and_column():
    error = ParseError("Bad.", row=3, column="email")
    assert str(error) == "Row 3, column “email”: Bad."
    assert (error.row, error.column, error.message) == (3, "email", "Bad.")
    assert str(ParseError("Bad.")) == "Bad."


def xlsx_with_far_cells(rows: int, column: str) -> bytes:
    """A workbook whose data rows each hold a value in ``column`` too (XFD is the 16,384th)."""
    import io
    import zipfile

    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["username"])
    base = io.BytesIO()
    book.save(base)
    body = ['<row r="1"><c r="A1" t="inlineStr"><is><t>username</t></is></c></row>']
    for n in range(2, rows + 2):
        body.append(
            f'<row r="{n}"><c r="A{n}" t="inlineStr"><is><t>u{n}</t></is></c>'
            f'<c r="{column}{n}"><v>1</v></c></row>'
        )
    sheet = (
        '<?xml version="1.0" encoding="UTF-8"?><worksheet '
        'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        + "".join(body)
        + "</sheetData></worksheet>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(base) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            name = info.filename
            dst.writestr(name, sheet.encode() if name == "xl/worksheets/sheet1.xml" else src.read(name))
    return out.getvalue()


def test_a_far_right_xlsx_cell_does_not_widen_every_row(tmp_path, monkeypatch):
    """One value in column XFD used to make openpyxl hand over 16,384 cells per row."""
    cells = 0
    original = parsing._cell_text

    def counting(value):
        nonlocal cells
        cells += 1
        return original(value)

    monkeypatch.setattr(parsing, "_cell_text", counting)
    path = tmp_path / "wide.xlsx"
    path.write_bytes(xlsx_with_far_cells(100, "XFD"))
    _, rows = read(path)
    assert len(rows) == 100
    assert cells <= 1 + 100 * (conf.get("MAX_COLUMNS") + 1)


def test_a_value_just_past_the_column_limit_is_still_reported(tmp_path):
    path = tmp_path / "past.xlsx"
    path.write_bytes(xlsx_with_far_cells(1, "AY"))  # column 51: the limit is 50
    _, [(_, _, errors)] = read(path)
    assert "the header has 1 columns" in " ".join(errors[parsing.NON_FIELD])


def test_json_is_decoded_an_item_at_a_time(tmp_path):
    """A JSON upload used to cost about 25 times its size in memory (all its dicts at once)."""
    items = [
        {"username": f"user{i:06d}", "email": f"user{i:06d}@example.com", "groups": []} for i in range(30_000)
    ]
    path = tmp_path / "users.json"
    path.write_text(json.dumps(items), encoding="utf-8")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        with open_table(path, path.name, COLUMNS) as table:
            count = sum(1 for _ in table.rows)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 30_000
    assert peak < 3 * size, f"peak {peak:,} bytes for a {size:,}-byte file"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"username": "ann"},]', "not valid JSON (parse error: unallowed token at this point"),
        ('[{"username": "ann"} {"username": "bob"}]', "after array element, I expect ',' or ']'"),
        ('[{"username": "ann"}] []', "not valid JSON (parse error: trailing garbage)"),
        ('[{"username": "ann"}', "not valid JSON (parse error: premature EOF)"),
        ('{"username": "ann"}', "must be an array of objects"),
        ('[{"a": [["x"]]}, 7]', "item 2 is not an object"),
        ("  [ ]  ", "The file has no rows."),
        ('  "just a string"  ', "must be an array of objects"),
        ("", "The file is empty."),
    ],
)
def test_json_array_edges(tmp_path, text, message):
    path = tmp_path / "edge.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ParseError, match=re.escape(message)):
        read(path)


def test_json_rows_match_the_standard_decoder(tmp_path):
    items = [{"username": "ann", "is_active": True}, {"username": "bob", "groups": ["a", "b"], "email": None}]
    path = tmp_path / "u.json"
    path.write_text("\n" + json.dumps(items, indent=2) + "\n", encoding="utf-8")
    headers, rows = read(path)
    assert headers == ["username", "is_active", "groups", "email"]
    assert [values for _, values, _ in rows] == [
        {"username": "ann", "is_active": "true", "groups": "", "email": ""},
        {"username": "bob", "is_active": "", "groups": "a;b", "email": ""},
    ]


def test_blank_lines_count_toward_the_row_limit(write_file, settings):
    """Before: blank lines were skipped before counting, so 50 MiB of them burnt a minute of CPU."""
    from bulkadmin import parsing

    settings.BULKADMIN = {**settings.BULKADMIN, "MAX_ROWS": 10}
    path = write_file("blank.csv", "username\n" + "\n" * (10 + parsing.BLANK_ROWS_ALLOWANCE + 5) + "ann\n")
    with (
        pytest.raises(parsing.ParseError, match="blank rows count too"),
        parsing.open_table(path, path.name, ["username"]) as table,
    ):
        list(table.rows)


@pytest.mark.parametrize("chunk", [parsing._JSON_CHUNK, 5, 13])
@pytest.mark.parametrize(
    ("raw", "first_name"),
    [
        (rb"x\ud83d\ude00y", "x\U0001f600y"),  # a pair is one character
        (rb"\\ud800", "\\ud800"),  # an escaped backslash, then text
        (rb"\\\\\ud83d\ude00", "\\\\\U0001f600"),
        (rb"caf\u00e9", "café"),
    ],
)
def test_json_surrogate_pairs_and_escaped_backslashes_are_text(tmp_path, monkeypatch, chunk, raw, first_name):
    """Small chunks cut escapes and runs of backslashes at every place."""
    monkeypatch.setattr(parsing, "_JSON_CHUNK", chunk)
    path = tmp_path / "u.json"
    path.write_bytes(b'[{"username": "ann", "first_name": "' + raw + b'"}]')
    _, [(_, values, errors)] = read(path)
    assert (values["first_name"], errors) == (first_name, {})


@pytest.mark.parametrize("chunk", [parsing._JSON_CHUNK, 5, 13])
@pytest.mark.parametrize("raw", [rb"\ud800", rb"a\udc00", rb"\ud83d\u0041", rb"\\\ud800", rb"\ude00\ud83d"])
def test_json_lone_surrogates_are_refused_wherever_they_fall(tmp_path, monkeypatch, chunk, raw):
    """Before, yajl turned them into "?": a password silently changed."""
    monkeypatch.setattr(parsing, "_JSON_CHUNK", chunk)
    path = tmp_path / "u.json"
    path.write_bytes(b'[{"username": "ann", "password": "' + raw + b'"}]')
    with pytest.raises(ParseError, match="unpaired surrogate escape"):
        read(path)


def test_json_not_utf8_names_the_byte(tmp_path, monkeypatch):
    monkeypatch.setattr(parsing, "_JSON_CHUNK", 4)
    path = tmp_path / "u.json"
    path.write_bytes('[{"username": "José"}]'.encode("latin-1"))
    with pytest.raises(ParseError, match=re.escape("byte 18 is invalid")):
        read(path)


def test_json_bom_numbers_and_limits(tmp_path, settings):
    path = tmp_path / "u.json"
    path.write_bytes(
        b'\xef\xbb\xbf[{"username": "ann", "first_name": 1.50, "last_name": 2.0, "is_active": 1e400}]'
    )
    _, [(_, values, _)] = read(path)
    assert (values["first_name"], values["last_name"], values["is_active"]) == ("1.50", "2", "1E+400")

    settings.BULKADMIN = {**settings.BULKADMIN, "MAX_COLUMNS": 3, "MAX_ROWS": 2}
    path.write_text('[{"a": 1, "b": 2, "c": 3, "a": 4}]')
    with pytest.raises(ParseError, match="Item 1 takes the keys past 3, the column limit"):
        read(path)
    path.write_text('[{"a": 1}, {"b": 1}, {"c": 1}, {"d": 1}]')
    with pytest.raises(ParseError, match="Item 4 takes the keys past 3"):
        read(path)
    path.write_text('[{"a": [[["x"]]]}]')
    with pytest.raises(ParseError, match="Item 1 nests lists more than 2 deep"):
        read(path)
    path.write_text("[" + ",".join(["{}"] * (2 + parsing.BLANK_ROWS_ALLOWANCE + 1)) + "]")
    with pytest.raises(ParseError, match="blank rows count too"):
        read(path)


@pytest.mark.parametrize(
    ("cells", "template"),
    [
        (["(help) Required.", "", "(help) An e-mail address."], True),
        (["e.g. ada", "e.g. ada@example.com", ""], True),
        (["", "e.g. ada@example.com"], True),
        (["ada", "e.g. ada@example.com"], False),  # data, whatever its later cells say
        (["e.g. ada", "ada@example.com"], False),
        (["(help) Required.", "e.g. ada@example.com"], False),
        (["", " "], False),
    ],
)
def test_the_templates_help_and_example_rows_are_told_from_data(cells, template):
    assert is_template_row(cells) is template
