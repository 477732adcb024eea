"""Bytes on disk to rows of strings, streamed, with a clear message for every bad file.

Reading is our own rather than django-import-export's formats (which build a whole tablib
Dataset in memory): a file is streamed row by row so memory stays flat, an XLSX is checked for
zip bombs before a cell is read, and every error names its row and column.

Two kinds of problem: a ``ParseError`` means the file as a whole cannot be read (wrong
encoding, an unclosed quote, a bad header, too many rows); a problem confined to one row (too
many values, a value too long, a formula) travels with that row as ``RawRow.errors`` so staff
see every bad row at once instead of only the first.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, NamedTuple

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext

from bulkadmin import conf, decoding, fixit, sealed_files

FORMATS = ("csv", "tsv", "xlsx", "json")
DELIMITERS = (",", ";", "\t")
NON_FIELD = "__all__"  # the same key as bulkadmin.importers.base.NON_FIELD
_SNIFF_BYTES = 64 * 1024
_READ_BYTES = 64 * 1024
#: Excel's own limits: a sheet claiming more rows is hostile, not large.
_XLSX_MAX_ROWS = 1_048_576
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

Errors = dict[str, list[str]]
#: Blank rows a file may have beyond MAX_ROWS (spreadsheets pad their end with some).
BLANK_ROWS_ALLOWANCE = 10_000


class ParseError(Exception):
    """The file cannot be read; ``str()`` is the message staff see."""

    def __init__(self, message: str, *, row: int | None = None, column: str | None = None) -> None:
        if row is not None and column is not None:
            text = _("Row %(row)s, column “%(column)s”: %(message)s") % {
                "row": row,
                "column": column,
                "message": message,
            }
        elif row is not None:
            text = _("Row %(row)s: %(message)s") % {"row": row, "message": message}
        elif column is not None:
            text = _("column “%(column)s”: %(message)s") % {"column": column, "message": message}
        else:
            text = message
        super().__init__(text)
        self.message = message
        self.row = row
        self.column = column


class RawRow(NamedTuple):
    """One non-blank row: its spreadsheet number, values by header, and problems by column;
    in a fix-it file (``bulkadmin.fixit``), the failed row it was downloaded from."""

    number: int
    values: dict[str, str]
    errors: Errors
    source: fixit.Source | None = None


def normalize_header(header: str) -> str:
    """``" First Name "`` and ``first-name`` both mean ``first_name``."""
    return re.sub(r"[\s\-]+", "_", header.strip().casefold())


@dataclass
class Table:
    """A file's headers and a one-shot iterator of rows; close it (or use ``with``).

    Row numbers are the spreadsheet's: the header is row 1. Blank rows are skipped but counted.
    """

    format: str
    headers: list[str]
    rows: Iterator[RawRow]
    _close: Callable[[], None] = field(default=lambda: None, repr=False)
    #: The encoding a text file was read from, when it was not UTF-8 ("Windows-1252").
    encoding: str = ""

    def close(self) -> None:
        """Release the file even when the rows were not read to the end."""
        self._close()

    def __enter__(self) -> Table:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# A reader returns the raw header cells, an iterator of (number, cells, errors), and a closer.
_Raw = tuple[list[str], Iterator[tuple[int, list[str], Errors]], Callable[[], None]]


def detect_format(name: str, head: bytes) -> str:
    """The format by content first (a renamed workbook is still a workbook), then by name.

    ``name`` is display-only: nothing but its suffix is used, never as a path.
    """
    suffix = Path(name.replace("\\", "/")).suffix.lower().lstrip(".")
    if head.startswith(_OLE2_MAGIC):
        raise ParseError(
            _(
                "The file is an old Excel (.xls) workbook or a password-protected one; "
                "save the sheet as XLSX or CSV without a password."
            )
        )
    if suffix in ("xls", "ods", "numbers"):
        raise ParseError(
            _("%(format)s files are not supported; save the sheet as XLSX or CSV.")
            % {"format": suffix.upper()}
        )
    if head.startswith(b"PK\x03\x04") or suffix == "xlsx":
        return "xlsx"
    if suffix in ("csv", "txt"):
        return "csv"
    if suffix in ("tsv", "tab"):
        return "tsv"
    if suffix == "json" or head.lstrip(codecs.BOM_UTF8 + b" \t\r\n")[:1] in (b"[", b"{"):
        return "json"
    return "csv"


class HeaderMismatch(ParseError):
    """The header's columns are not the importer's: staff may map them (``ColumnMap``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, row=1)


