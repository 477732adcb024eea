"""Failed rows as a file staff can fix and upload again: never a secret, never a live formula."""

from __future__ import annotations

from typing import Any

import tablib

from bulkadmin.importers.base import Importer
from bulkadmin.models import ImportJob

#: A spreadsheet runs a cell starting with these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
ERROR_COLUMN = "errors"
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
EXPORT_BATCH = 2000


def escape_formula(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def failed_rows_dataset(job: ImportJob, importer: Importer) -> tablib.Dataset:
    """The failed rows' own columns (secrets left out), then their errors, ready to re-upload."""
    secret = importer.secret_columns()
    columns = [c for c in importer.column_names() if c not in secret]
    rows = job.rows.failed().order_by("number")
    present: set[str] = set()
    for values in rows.values_list("values", flat=True).iterator(chunk_size=EXPORT_BATCH):
        present.update(values)
    headers = [c for c in columns if c in present] + [ERROR_COLUMN]
    data = tablib.Dataset(headers=headers)
    for row in rows.only("number", "values", "errors").iterator(chunk_size=EXPORT_BATCH):
        values = row.values
        data.append(
            [escape_formula(values.get(c, "")) for c in headers[:-1]] + [escape_formula(row.error_text)]
        )
    return data


def export_failed_rows(job: ImportJob, importer: Importer, file_format: str) -> bytes:
    if file_format not in CONTENT_TYPES:
        raise ValueError(f"Unknown format {file_format!r}.")
    data = failed_rows_dataset(job, importer)
    exported = data.export(file_format)
    return exported.encode("utf-8") if isinstance(exported, str) else bytes(exported)
