"""The files we write for staff to fill in and upload: the fix-it file (the failed-rows download,
made to be corrected and uploaded again) and the template file.

Beside the importer's own columns it carries three of its own: ``row`` (the row's number in
its job), ``errors`` (why it failed) and ``job`` (which job). An upload recognizes them,
ignores ``errors``, and remembers which failed row each row came from (``Source``), so that a
secret the download left out (a password) comes back from that failed row, sealed, and the
failed row shows where it went. A column of the importer's own with one of these names wins.

The template file has the importer's columns, a help row and an example row, each marked
(``(help) ``, ``e.g. ``) so that, left in, they are skipped rather than imported.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

ROW_COLUMN = "row"
ERRORS_COLUMN = "errors"
JOB_COLUMN = "job"
COLUMNS = (ROW_COLUMN, ERRORS_COLUMN, JOB_COLUMN)

#: The template file's rows under its header: skipped when the file comes back filled in.
HELP_PREFIX = "(help) "
EXAMPLE_PREFIX = "e.g. "

#: A spreadsheet runs a cell starting with these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Source:
    """The failed row an uploaded row was downloaded from."""

    job_id: int
    number: int


def bookkeeping(importer_columns: Collection[str]) -> list[str]:
    """The fix-it columns an importer with these columns can carry."""
    return [name for name in COLUMNS if name not in importer_columns]


def is_formula_like(text: str) -> bool:
    """Whether a spreadsheet may run the cell: it starts with a formula character, even after
    spaces, a no-break space or a line break (``" =1+1"``, ``"\u00a0=1+1"``, ``"\n=1+1"``)."""
    return text.startswith(FORMULA_PREFIXES) or text.lstrip().startswith(FORMULA_PREFIXES)


def escape_formula(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if is_formula_like(text) else text


def unescape_formula(text: str) -> str:
    """Undo ``escape_formula``: ``'+1-555`` in a fix-it file was ``+1-555`` in the job."""
    return text[1:] if text.startswith("'") and is_formula_like(text[1:]) else text


def source_of(values: dict[str, str], columns: Collection[str]) -> Source | None:
    """Take the fix-it ``columns`` out of a row's values; the failed row they name, if any."""
    taken = {name: values.pop(name, "").strip() for name in columns}
    job, number = taken.get(JOB_COLUMN, ""), taken.get(ROW_COLUMN, "")
    if job.isdigit() and number.isdigit() and len(job) < 19 and len(number) < 19:
        return Source(int(job), int(number))
    return None


def is_template_row(cells: list[str]) -> bool:
    """The template's help or example row, left in the file: not data."""
    filled = (cell for cell in cells if cell.strip())
    first = next(filled, None)  # most rows are data: their first cell settles it
    prefix = next((p for p in (HELP_PREFIX, EXAMPLE_PREFIX) if first and first.startswith(p)), None)
    return prefix is not None and all(cell.startswith(prefix) for cell in filled)