#: A file column (normalized) to an importer's column, or to None: ignored.
ColumnMap = dict[str, str | None]


def _open(path: Path) -> BinaryIO:
    """A file's bytes, unsealed if it was sealed at rest (a waiting upload)."""
    try:
        return sealed_files.open_read(path)
    except sealed_files.SealBroken as exc:
        raise ParseError(
            _(
                "The uploaded file cannot be read back: it was changed on disk, or the secret key "
                "changed since. Upload it again."
            )
        ) from exc


def _open_raw(path: Path, name: str) -> tuple[str, _Raw, str]:
    """The file's format, its raw header and rows, and the encoding a text file was read from
    when it was not UTF-8 ("" otherwise)."""
    size = sealed_files.plain_size(path)
    limit = int(conf.get("MAX_UPLOAD_BYTES"))
    if size > limit:
        raise ParseError(
            _("The file is %(size)s bytes; the limit is %(limit)s.")
            % {"size": f"{size:,}", "limit": f"{limit:,}"}
        )
    if size == 0:
        raise ParseError(_("The file is empty."))
    with _open(path) as probe:
        head = probe.read(_SNIFF_BYTES)
    fmt = detect_format(name, head)
    if fmt == "xlsx":
        return fmt, _xlsx_rows(path), ""
    if fmt == "json":
        return fmt, _json_rows(path), ""
    try:
        text = decoding.as_utf8(path, head)
    except decoding.NotText as exc:
        raise ParseError(str(exc)) from exc
    if text.path != path:
        with _open(text.path) as probe:
            head = probe.read(_SNIFF_BYTES)
    try:
        headers, rows, close = _csv_rows(text.path, head, "\t" if fmt == "tsv" else None)
    except BaseException:
        text.close()
        raise

    def close_both() -> None:
        close()
        text.close()

    return fmt, (headers, rows, close_both), text.encoding


def open_table(path: Path, name: str, allowed_headers: list[str], mapping: ColumnMap | None = None) -> Table:
    """Open ``path`` (uploaded as ``name``) and check its header; rows are read lazily.

    ``mapping`` renames the file's columns to the importer's, or drops them (None).
    """
    fmt, (raw_headers, raw_rows, close), encoding = _open_raw(path, name)
    try:
        headers = _check_headers(raw_headers, allowed_headers, mapping or {})
    except BaseException:
        close()
        raise
    fix_it = [h for h in headers if h in fixit.bookkeeping(allowed_headers)]
    rows = _as_dicts(headers, raw_rows, fix_it=fix_it)
    shown = [h for h in headers if h is not None and h not in fix_it]
    return Table(format=fmt, headers=shown, rows=rows, _close=close, encoding=encoding)


class Sample(NamedTuple):
    """A file's header as normalized and as written, and its first rows, unchecked."""

    headers: list[str]
    written: list[str]
    rows: list[list[str]]


def peek(path: Path, name: str, count: int = 3) -> Sample:
    """The file's header and its first ``count`` non-blank rows, for the mapping step."""
    _fmt, (raw_headers, raw_rows, close), _encoding = _open_raw(path, name)
    try:
        headers = [normalize_header(h) for h in raw_headers]
        while headers and headers[-1] == "":
            headers.pop()
        written = [h.strip() for h in raw_headers[: len(headers)]]
        samples: list[list[str]] = []
        for _number, cells, _errors in raw_rows:
            if any(cell.strip() for cell in cells):
                samples.append([cell[:60] for cell in cells[: len(headers)]])
            if len(samples) >= count:
                break
        return Sample(headers, written, samples)
    finally:
        close()


