"""Hostile files too big to keep in tests/corpus, made when a test asks for them.

Each reproduces what an attack on a running server found (issue 16): a workbook whose
shared-strings table unpacks to 195 MiB, one string of 150 MiB, a styles part of 100 MiB,
JSON with keys by the million or millions of empty objects, 50 MiB of blank lines.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"


def workbook(
    path: Path,
    strings: Iterable[bytes],
    rows: list[list[int]],
    *,
    extra_parts: dict[str, bytes] | None = None,
) -> Path:
    """An XLSX workbook whose cells are all shared strings: ``rows`` holds their indexes, and
    the table's ``<si>`` elements are streamed from ``strings``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.sheet.main+xml"/>'
            f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_CT}.worksheet+xml"/>'
            f'<Override PartName="/xl/sharedStrings.xml" ContentType="{_CT}.sharedStrings+xml"/>'
            "</Types>",
        )
        archive.writestr(
            "_rels/.rels",
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_RELS}">'
            f'<Relationship Id="rId1" Type="{_DOC}/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>",
        )
        archive.writestr(
            "xl/workbook.xml",
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{_MAIN}" xmlns:r="{_DOC}">'
            '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        archive.writestr(
            "xl/_rels/workbook.xml.rels",
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_RELS}">'
            f'<Relationship Id="rId1" Type="{_DOC}/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{_DOC}/sharedStrings" Target="sharedStrings.xml"/>'
            "</Relationships>",
        )
        with archive.open("xl/sharedStrings.xml", "w", force_zip64=True) as table:
            table.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<sst xmlns="{_MAIN}">'.encode())
            for part in strings:
                table.write(part)
            table.write(b"</sst>")
        cells = "".join(
            f'<row r="{number}">'
            + "".join(f'<c r="{chr(65 + i)}{number}" t="s"><v>{index}</v></c>' for i, index in enumerate(row))
            + "</row>"
            for number, row in enumerate(rows, start=1)
        )
        archive.writestr(
            "xl/worksheets/sheet1.xml",
            f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{_MAIN}">'
            f"<sheetData>{cells}</sheetData></worksheet>",
        )
        for name, content in (extra_parts or {}).items():
            archive.writestr(name, content)
    return path


def _numbered(count: int, batch: int = 100_000) -> Iterable[bytes]:
    for start in range(0, count, batch):
        yield b"".join(b"<si><t>s%08d</t></si>" % i for i in range(start, min(count, start + batch)))


def shared_strings_bomb(path: Path) -> Path:
    """21 MiB whose table unpacks to 195 MiB: 7.8 million strings; the last row uses the last."""
    count = 7_800_000
    header = [b"<si><t>username</t></si><si><t>email</t></si><si><t>ann</t></si>"]
    return workbook(path, [*header, *_numbered(count)], [[0, 1], [2, count + 2]])


def one_huge_string(path: Path) -> Path:
    """A table of one string of 150 MiB, in an email cell."""
    huge = (b"a" * (1 << 20) for _ in range(150))
    return workbook(
        path,
        [b"<si><t>username</t></si><si><t>email</t></si><si><t>ann</t></si><si><t>", *huge, b"</t></si>"],
        [[0, 1], [2, 3]],
    )


def styles_bomb(path: Path) -> Path:
    """A styles part of 100 MiB, which openpyxl would parse whole."""
    styles = f'<styleSheet xmlns="{_MAIN}"><!--'.encode() + b" " * (100 << 20) + b"--></styleSheet>"
    return workbook(
        path,
        [b"<si><t>username</t></si><si><t>ann</t></si>"],
        [[0], [1]],
        extra_parts={"xl/styles.xml": styles},
    )


def _written(path: Path, *parts: bytes | Iterable[bytes]) -> Path:
    with path.open("wb") as handle:
        for part in parts:
            handle.writelines([part] if isinstance(part, bytes) else part)
    return path


def json_keys_in_one_row(path: Path) -> Path:
    """One object with three million distinct keys (40 MiB)."""
    keys = (b"".join(b',"k%07d":1' % i for i in range(s, s + 100_000)) for s in range(0, 3_000_000, 100_000))
    return _written(path, b'[{"username": "ann"', keys, b"}]")


def json_keys_across_rows(path: Path) -> Path:
    """A million rows, each with a key no other row has."""
    rows = b",".join(b'{"username":"u%d","k%d":1}' % (i, i) for i in range(1_000_000))
    return _written(path, b"[", rows, b"]")


def json_empty_objects(path: Path) -> Path:
    """Sixteen million ``{}``: 48 MB of rows with nothing in them."""
    return _written(path, b'[{"username": "ann"}', (b",{}" * 1_000_000 for _ in range(16)), b"]")


def blank_lines(path: Path) -> Path:
    """A header, then 48 MiB of empty lines."""
    return _written(path, b"username,email\n", (b"\n" * (1 << 20) for _ in range(48)))


#: Each file, how it is made, and what its refusal says (in the admin and in bulkimport).
FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "shared_strings_bomb.xlsx": (shared_strings_bomb, "Enter a valid email address."),
    "one_huge_string.xlsx": (one_huge_string, "The value is longer than 1,000 characters, the limit."),
    "styles_bomb.xlsx": (styles_bomb, "The workbook's part xl/styles.xml unpacks to 104,857,"),
    "keys_in_one_row.json": (json_keys_in_one_row, "Item 1 takes the keys past 50, the column limit."),
    "keys_across_rows.json": (json_keys_across_rows, "Item 50 takes the keys past 50, the column limit."),
    "empty_objects.json": (json_empty_objects, "more than 1,000,000 rows, the limit (blank rows count too)"),
    "blank_lines.csv": (blank_lines, "more than 1,000,000 rows, the limit (blank rows count too)"),
}
