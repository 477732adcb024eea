"""Failed rows as a file staff can fix and upload again: never a secret, never a live formula.

Both formats are written a batch of rows at a time, so memory stays flat however many rows
failed: CSV streams straight into the response, XLSX goes through openpyxl's write-only
workbook into a private temporary file that the response then streams.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from bulkadmin import conf, fixit
from bulkadmin.fixit import escape_formula
from bulkadmin.importers.base import Importer
from bulkadmin.keyset import in_batches
from bulkadmin.models import ImportJob, error_text
from bulkadmin.parsing import ColumnMap, RawRow
from bulkadmin.validation import validate_file

CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
EXPORT_BATCH = 2000


def failed_rows_table(job: ImportJob, importer: Importer) -> Iterator[list[str]]:
    """The header, then each failed row no rerun took: its number, its own columns (secrets left
    out), its errors and its job, as ``bulkadmin.fixit`` reads them back."""
    secret = importer.secret_columns()
    columns = [c for c in importer.column_names() if c not in secret]
    own = fixit.bookkeeping(importer.column_names())
    rows = job.rows.open()  # a row in a rerun already is not offered again
    present: set[str] = set()
    for _number, values in in_batches(rows.values_list("number", "values"), "number", EXPORT_BATCH):
        present.update(values)
    headers = [c for c in columns if c in present]
    numbered, errors_column, job_column = (name in own for name in fixit.COLUMNS)
    yield (
        [fixit.ROW_COLUMN] * numbered
        + headers
        + [fixit.ERRORS_COLUMN] * errors_column
        + [fixit.JOB_COLUMN] * job_column
    )
    # Plain tuples: model instances here cost a query per row (deferred fields reloaded).
    rows_values = rows.values_list("number", "values", "errors")
    for number, values, errors in in_batches(rows_values, "number", EXPORT_BATCH):
        yield (
            [str(number)] * numbered
            + [escape_formula(values.get(c, "")) for c in headers]
            + [escape_formula(error_text(errors))] * errors_column
            + [str(job.pk)] * job_column
        )


class _Line:
    """A file-like object whose ``write`` returns what it was given, for ``csv.writer``."""

    def write(self, text: str) -> str:
        return text


def failed_rows_csv(job: ImportJob, importer: Importer) -> Iterator[bytes]:
    """CSV lines, one row at a time."""
    writer = csv.writer(_Line())
    for row in failed_rows_table(job, importer):
        yield str(writer.writerow(row)).encode("utf-8")


def invalid_rows_csv(
    path: Path, name: str, importer: Importer, mapping: ColumnMap | None = None
) -> IO[bytes]:
    """An upload's invalid rows as a fix-it CSV (row, its columns, errors), before any job.

    Validated again as the report was (with its column mapping), each invalid row written as
    it is found, into a private temporary file: memory stays flat however many rows are
    invalid. Every row holds every column of the file, so the first gives the header.
    """
    secret = importer.secret_columns()
    handle = _private_file(".csv")
    text = io.TextIOWrapper(handle, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text)
    headers: list[str] = []

    def write(row: RawRow) -> None:
        if not headers:
            headers.extend(c for c in row.values if c not in secret)
            writer.writerow([fixit.ROW_COLUMN, *headers, fixit.ERRORS_COLUMN])
        cells = [escape_formula(row.values.get(c, "")) for c in headers]
        writer.writerow([str(row.number), *cells, escape_formula(error_text(row.errors))])

    validate_file(path, name, importer, on_invalid=write, mapping=mapping)
    text.detach()
    handle.seek(0)
    return handle


def template_table(importer_cls: type[Importer]) -> list[list[str]]:
    """The template file: the columns, a help row and an example row (both skipped on upload)."""
    columns = list(importer_cls.columns)
    helps = [
        f"{fixit.HELP_PREFIX}{'Required.' if c.required else 'Optional.'} {c.help_text}".strip()
        for c in columns
    ]
    examples = [fixit.EXAMPLE_PREFIX + c.example if c.example else "" for c in columns]
    return [[c.name for c in columns], helps, examples]


def template_csv(importer_cls: type[Importer]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(template_table(importer_cls))
    return out.getvalue().encode("utf-8")


def template_xlsx(importer_cls: type[Importer]) -> IO[bytes]:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(str(importer_cls.verbose_name())[:31] or "Import")
    for row in template_table(importer_cls):
        sheet.append(row)
    handle = _private_file(".xlsx")
    workbook.save(handle)
    handle.seek(0)
    return handle


def _private_file(suffix: str) -> IO[bytes]:
    """A temporary file under DATA_DIR whose name is already gone: readable only through it."""
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - returned open, for the response to close
        dir=conf.data_dir(), prefix="export-", suffix=suffix, delete=False
    )
    Path(handle.name).unlink()
    return handle


def failed_rows_xlsx(job: ImportJob, importer: Importer) -> IO[bytes]:
    """An XLSX file, written row by row; the open file is returned, its name already unlinked."""
    from openpyxl import Workbook  # imported here: 0.25 s (numpy too) on every process start

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Failed rows")
    for row in failed_rows_table(job, importer):
        sheet.append(row)
    handle = _private_file(".xlsx")
    workbook.save(handle)
    handle.seek(0)
    return handle
