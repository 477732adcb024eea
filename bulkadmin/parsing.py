"""Bytes on disk to rows of strings, streamed, with a clear message for every bad file.

Reading is our own rather than django-import-export's formats (which build a whole tablib
Dataset in memory): a file is streamed row by row so memory stays flat, an XLSX is checked for
zip bombs and formulas before a cell is read, and every error names its row and column.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, BinaryIO

from bulkadmin import conf

FORMATS = ("csv", "tsv", "xlsx", "json")
DELIMITERS = (",", ";", "\t")
_SNIFF_BYTES = 64 * 1024


class ParseError(Exception):
    """The file cannot be read; ``str()`` is the message staff see."""

    def __init__(self, message: str, *, row: int | None = None, column: str | None = None) -> None:
        where = []
        if row is not None:
            where.append(f"Row {row}")
        if column is not None:
            where.append(f"column “{column}”")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.row = row
        self.column = column


def normalize_header(header: str) -> str:
    """``" First Name "`` and ``first-name`` both mean ``first_name``."""
    return re.sub(r"[\s\-]+", "_", header.strip().casefold())


@dataclass
class Table:
    """A file's headers and a one-shot iterator of ``(row number, {header: cell})``.

    Row numbers are the spreadsheet's: the header is row 1. Blank rows are skipped but counted.
    """

    format: str
    headers: list[str]
    rows: Iterator[tuple[int, dict[str, str]]]


def detect_format(name: str, head: bytes) -> str:
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix in ("csv", "txt"):
        return "csv"
    if suffix in ("tsv", "tab"):
        return "tsv"
    if suffix in ("xlsx", "json"):
        return suffix
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.lstrip()[:1] in (b"[", b"{"):
        return "json"
    if suffix in ("xls", "ods", "numbers"):
        raise ParseError(f"{suffix.upper()} files are not supported; save the sheet as XLSX or CSV.")
    return "csv"


def open_table(path: Path, name: str, allowed_headers: list[str]) -> Table:
    """Open ``path`` (uploaded as ``name``) and check its header; rows are read lazily."""
    size = path.stat().st_size
    limit = int(conf.get("MAX_UPLOAD_BYTES"))
    if size > limit:
        raise ParseError(f"The file is {size:,} bytes; the limit is {limit:,}.")
    if size == 0:
        raise ParseError("The file is empty.")
    with path.open("rb") as probe:
        head = probe.read(_SNIFF_BYTES)
    fmt = detect_format(name, head)
    if fmt == "xlsx":
        headers, raw_rows = _xlsx_rows(path)
    elif fmt == "json":
        headers, raw_rows = _json_rows(path)
    else:
        headers, raw_rows = _csv_rows(path, head, "\t" if fmt == "tsv" else None)
    headers = _check_headers(headers, allowed_headers)
    return Table(format=fmt, headers=headers, rows=_as_dicts(headers, raw_rows))


def _check_headers(raw: list[str], allowed: list[str]) -> list[str]:
    max_columns = int(conf.get("MAX_COLUMNS"))
    if len(raw) > max_columns:
        raise ParseError(f"The header has {len(raw):,} columns; at most {max_columns} are allowed.")
    headers = [normalize_header(h) for h in raw]
    while headers and headers[-1] == "":
        headers.pop()  # trailing empty header cells, as spreadsheets export them
    if not headers:
        raise ParseError("The file has no header row.")
    seen: set[str] = set()
    for index, header in enumerate(headers, start=1):
        if header == "":
            raise ParseError(f"Column {index} has no header.", row=1)
        if header in seen:
            raise ParseError(f"The column “{header}” appears twice in the header.", row=1)
        seen.add(header)
    unknown = [h for h in headers if h not in allowed]
    if unknown:
        raise ParseError(
            f"Unknown column{'s' if len(unknown) > 1 else ''}: "
            f"{', '.join(repr(u)[:60] for u in unknown[:10])}. Allowed columns: {', '.join(allowed)}.",
            row=1,
        )
    return headers


def _as_dicts(
    headers: list[str], raw_rows: Iterator[tuple[int, list[str]]]
) -> Iterator[tuple[int, dict[str, str]]]:
    max_rows = int(conf.get("MAX_ROWS"))
    max_length = int(conf.get("MAX_FIELD_LENGTH"))
    width = len(headers)
    count = 0
    for number, cells in raw_rows:
        if not any(cell.strip() for cell in cells):
            continue
        extra = cells[width:]
        if any(cell.strip() for cell in extra):
            raise ParseError(
                f"This row has {len(cells)} values but the header has {width} columns.", row=number
            )
        count += 1
        if count > max_rows:
            raise ParseError(f"The file has more than {max_rows:,} rows, the limit.", row=number)
        row: dict[str, str] = {}
        for header, cell in zip(headers, cells, strict=False):
            if len(cell) > max_length:
                raise ParseError(
                    f"The value is {len(cell):,} characters long; the limit is {max_length:,}.",
                    row=number,
                    column=header,
                )
            if "\x00" in cell:
                raise ParseError("The value contains a NUL byte.", row=number, column=header)
            row[header] = cell
        for header in headers[len(cells) :]:
            row[header] = ""
        yield number, row


# ---- CSV and TSV ---------------------------------------------------------------------------
def _check_encoding(head: bytes) -> None:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (
        len(head) > 3 and head[1:2] == b"\x00" and head[3:4] == b"\x00"
    ):
        raise ParseError("The file is UTF-16 text; save it as UTF-8 (“CSV UTF-8” in Excel).")
    if b"\x00" in head:
        raise ParseError("The file contains NUL bytes; it is not a text file.")


def _sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def _csv_rows(
    path: Path, head: bytes, delimiter: str | None
) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    _check_encoding(head)
    try:
        head_text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a character cut by the sniff window
            raise _not_utf8(head, exc.start) from exc
        head_text = head[: exc.start].decode("utf-8-sig")
    first_line = re.split(r"\r\n|\r|\n", head_text, maxsplit=1)[0]
    chosen = delimiter or _sniff_delimiter(first_line)

    handle = path.open("rb")
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, delimiter=chosen, strict=True)
    try:
        headers = next(reader)
    except StopIteration:
        handle.close()
        raise ParseError("The file has no header row.") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        handle.close()
        raise _csv_error(exc, 1, head) from exc

    def rows() -> Iterator[tuple[int, list[str]]]:
        number = 1
        try:
            while True:
                number += 1
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except (csv.Error, UnicodeDecodeError) as exc:
                    raise _csv_error(exc, number, head) from exc
                yield number, cells
        finally:
            handle.close()

    return headers, rows()


def _not_utf8(data: bytes, offset: int) -> ParseError:
    return ParseError(
        f"The file is not UTF-8 text (byte {offset:,} is invalid). "
        "Save it as UTF-8 (“CSV UTF-8” in Excel) and upload it again."
    )


def _csv_error(exc: Exception, number: int, head: bytes) -> ParseError:
    if isinstance(exc, UnicodeDecodeError):
        return ParseError(
            "The file is not UTF-8 text from this row on. "
            "Save it as UTF-8 (“CSV UTF-8” in Excel) and upload it again.",
            row=number,
        )
    message = str(exc)
    if "field larger than field limit" in message:
        return ParseError("A value is far longer than any field allows.", row=number)
    if "NUL" in message or "null byte" in message:
        return ParseError("The row contains a NUL byte; the file is not plain text.", row=number)
    if "unexpected end of data" in message or "EOF" in message:
        return ParseError("A quoted value is never closed (a missing '\"').", row=number)
    return ParseError(f"The row is not valid CSV ({message}).", row=number)


# ---- XLSX ----------------------------------------------------------------------------------
def _check_zip(path: Path) -> None:
    limit = int(conf.get("MAX_UNCOMPRESSED_BYTES"))
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            total = sum(info.file_size for info in infos)
            names = {info.filename for info in infos}
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ParseError("The file is not a valid XLSX workbook.") from exc
    if "[Content_Types].xml" not in names:
        raise ParseError("The file is a zip archive, not an XLSX workbook.")
    if total > limit:
        raise ParseError(
            f"The workbook unpacks to {total:,} bytes; the limit is {limit:,}. Save it as CSV instead."
        )


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def _xlsx_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    import openpyxl  # imported here: only XLSX uploads pay for it
    from openpyxl.utils import get_column_letter

    _check_zip(path)
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises many types for a broken workbook
        raise ParseError("The file is not a valid XLSX workbook.") from exc
    sheet = workbook.worksheets[0] if workbook.worksheets else None
    if sheet is None:
        workbook.close()
        raise ParseError("The workbook has no sheets.")
    cells_iter = sheet.iter_rows()

    def texts(number: int, cells: tuple[Any, ...]) -> list[str]:
        out = []
        for index, cell in enumerate(cells, start=1):
            if getattr(cell, "data_type", None) == "f":
                raise ParseError(
                    f"Cell {get_column_letter(index)}{number} holds a formula; "
                    "paste values only and upload again.",
                    row=number,
                )
            out.append(_cell_text(getattr(cell, "value", None)))
        return out

    try:
        first = next(cells_iter, None)
        if first is None:
            raise ParseError("The file has no header row.")
        headers = texts(1, first)
    except ParseError:
        workbook.close()
        raise

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for number, cells in enumerate(cells_iter, start=2):
                yield number, texts(number, cells)
        except ParseError:
            raise
        except Exception as exc:
            raise ParseError("The workbook is damaged and cannot be read.") from exc
        finally:
            workbook.close()

    return headers, rows()


# ---- JSON ----------------------------------------------------------------------------------
def _json_cell(value: Any, number: int, key: str) -> str:
    if isinstance(value, list):
        return ";".join(_json_cell(v, number, key) for v in value)
    if isinstance(value, dict):
        raise ParseError("A value may not be an object.", row=number, column=key)
    return _cell_text(value)


def _json_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """A JSON array of objects, one per row; the first object's keys are the header."""
    try:
        with path.open("rb") as handle:
            data = json.load(_utf8(handle))
    except UnicodeDecodeError as exc:
        raise _not_utf8(b"", exc.start) from exc
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"The file is not valid JSON ({str(exc)[:120]}).") from exc
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ParseError("The JSON must be an array of objects, one per row.")
    if not data:
        raise ParseError("The file has no rows.")
    headers = [str(k) for k in data[0]]

    def rows() -> Iterator[tuple[int, list[str]]]:
        for number, item in enumerate(data, start=2):
            extra = [str(k) for k in item if str(k) not in headers]
            if extra:
                raise ParseError(f"Unknown key “{extra[0][:60]}”.", row=number)
            yield number, [_json_cell(item.get(h), number, h) for h in headers]

    return headers, rows()


def _utf8(handle: BinaryIO) -> io.TextIOWrapper:
    return io.TextIOWrapper(handle, encoding="utf-8-sig")
