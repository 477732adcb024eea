"""A file's rows checked against an importer: no database writes and no signals.

Rows are cleaned one by one (no queries) and checked against the database in batches, so a
file costs a few reads per thousand rows, never one per row. Memory stays flat too: only the
first ``MAX_REPORTED_ERRORS`` errors by row are kept, and invalid rows are counted, not listed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from bulkadmin.importers.base import NON_FIELD, Cleaned, Errors, Exists, Importer, RowInvalid
from bulkadmin.parsing import ColumnMap, HeaderMismatch, ParseError, RawRow, Table, open_table

CHECK_BATCH = 1000
MAX_REPORTED_ERRORS = 1000
PREVIEW_ROWS = 10
MASK = "••••••"
#: Distinct kinds of error a report tells apart; any more are counted together.
MAX_ERROR_GROUPS = 100
#: Rows named per kind of error.
GROUP_ROWS = 5
_QUOTED = re.compile(r"“[^”]*”|\d+")


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    message: str

    def __str__(self) -> str:
        if self.column != NON_FIELD:
            return _("Row %(row)s, column “%(column)s”: %(message)s") % {
                "row": self.row,
                "column": self.column,
                "message": self.message,
            }
        return _("Row %(row)s: %(message)s") % {"row": self.row, "message": self.message}


@dataclass
class ErrorGroup:
    """Errors alike but for the values they quote: one line of the report, however many rows."""

    column: str
    example: str
    count: int = 0
    rows: list[int] = field(default_factory=list)

    @property
    def more_rows(self) -> int:
        return self.count - len(self.rows)


@dataclass
class Report:
    """What staff read before confirming: counts, errors by kind and by row, a preview.

    ``exists`` counts the rows refused only because their object exists already, so the
    report can offer to check the file again as updates.
    """

    format: str = ""
    headers: list[str] = field(default_factory=list)
    total: int = 0
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    invalid: int = 0
    preview: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    file_error: str = ""
    #: The encoding the file was read from when it was not UTF-8 ("Windows-1252").
    encoding: str = ""
    #: The file's columns are not the importer's: a mapping would make it readable.
    header_mismatch: bool = False
    groups: dict[tuple[str, str], ErrorGroup] = field(default_factory=dict)
    exists: int = 0

    @property
    def valid(self) -> int:
        return self.total - self.invalid

    @property
    def is_valid(self) -> bool:
        return not self.file_error and not self.invalid and self.total > 0

    @property
    def errors_truncated(self) -> bool:
        return self.error_count > len(self.errors)

    @property
    def mostly_existing(self) -> bool:
        """Whether most refused rows are refused only for existing: an update, probably."""
        return self.exists > 0 and self.exists * 2 >= self.invalid

    def error_groups(self) -> list[ErrorGroup]:
        return sorted(self.groups.values(), key=lambda group: (-group.count, group.rows[:1]))

    def add(self, number: int, errors: Errors) -> None:
        """Record a row as invalid; call once per row, with all of its errors."""
        self.invalid += 1
        messages_of_row = [message for messages in errors.values() for message in messages]
        if messages_of_row and all(isinstance(message, Exists) for message in messages_of_row):
            self.exists += 1
        for column, messages in errors.items():
            for message in messages:
                self.error_count += 1
                self.errors.append(RowError(number, column, message))
                self._group(number, column, message)
        # Errors arrive out of row order (database checks run per batch), so keep the lowest
        # rows rather than the first to arrive; trimming at twice the cap keeps this cheap.
        if len(self.errors) > 2 * MAX_REPORTED_ERRORS:
            self._trim()

    def _group(self, number: int, column: str, message: str) -> None:
        key = (column, _QUOTED.sub("…", message))
        if key not in self.groups and len(self.groups) >= MAX_ERROR_GROUPS:
            key = ("", "")
            message = _("Other errors.")
        group = self.groups.setdefault(key, ErrorGroup(column=key[0], example=message))
        group.count += 1
        if len(group.rows) < GROUP_ROWS:
            group.rows.append(number)
        elif number < group.rows[-1]:  # batches arrive out of row order: keep the first rows
            group.rows[-1] = number
            group.rows.sort()

    def _trim(self) -> None:
        self.errors.sort(key=lambda e: e.row)
        del self.errors[MAX_REPORTED_ERRORS:]


#: Receives each batch of valid rows, as read, once the batch is checked.
ValidBatchSink = Callable[[list[RawRow]], None]
#: Receives each invalid row, as read, with all of its errors.
InvalidRowSink = Callable[[RawRow], None]


def validate_file(
    path: Path,
    name: str,
    importer: Importer,
    *,
    on_valid: ValidBatchSink | None = None,
    on_invalid: InvalidRowSink | None = None,
    mapping: ColumnMap | None = None,
) -> Report:
    """Validate the file at ``path``; with ``on_valid``, hand each checked batch of good rows on,
    and with ``on_invalid`` each bad row, so a job can keep it as a failed row to correct."""
    report = Report()
    try:
        # Without a mapping, a header that is a column's label ("E-mail") reads as that column.
        columns: ColumnMap = dict(importer.header_aliases()) if mapping is None else mapping
        with open_table(path, name, importer.column_names(), columns) as table:
            _check_required_headers(table, importer)
            report.format, report.headers, report.encoding = table.format, table.headers, table.encoding
            _validate_rows(table.rows, importer, report, on_valid, on_invalid)
    except ParseError as exc:
        report.file_error = str(exc)
        report.header_mismatch = isinstance(exc, HeaderMismatch)
    if not report.file_error and report.total == 0:
        report.file_error = _("The file has a header but no rows.")
    report._trim()
    return report


def _check_required_headers(table: Table, importer: Importer) -> None:
    missing = [c for c in importer.required_columns() if c not in table.headers]
    if missing:
        raise HeaderMismatch(
            ngettext(
                "Required column missing from the header: %(columns)s.",
                "Required columns missing from the header: %(columns)s.",
                len(missing),
            )
            % {"columns": ", ".join(missing)}
        )


def _validate_rows(
    rows: Iterator[RawRow],
    importer: Importer,
    report: Report,
    on_valid: ValidBatchSink | None,
    on_invalid: InvalidRowSink | None,
) -> None:
    secret = importer.secret_columns()
    first_seen: dict[str, int] = {}
    batch: list[tuple[RawRow, Cleaned]] = []

    def reject(row: RawRow, errors: Errors) -> None:
        report.add(row.number, errors)
        if on_invalid is not None:
            on_invalid(row._replace(errors=errors))

    def flush() -> None:
        if not batch:
            return
        found = importer.check_rows([(row.number, cleaned) for row, cleaned in batch])
        for row, _cleaned in batch:
            if row.number in found:
                reject(row, found[row.number])
        if on_valid is not None:
            on_valid([row for row, _ in batch if row.number not in found])
        batch.clear()

    for row in rows:
        number, values = row.number, row.values
        report.total += 1
        if len(report.preview) < PREVIEW_ROWS:
            report.preview.append(
                (number, {k: (MASK if k in secret and v else v) for k, v in values.items()})
            )
        if row.errors:
            reject(row, row.errors)
            continue
        try:
            cleaned = importer.clean_row(values)
        except RowInvalid as exc:
            reject(row, exc.errors)
            continue
        key = importer.row_key(cleaned)
        if key is not None:
            if key in first_seen:
                duplicate = _("Duplicate of row %(row)s.") % {"row": first_seen[key]}
                reject(row, {importer.key_column or NON_FIELD: [duplicate]})
                continue
            first_seen[key] = number
        batch.append((row, cleaned))
        if len(batch) >= CHECK_BATCH:
            flush()
    flush()