def _check_headers(raw: list[str], allowed: list[str], mapping: ColumnMap) -> list[str | None]:
    """The columns the rows' cells go to, in order; None for a column mapped to nothing."""
    headers = [normalize_header(h) for h in raw]
    while headers and headers[-1] == "":
        headers.pop()  # trailing empty header cells, as spreadsheets export them
    if not headers:
        raise ParseError(_("The file has no header row."))
    max_columns = int(conf.get("MAX_COLUMNS"))
    if len(headers) > max_columns:
        raise ParseError(
            _("The header has %(count)s columns; at most %(limit)s are allowed.")
            % {"count": f"{len(headers):,}", "limit": max_columns}
        )
    seen: set[str] = set()
    for index, header in enumerate(headers, start=1):
        if header == "":
            raise ParseError(_("Column %(index)s has no header.") % {"index": index}, row=1)
        if header in seen:
            raise ParseError(
                _("The column “%(column)s” appears twice in the header.") % {"column": header[:60]}, row=1
            )
        seen.add(header)
    mapped = [mapping.get(h, h) for h in headers]
    targets = [m for m in mapped if m is not None]
    twice = sorted({m for m in targets if targets.count(m) > 1})
    if twice:
        raise HeaderMismatch(_("Two columns of the file go to “%(column)s”.") % {"column": twice[0]})
    known = {*allowed, *fixit.COLUMNS}
    unknown = [h for h, m in zip(headers, mapped, strict=True) if m is not None and m not in known]
    if unknown:
        raise HeaderMismatch(
            ngettext(
                "Unknown column: %(columns)s. Allowed columns: %(allowed)s.",
                "Unknown columns: %(columns)s. Allowed columns: %(allowed)s.",
                len(unknown),
            )
            % {"columns": ", ".join(repr(u[:60]) for u in unknown[:10]), "allowed": ", ".join(allowed)}
        )
    return mapped


def _as_dicts(
    headers: list[str | None],
    raw_rows: Iterator[tuple[int, list[str], Errors]],
    *,
    fix_it: list[str] | None = None,
) -> Iterator[RawRow]:
    """Rows as dicts; in a fix-it file, without its own columns and with formulas unescaped."""
    max_rows = int(conf.get("MAX_ROWS"))
    max_length = int(conf.get("MAX_FIELD_LENGTH"))
    width = len(headers)
    count = 0
    # Blank rows are skipped, but not for free: past MAX_ROWS lines of any kind the file is
    # refused, so 50 MiB of empty lines cannot burn a minute of CPU before counting as rows.
    scanned = 0
    for number, cells, found in raw_rows:
        scanned += 1
        if scanned > max_rows + BLANK_ROWS_ALLOWANCE:
            raise ParseError(
                _("The file has more than %(limit)s rows, the limit (blank rows count too).")
                % {"limit": f"{max_rows:,}"},
                row=number,
            )
        if not found and (not any(cell.strip() for cell in cells) or fixit.is_template_row(cells)):
            continue
        count += 1
        if count > max_rows:
            raise ParseError(
                _("The file has more than %(limit)s rows, the limit.") % {"limit": f"{max_rows:,}"},
                row=number,
            )
        errors: Errors = {key: list(messages) for key, messages in found.items()}
        extra = sum(1 for cell in cells[width:] if cell.strip())
        if extra:
            errors.setdefault(NON_FIELD, []).append(
                _(
                    "This row has %(values)s values but the header has %(columns)s columns "
                    "(is a value containing the delimiter missing its quotes?)."
                )
                % {"values": width + extra, "columns": width}
            )
        row: dict[str, str] = {}
        for header, cell in zip(headers, cells, strict=False):
            if header is None:
                continue  # a column mapped to nothing
            if len(cell) > max_length:
                errors.setdefault(header, []).append(
                    _("The value is %(length)s characters long; the limit is %(limit)s.")
                    % {"length": f"{len(cell):,}", "limit": f"{max_length:,}"}
                )
                cell = cell[:max_length]
            if "\x00" in cell:
                errors.setdefault(header, []).append(_("The value contains a NUL character."))
                cell = cell.replace("\x00", "")
            row[header] = cell
        for missing in headers[len(cells) :]:
            if missing is not None:
                row[missing] = ""
        if fix_it:
            source = fixit.source_of(row, fix_it)
            yield RawRow(number, {k: fixit.unescape_formula(v) for k, v in row.items()}, errors, source)
        else:
            yield RawRow(number, row, errors)


# ---- CSV and TSV ---------------------------------------------------------------------------
def _sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


