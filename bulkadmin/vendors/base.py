"""The portable behaviour each vendor module starts from."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model, QuerySet

#: Rows per UPDATE of outcomes: a few parameters each, well under every vendor's limit.
OUTCOME_BATCH = 500


class Vendor:
    name = ""
    #: Django adds many-to-many rows with ``ignore_conflicts``; on MariaDB that is INSERT IGNORE,
    #: which also drops a row whose target was deleted meanwhile instead of failing.
    m2m_add_drops_missing_targets = False

    def lock(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Lock the rows a query selects (not the rows it joins), until the transaction ends."""
        return queryset.select_for_update()

    def update_from_values(
        self,
        connection: BaseDatabaseWrapper,
        model: type[Model],
        assignments: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        params: Sequence[Any] = (),
    ) -> None:
        """``UPDATE table SET assignments`` for each of ``rows``, joined on their first column (the pk).

        ``assignments`` names the joined values as ``v.<column>`` and may hold ``%s`` placeholders,
        filled from ``params``. One statement per batch: ``bulk_update`` builds a CASE per row and
        field and costs as much as the work it records. ``UPDATE … FROM (VALUES …)`` is
        PostgreSQL's and SQLite's (3.33+).
        """
        table = connection.ops.quote_name(model._meta.db_table)
        pk = connection.ops.quote_name(str(model._meta.pk.column if model._meta.pk else "id"))
        names = ", ".join(f"column{i} AS {name}" for i, name in enumerate(columns, start=1))
        for start in range(0, len(rows), OUTCOME_BATCH):
            batch = rows[start : start + OUTCOME_BATCH]
            values = ", ".join([self._values_row(len(columns))] * len(batch))
            flat = [value for row in batch for value in row]
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} SET {assignments} "  # noqa: S608 - names are ours, values bound
                    f"FROM (SELECT {names} FROM (VALUES {values}) AS raw) AS v "
                    f"WHERE {table}.{pk} = v.{columns[0]}",
                    [*params, *flat],
                )

    def _values_row(self, width: int) -> str:
        return "(" + ", ".join(["CAST(%s AS BIGINT)"] + ["%s"] * (width - 1)) + ")"

    def is_database_fault(self, exc: BaseException, connection: BaseDatabaseWrapper) -> bool:
        """A database error that is not a connection error but still not the row's fault.

        Some drivers report a lost connection as a bare ``DatabaseError``; Django drops a
        connection whose rollback failed. Either way the connection is gone.
        """
        if not isinstance(exc, DatabaseError):
            return False
        return connection.connection is None or self.is_closed(connection.connection)

    def is_closed(self, raw: Any) -> bool:
        return bool(getattr(raw, "closed", False))

    @contextlib.contextmanager
    def write_turn(self, connection: BaseDatabaseWrapper) -> Iterator[None]:
        """Servers with row locks need no turn taking."""
        yield
