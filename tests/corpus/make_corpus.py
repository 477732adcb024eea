"""Write the hostile-file corpus and its manifest, ``cases.json``: ``python tests/corpus/make_corpus.py``.

Each case names the file, optionally the name it is uploaded as and BULKADMIN settings to
apply, and what it must produce: a file-level error (``file``), an error on one row and
column (``row``), or a clean read (``ok``, with the number of valid rows). The generated
files are committed so the corpus is reviewable; this script documents how each was made.
"""

from __future__ import annotations

import io
import json
import random
import struct
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FILES = HERE / "files"
CASES: dict[str, dict[str, Any]] = {}


def case(name: str, content: bytes, kind: str, message: str = "", **extra: Any) -> None:
    (FILES / name).write_bytes(content)
    CASES[name] = {"kind": kind, "message": message, **extra}


def xlsx(rows: list[list[Any]]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.properties.created = workbook.properties.modified = datetime(2024, 1, 1)
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def rezip(data: bytes, replace: dict[str, bytes]) -> bytes:
    """Copy a zip, replacing some members' contents."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, replace.get(info.filename, src.read(info.filename)))
    return out.getvalue()


def bomb(claimed: int | None, real: int) -> bytes:
    """An XLSX-looking zip whose sheet unpacks to ``real`` bytes and whose directory claims ``claimed``."""
    good = xlsx([["username"], ["ann"]])
    data = rezip(good, {"xl/worksheets/sheet1.xml": b"<" + b" " * real})
    if claimed is None:
        return data
    # Patch the declared uncompressed size in both the local header and the central directory.
    target = b"xl/worksheets/sheet1.xml"
    patched = bytearray(data)
    for signature, size_offset, length_offset, name_offset in (
        (b"PK\x03\x04", 22, 26, 30),
        (b"PK\x01\x02", 24, 28, 46),
    ):
        start = 0
        while (start := patched.find(signature, start)) != -1:
            name_len = struct.unpack_from("<H", patched, start + length_offset)[0]
            if patched[start + name_offset : start + name_offset + name_len] == target:
                struct.pack_into("<I", patched, start + size_offset, claimed)
            start += 4
    return bytes(patched)


def main() -> None:
    FILES.mkdir(exist_ok=True)
    for old in FILES.iterdir():
        old.unlink()
    rng = random.Random(42)
    ok2 = "username,email\nann,ann@example.com\nbob,bob@example.com\n"

    # ---- empty, header-only, junk, encodings
    case("empty.csv", b"", "file", "The file is empty.")
    case("header_only.csv", b"username,email\n", "file", "The file has a header but no rows.")
    case("blank_lines.csv", b"\n\n\r\n\n", "file", "The file has no header row.")
    case("binary_junk.csv", bytes(rng.randrange(256) for _ in range(4096)), "file", "NUL bytes")
    junk = bytes(rng.randrange(128, 256) for _ in range(2048))
    case("binary_no_nul.dat", junk, "file", "not text in an encoding we could recognize")
    case("nul_bytes.csv", b"username,email\nann\x00,a@example.com\n", "file", "NUL bytes")
    # what Excel writes on Windows: read, with the report saying which encoding it used
    case("utf16_bom.csv", ok2.encode("utf-16"), "ok", valid=2, encoding="UTF-16")
    case("utf16le_no_bom.csv", ok2.encode("utf-16-le"), "ok", valid=2, encoding="UTF-16")
    case("utf16be_no_bom.csv", ok2.encode("utf-16-be"), "ok", valid=2, encoding="UTF-16")
    case("utf32.csv", ok2.encode("utf-32"), "ok", valid=2, encoding="UTF-32")
    case(
        "latin1.csv",
        "username,first_name\njose,José\n".encode("latin-1"),
        "ok",
        valid=1,
        encoding="Windows-1252",
    )
    case(
        "utf8_broken.csv",
        "username,first_name\nzoe,Zoë\n".encode() + b"jose,Jos\xe9\n",
        "file",
        "Row 3: The file is not UTF-8 text (byte 37 is invalid)",
    )
    case("png_renamed.csv", b"\x89PNG\r\n\x1a\n" + bytes(64), "file", "NUL bytes")

    # ---- must work: BOM, line endings, quoting, delimiters
    case("utf8_bom.csv", b"\xef\xbb\xbf" + ok2.encode(), "ok", valid=2)
    case("crlf.csv", ok2.replace("\n", "\r\n").encode(), "ok", valid=2)
    case("lone_cr.csv", ok2.replace("\n", "\r").encode(), "ok", valid=2)
    case("mixed_endings.csv", b"username,email\r\nann,ann@example.com\rbob,bob@example.com\n", "ok", valid=2)
    case(
        "quoted_multiline.csv",
        b'username,first_name,last_name\nann,"Ann, ""the first""","Smith\nJones"\r\nbob,"a;b\tc","x\r\ny"\n',
        "ok",
        valid=2,
    )
    case("semicolon.csv", ok2.replace(",", ";").encode(), "ok", valid=2)
    case("tab_in_csv.csv", ok2.replace(",", "\t").encode(), "ok", valid=2)
    case("tab.tsv", ok2.replace(",", "\t").encode(), "ok", valid=2)
    case("excel_sep_line.csv", b"sep=;\n" + ok2.replace(",", ";").encode(), "ok", valid=2)
    case("trailing_empty_columns.csv", b"username,email,,\nann,ann@example.com,,\n", "ok", valid=1)
    case("blank_rows_between.csv", b"username\n\nann\n,\n\nbob\n", "ok", valid=2)
    case("no_final_newline.csv", b"username\nann\nbob", "ok", valid=2)
    case("traversal.csv", ok2.encode(), "ok", valid=2, upload_name="../../etc/passwd.csv")
    case("windows_path.csv", ok2.encode(), "ok", valid=2, upload_name="C:\\Users\\x\\..\\users.csv")
    case("no_extension", ok2.encode(), "ok", valid=2, upload_name="upload")
    case(
        "header_spelling.csv",
        b" User Name ,E-mail,First Name\nann,a@example.com,Ann\n",
        "file",
        "Unknown column: 'user_name'",  # E-mail is read as email, an alias; user_name is mapped by staff
    )
    case("header_variants.csv", b" Username ,EMAIL,First-Name\nann,a@example.com,Ann\n", "ok", valid=1)

    # ---- broken CSV structure
    case(
        "unterminated_quote.csv",
        b'username,first_name\nann,"Ann\nbob,Bob\n',
        "file",
        "Row 2: A quoted value is never closed",
    )
    case(
        "stray_quote.csv",
        b'username,first_name\nann,"Ann"x\n',
        "file",
        "Row 2: A quoted value is followed by more text",
    )
    case(
        "too_many_cells.csv",
        b"username,email\nann,a@example.com,extra,more\n",
        "row",
        "has 4 values but the header has 2 columns",
        row=2,
        column="__all__",
    )
    case("fewer_cells.csv", b"username,email,first_name\nann\n", "ok", valid=1)

    # ---- headers
    case(
        "duplicate_headers.csv",
        b"username,email,Email\nann,a@example.com,b@example.com\n",
        "file",
        "The column “email” appears twice",
    )
    case(
        "blank_header.csv",
        b"username,,email\nann,x,a@example.com\n",
        "file",
        "Row 1: Column 2 has no header.",
    )
    case(
        "unknown_header.csv",
        b"username,shoe_size\nann,42\n",
        "file",
        "Unknown column: 'shoe_size'. Allowed columns: username",
    )
    case(
        "missing_required.csv",
        b"email\nann@example.com\n",
        "file",
        "Required column missing from the header: username",
    )
    wide = ",".join(f"c{i}" for i in range(3000)).encode()
    case(
        "thousands_of_columns.csv",
        wide + b"\n" + b"x," * 2999 + b"x\n",
        "file",
        "The header has 3,000 columns; at most 50",
    )
    case(
        "header_script.csv",
        b"<script>alert(1)</script>\nx\n",
        "file",
        "Unknown column: '<script>alert(1)</script>'",
    )

    # ---- limits (settings applied by the test)
    rows = "username\n" + "".join(f"user{i}\n" for i in range(6))
    case(
        "too_many_rows.csv",
        rows.encode(),
        "file",
        "Row 5: The file has more than 3 rows, the limit.",
        settings={"MAX_ROWS": 3},
    )
    case("too_big.csv", ok2.encode(), "file", "bytes; the limit is 40.", settings={"MAX_UPLOAD_BYTES": 40})
    case(
        "long_value.csv",
        b"username,first_name\nann," + b"x" * 151 + b"\n",
        "row",
        "The value is 151 characters long; the limit is 150.",
        row=2,
        column="first_name",
        settings={"MAX_FIELD_LENGTH": 150},
    )
    case(
        "long_line.csv",
        b"username\n" + b"x" * 70_000 + b"\n",
        "file",
        "Row 2: The row is longer than",
        settings={"MAX_FIELD_LENGTH": 100, "MAX_COLUMNS": 5},
    )

    # ---- XLSX
    case(
        "valid.xlsx",
        xlsx([["username", "email", "is_active"], ["ann", "ann@example.com", True], ["bob", None, False]]),
        "ok",
        valid=2,
    )
    case(
        "formulas.xlsx",
        xlsx([["username", "first_name"], ["ann", "=1+1"]]),
        "row",
        "Cell B2 holds a formula (=1+1)",
        row=2,
        column="first_name",
    )
    case(
        "formula_header.xlsx",
        xlsx([["username", '=CONCAT("e","mail")'], ["ann", "x"]]),
        "file",
        "Row 1: Cell B1 holds a formula",
    )
    case(
        "zip_bomb.xlsx",
        bomb(None, 30 * 1024 * 1024),
        "file",
        "The workbook unpacks to 31,",
        settings={"MAX_UNCOMPRESSED_BYTES": 10 * 1024 * 1024},
    )
    case("zip_bomb_claims_4gb.xlsx", bomb(0xF0000000, 1000), "file", "The workbook unpacks to 4,026,")
    case("zip_bomb_lies_small.xlsx", bomb(10, 5 * 1024 * 1024), "file", "not a valid XLSX workbook")
    plain = io.BytesIO()
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("readme.txt", "not a workbook")
    case("plain_zip.xlsx", plain.getvalue(), "file", "a zip archive, not an XLSX workbook")
    case("zip_named_csv.csv", plain.getvalue(), "file", "a zip archive, not an XLSX workbook")
    good = xlsx([["username"], ["ann"], ["bob"]])
    case("truncated.xlsx", good[: len(good) // 2], "file", "not a valid XLSX workbook")
    case("text_named_xlsx.xlsx", ok2.encode(), "file", "not a valid XLSX workbook")
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lololololololololol">'
        + b"".join(
            b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
            for i in range(1, 10)
        )
        + b']><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        b'<row r="1"><c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c></row></sheetData></worksheet>'
    )
    case(
        "billion_laughs.xlsx",
        rezip(good, {"xl/worksheets/sheet1.xml": laughs}),
        "file",
        "not a valid XLSX workbook",
    )
    wrong_dimension = rezip(
        xlsx([["username", "email"], ["ann", "ann@example.com"], ["bob", "bob@example.com"]]),
        {},
    )
    with zipfile.ZipFile(io.BytesIO(wrong_dimension)) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml")
    import re

    sheet = re.sub(rb'<dimension ref="[^"]*"/>', b'<dimension ref="A1:A1"/>', sheet)
    case("wrong_dimension.xlsx", rezip(wrong_dimension, {"xl/worksheets/sheet1.xml": sheet}), "ok", valid=2)
    far_row = (
        sheet.replace(b'<row r="3"', b'<row r="9000000"')
        .replace(b'r="A3"', b'r="A9000000"')
        .replace(b'r="B3"', b'r="B9000000"')
    )
    case(
        "far_row.xlsx",
        rezip(wrong_dimension, {"xl/worksheets/sheet1.xml": far_row}),
        "file",
        "the limit (blank rows count too)",
    )
    case("legacy.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), "file", "old Excel (.xls)")
    case("legacy_renamed.csv", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), "file", "old Excel (.xls)")
    case("sheet.ods", plain.getvalue(), "file", "ODS files are not supported")

    # ---- JSON
    case(
        "valid.json",
        b'[{"username": "ann", "groups": []}, {"username": "bob", "is_active": false}]',
        "ok",
        valid=2,
    )
    case("not_array.json", b'{"username": "ann"}', "file", "must be an array of objects")
    case(
        "array_of_scalars.json",
        b'["ann", "bob"]',
        "file",
        "Row 2: The JSON must be an array of objects, one per row; item 1",
    )
    case(
        "nested_object.json",
        b'[{"username": "ann", "email": {"a": 1}}]',
        "row",
        "A value may not be an object",
        row=2,
        column="email",
    )
    case("invalid.json", b'[{"username": "ann",', "file", "The file is not valid JSON")
    case("empty_array.json", b"[]", "file", "The file has no rows.")
    case("deep.json", b"[" * 5000 + b"]" * 5000, "file", "not valid JSON")
    case(
        "json_unknown_key.json",
        b'[{"username": "ann"}, {"username": "bob", "shoe": 1}]',
        "file",
        "Unknown column: 'shoe'",
    )
    case("json_latin1.json", '[{"username": "José"}]'.encode("latin-1"), "file", "not UTF-8 text")
    case("json_nul.json", b'[{"username": "a\\u0000b"}]', "row", "NUL character", row=2, column="username")

    # ---- rows that parse but are invalid users
    case(
        "script_username.csv",
        b"username\n<script>alert(1)</script>\n",
        "row",
        "Enter a valid username",
        row=2,
        column="username",
    )
    case(
        "html_username.csv",
        b'username\n"<b onmouseover=""x"">bob</b>"\n',
        "row",
        "Enter a valid username",
        row=2,
        column="username",
    )
    case(
        "bad_email.csv",
        b"username,email\nann,not-an-email\n",
        "row",
        "Enter a valid email address",
        row=2,
        column="email",
    )
    case(
        "bad_bool.csv",
        b"username,is_active\nann,maybe\n",
        "row",
        "Not a yes/no value; use true or false. Found “maybe”.",
        row=2,
        column="is_active",
    )
    case(
        "duplicate_case.csv",
        b"username\nAnn\nann\n",
        "row",
        "Duplicate of row 2.",
        row=3,
        column="username",
        valid_rows=1,
    )

    (HERE / "cases.json").write_text(json.dumps(CASES, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(CASES)} cases written to {FILES}")


if __name__ == "__main__":
    main()