class _BadLine(Exception):
    """Raised from inside the line iterator; the CSV reader passes it through untouched."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _max_line_bytes() -> int:
    """The longest physical line a valid row can have: every cell at full length, quoted."""
    columns = int(conf.get("MAX_COLUMNS"))
    length = int(conf.get("MAX_FIELD_LENGTH"))
    return max(_SNIFF_BYTES, 4 * (columns + 1) * (2 * length + 3))


def _row_too_long(max_line: int) -> str:
    return _(
        "The row is longer than %(limit)s bytes; a value is far longer than any field "
        "allows (or a quote '\"' is never closed)."
    ) % {"limit": f"{max_line:,}"}


def _not_utf8(byte: int) -> str:
    return _(
        "The file is not UTF-8 text (byte %(byte)s is invalid). "
        "Save it as UTF-8 (“CSV UTF-8” in Excel) and upload it again."
    ) % {"byte": f"{byte:,}"}


def _text_lines(handle: BinaryIO, max_line: int) -> Iterator[str]:
    """Decode ``handle`` line by line, as ``newline=""`` would split it, with bounded memory.

    Decoding one line at a time (rather than through ``TextIOWrapper``'s 8 KB chunks) lets an
    invalid byte be blamed on the row that holds it; ``\\r`` and ``\\n`` never occur inside a
    UTF-8 sequence, so splitting the bytes first is safe.
    """
    offset = 0
    pending = b""
    first = True
    while True:
        chunk = handle.readline(_READ_BYTES)
        data = pending + chunk
        if not data:
            return
        pieces = data.splitlines(keepends=True)
        complete = len(pieces)
        if chunk and not data.endswith((b"\n", b"\r\n")):
            complete -= 1  # the last piece may continue (even "\r", which may precede "\n")
        pending = pieces[complete] if complete < len(pieces) else b""
        if len(pending) > max_line:
            raise _BadLine(_row_too_long(max_line))
        for piece in pieces[:complete]:
            if first:
                first = False
                if piece.startswith(codecs.BOM_UTF8):
                    piece = piece[len(codecs.BOM_UTF8) :]
                    offset += len(codecs.BOM_UTF8)
            if len(piece) > max_line:
                raise _BadLine(_row_too_long(max_line))
            try:
                yield piece.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _BadLine(_not_utf8(offset + exc.start)) from exc
            offset += len(piece)
        if not chunk:
            return


def _csv_rows(path: Path, head: bytes, delimiter: str | None) -> _Raw:
    try:
        head_text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a character cut by the sniff window
            raise ParseError(_not_utf8(exc.start)) from exc
        head_text = head[: exc.start].decode("utf-8-sig")
    first_line = re.split(r"\r\n|\r|\n", head_text, maxsplit=1)[0]
    sep_line = re.fullmatch(r"sep=(.)", first_line)  # Excel's delimiter hint
    chosen = delimiter or (sep_line.group(1) if sep_line else _sniff_delimiter(first_line))

    handle = _open(path)
    lines = _text_lines(handle, _max_line_bytes())
    if sep_line:
        next(lines, None)
    reader = csv.reader(lines, delimiter=chosen, strict=True)
    try:
        headers = next(reader)
    except StopIteration:
        handle.close()
        raise ParseError(_("The file has no header row.")) from None
    except (csv.Error, _BadLine) as exc:
        handle.close()
        raise _csv_error(exc, 1) from exc
    except BaseException:
        handle.close()
        raise

    def rows() -> Iterator[tuple[int, list[str], Errors]]:
        number = 1
        try:
            while True:
                number += 1
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except (csv.Error, _BadLine) as exc:
                    raise _csv_error(exc, number) from exc
                yield number, cells, {}
        finally:
            handle.close()

    return headers, rows(), handle.close


def _csv_error(exc: Exception, number: int) -> ParseError:
    if isinstance(exc, _BadLine):
        return ParseError(exc.message, row=number)
    message = str(exc)
    if "field larger than field limit" in message:
        return ParseError(
            _("A value is far longer than any field allows (or a quote '\"' is never closed)."), row=number
        )
    if "unexpected end of data" in message or "EOF" in message:
        return ParseError(_("A quoted value is never closed (a missing '\"')."), row=number)
    if "expected after" in message:
        return ParseError(
            _(
                "A quoted value is followed by more text before the delimiter; "
                'write a quote inside a quoted value as two quotes ("").'
            ),
            row=number,
        )
    return ParseError(_("The row is not valid CSV (%(error)s).") % {"error": message}, row=number)


# ---- XLSX ----------------------------------------------------------------------------------
def _check_zip(path: Path) -> None:
    """Refuse a zip bomb by the sizes its directory declares (reading stops at those sizes)."""
    limit = int(conf.get("MAX_UNCOMPRESSED_BYTES"))
    try:
        with _open(path) as handle, zipfile.ZipFile(handle) as archive:
            infos = archive.infolist()
            total = sum(info.file_size for info in infos)
            names = {info.filename for info in infos}
            whole = [
                info for info in infos if _read_whole(info.filename) and info.file_size > _WHOLE_PART_LIMIT
            ]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        raise ParseError(_("The file is not a valid XLSX workbook (the zip archive is damaged).")) from exc
    if "[Content_Types].xml" not in names:
        raise ParseError(_("The file is a zip archive, not an XLSX workbook."))
    if total > limit:
        raise ParseError(
            _("The workbook unpacks to %(size)s bytes; the limit is %(limit)s. Save it as CSV instead.")
            % {"size": f"{total:,}", "limit": f"{limit:,}"}
        )
    if whole:
        raise ParseError(
            _(
                "The workbook's part %(part)s unpacks to %(size)s bytes; the limit is %(limit)s. "
                "Save it as CSV instead."
            )
            % {
                "part": whole[0].filename[:80],
                "size": f"{whole[0].file_size:,}",
                "limit": f"{_WHOLE_PART_LIMIT:,}",
            }
        )


#: openpyxl parses a workbook's XML parts whole, but for its sheets (streamed) and its shared
#: strings (``xlsx_strings``): a styles part of hundreds of MiB would cost gigabytes.
_WHOLE_PART_LIMIT = 16 * 1024 * 1024


def _read_whole(name: str) -> bool:
    lower = name.lower()
    return (
        lower.endswith((".xml", ".rels"))
        and not lower.startswith("xl/worksheets/")
        and not lower.endswith("sharedstrings.xml")
    )


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Decimal) and value.is_finite():  # JSON's numbers, as written
        if value == value.to_integral_value() and -30 < value.adjusted() < 30:
            return str(int(value))
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value)


def _xlsx_rows(path: Path) -> _Raw:
    from openpyxl.utils import get_column_letter  # imported here: only XLSX uploads pay for it

    from bulkadmin.xlsx_strings import OVERSIZED, BoundedReader

    _check_zip(path)
    # Our own handle: openpyxl leaves the file open when a damaged workbook fails to load.
    handle = _open(path)
    reader: BoundedReader | None = None
    try:
        reader = BoundedReader(handle)
        reader.read()
        workbook = reader.wb
    except Exception as exc:  # openpyxl raises many types for a broken workbook
        if reader is not None:
            reader.close()
        handle.close()
        raise ParseError(_("The file is not a valid XLSX workbook.")) from exc

    def close() -> None:
        workbook.close()
        reader.close()
        handle.close()

    try:
        sheet = workbook.worksheets[0] if workbook.worksheets else None
        if sheet is None:
            raise ParseError(_("The workbook has no sheets."))
        # Read the cells that are there, not the range the file claims: a wrong "dimension"
        # would otherwise silently cut rows or columns off.
        sheet.reset_dimensions()
        # Data rows stop one column past the limit: read-only openpyxl pads every row out to
        # its last cell, so one value in column XFD would make each row 16,384 cells wide
        # (a 6 kB file held a worker for minutes). A value in that column is still reported
        # as one the header has no column for; any further right is not read.
        cells_iter = sheet.iter_rows(min_row=2, max_col=int(conf.get("MAX_COLUMNS")) + 1)

        def texts(number: int, cells: tuple[Any, ...]) -> tuple[list[str], Errors]:
            out: list[str] = []
            errors: Errors = {}
            for index, cell in enumerate(cells, start=1):
                value = getattr(cell, "value", None)
                if getattr(cell, "data_type", None) == "f":
                    errors.setdefault(f"column {get_column_letter(index)}", []).append(
                        _("Cell %(cell)s holds a formula (%(formula)s); paste values only and upload again.")
                        % {"cell": f"{get_column_letter(index)}{number}", "formula": str(value)[:40]}
                    )
                    out.append("")
                    continue
                if value is OVERSIZED:
                    errors.setdefault(f"column {get_column_letter(index)}", []).append(
                        _("The value is longer than %(limit)s characters, the limit.")
                        % {"limit": f"{int(conf.get('MAX_FIELD_LENGTH')):,}"}
                    )
                    out.append("")
                    continue
                out.append(_cell_text(value))
            return out, errors

        first = next(sheet.iter_rows(max_row=1), None)
        if first is None:
            raise ParseError(_("The file has no header row."))
        headers, header_errors = texts(1, first)
        if header_errors:
            raise ParseError(next(iter(header_errors.values()))[0], row=1)
    except ParseError:
        close()
        raise
    except Exception as exc:
        close()
        raise ParseError(_("The workbook is damaged and cannot be read.")) from exc

    def rows() -> Iterator[tuple[int, list[str], Errors]]:
        try:
            for number, cells in enumerate(cells_iter, start=2):
                if number > _XLSX_MAX_ROWS:
                    raise ParseError(_("The sheet claims more rows than Excel allows."), row=number)
                out, errors = texts(number, cells)
                yield number, out, _name_columns(errors, headers)
        except ParseError:
            raise
        except Exception as exc:
            raise ParseError(_("The workbook is damaged and cannot be read.")) from exc
        finally:
            close()

    return headers, rows(), close


def _name_columns(errors: Errors, headers: list[str]) -> Errors:
    """Key formula errors by the column's header, as every other row error is keyed."""
    if not errors:
        return errors
    from openpyxl.utils import column_index_from_string

    named: Errors = {}
    for key, messages in errors.items():
        index = column_index_from_string(key.removeprefix("column "))
        header = normalize_header(headers[index - 1]) if index <= len(headers) else ""
        named.setdefault(header or NON_FIELD, []).extend(messages)
    return named


# ---- JSON ----------------------------------------------------------------------------------
def _json_cell(value: Any) -> str:
    if isinstance(value, list):
        return ";".join(_json_cell(v) for v in value)
    if isinstance(value, dict):
        raise ValueError(_("A value may not be an object; use a string, number, true/false or a list."))
    text = _cell_text(value)
    if not _is_unicode(text):
        raise ValueError(_(_SURROGATE))
    return text


#: JSON's \ud800 escapes can spell lone surrogates, which are not text: they cannot be stored
#: in PostgreSQL or hashed as a password, and would fail the row far from the upload.
_SURROGATE = gettext_noop(
    "The value contains an unpaired surrogate escape (\\ud800–\\udfff), which is not text."
)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: Nesting a row may have: the row's object, a list as a value, and lists in that list.
_JSON_MAX_DEPTH = 4
#: A run of backslashes, then a surrogate escape: a high one with its low one, or a lone one.
#: An odd run makes it an escape; an even one is backslashes and text.
_SURROGATE_ESCAPES = re.compile(
    rb"(\\+)u[dD](?:[89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|[0-9a-fA-F]{3})"
)
#: How long a pair of surrogate escapes is, past its backslashes.
_ESCAPE_PAIR = len("ud83d\\ude00")


def _open_json(path: Path) -> BinaryIO:
    """The file, past a UTF-8 byte-order mark."""
    handle = _open(path)
    if handle.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
        handle.seek(0)
    return handle


class _CheckedJson(io.RawIOBase):
    """The file's bytes on their way to the parser, refusing what is not UTF-8 and lone surrogate
    escapes (``\\ud800``), which are not text and which the parser would turn into "?" unseen:
    a chunk at a time, at C speed, in the same pass as the header's."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._carry = b""
        self._offset = handle.tell()  # of the carried bytes in the file

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._handle.read(min(len(buffer), _JSON_CHUNK))
        self._check(chunk)
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def _check(self, chunk: bytes) -> None:
        try:
            self._decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            start = self._offset + len(self._carry) - (len(exc.object) - len(chunk))
            raise ParseError(
                _(
                    "The file is not UTF-8 text (byte %(byte)s is invalid). "
                    "Save it as UTF-8 and upload it again."
                )
                % {"byte": f"{start + exc.start:,}"}
            ) from exc
        window = self._carry + chunk
        # An escape that may go on into the next chunk is looked at with it.
        settled = len(window) if not chunk else max(0, len(window) - _ESCAPE_PAIR)
        cut = settled
        for match in _SURROGATE_ESCAPES.finditer(window):
            if match.end() > settled:
                cut = min(cut, match.start())
                break
            if len(match.group(1)) % 2 and match.end() - match.end(1) < _ESCAPE_PAIR:
                raise ParseError(_(_SURROGATE))
        while cut > 0 and window[cut - 1] == ord("\\"):
            cut -= 1  # a run of backslashes is counted whole
        self._carry, self._offset = window[cut:], self._offset + cut

    def close(self) -> None:
        self._handle.close()
        super().close()


_JSON_CHUNK = 1 << 20


def _invalid_json(exc: BaseException) -> ParseError:
    detail = str(exc).split("\n", 1)[0].strip()
    return ParseError(_("The file is not valid JSON (%(error)s).") % {"error": detail[:120]})


def _json_header(path: Path) -> list[str]:
    """Every key of every row object, in order of appearance, read as a stream of events, so
    that every limit is enforced as it is crossed: the number of rows (blank ones too), the
    keys of one row and of the file, and nesting; and the text checked (``_CheckedJson``)
    before any row is read."""
    import ijson  # imported here: only JSON uploads pay for it

    max_rows = int(conf.get("MAX_ROWS")) + BLANK_ROWS_ALLOWANCE
    max_columns = int(conf.get("MAX_COLUMNS"))
    keys: dict[str, None] = {}
    depth = row_keys = index = 0
    with _CheckedJson(_open_json(path)) as handle:
        try:
            for event, value in ijson.basic_parse(handle):
                if event in ("end_map", "end_array"):
                    depth -= 1
                elif event in ("start_map", "start_array"):
                    depth += 1
                    if depth == 1 and event == "start_map":
                        raise ParseError(_(_NOT_AN_ARRAY))
                    if depth == 2:
                        index, row_keys = index + 1, 0
                        if event != "start_map":
                            raise _not_an_object(index)
                        if index > max_rows:
                            raise ParseError(
                                _("The file has more than %(limit)s rows, the limit (blank rows count too).")
                                % {"limit": f"{int(conf.get('MAX_ROWS')):,}"},
                                row=index + 1,
                            )
                    elif depth > _JSON_MAX_DEPTH:
                        raise ParseError(
                            _("Item %(index)s nests lists more than %(limit)s deep.")
                            % {"index": index, "limit": _JSON_MAX_DEPTH - 2},
                            row=index + 1,
                        )
                elif event == "map_key" and depth == 2:
                    row_keys += 1
                    keys.setdefault(value, None)
                    if row_keys > max_columns or len(keys) > max_columns:
                        raise ParseError(
                            _("Item %(index)s takes the keys past %(limit)s, the column limit.")
                            % {"index": index, "limit": max_columns},
                            row=index + 1,
                        )
                elif depth == 0:
                    raise ParseError(_(_NOT_AN_ARRAY))
                elif depth == 1:
                    raise _not_an_object(index + 1)
        except ijson.JSONError as exc:
            raise _invalid_json(exc) from exc
        except UnicodeDecodeError as exc:  # the parser's own word for a lone surrogate in a key
            raise ParseError(_(_SURROGATE)) from exc
    if not index:
        raise ParseError(_("The file has no rows."))
    return list(keys)


_NOT_AN_ARRAY = gettext_noop(
    "The JSON must be an array of objects, one per row, not a single value or object."
)


def _not_an_object(index: int) -> ParseError:
    return ParseError(
        _("The JSON must be an array of objects, one per row; item %(index)s is not an object.")
        % {"index": index},
        row=index + 1,
    )


def _json_rows(path: Path) -> _Raw:
    """A JSON array of objects, one per row; the keys, in order of appearance, are the header.

    Read twice as a stream, never whole: once for the header (every key of every row) and the
    limits, then row by row.
    """
    import ijson

    headers = _json_header(path)
    handle = _open_json(path)

    def rows() -> Iterator[tuple[int, list[str], Errors]]:
        try:
            for number, item in enumerate(ijson.items(handle, "item"), start=2):
                cells: list[str] = []
                errors: Errors = {}
                for header in headers:
                    try:
                        cells.append(_json_cell(item.get(header)))
                    except ValueError as exc:
                        errors.setdefault(normalize_header(header), []).append(str(exc))
                        cells.append("")
                yield number, cells, errors
        except ijson.JSONError as exc:  # the file changed since it was read for its header
            raise _invalid_json(exc) from exc
        finally:
            handle.close()

    return headers, rows(), handle.close
