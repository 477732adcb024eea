"""MariaDB and MySQL: no ``FOR UPDATE OF``, no ``UPDATE … FROM``; error numbers instead of SQLSTATEs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model

from bulkadmin.vendors.base import OUTCOME_BATCH, Vendor

#: Server errors that refuse every write, not one row: --read-only, read-only mode or transaction.
READ_ONLY_ERRORS = frozenset({1290, 1792, 1836})


class MySQL(Vendor):
    name = "mysql"
    m2m_add_drops_missing_targets = True

    def update_from_values(
        self,
        connection: BaseDatabaseWrapper,
        model: type[Model],
        assignments: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        params: Sequence[Any] = (),
    ) -> None:
        """The same as a multi-table ``UPDATE … JOIN`` on a derived table of ``SELECT … UNION ALL``."""
        table = connection.ops.quote_name(model._meta.db_table)
        pk = connection.ops.quote_name(str(model._meta.pk.column if model._meta.pk else "id"))
        first = "SELECT " + ", ".join(f"%s AS {name}" for name in columns)
        other = "SELECT " + ", ".join(["%s"] * len(columns))
        for start in range(0, len(rows), OUTCOME_BATCH):
            batch = rows[start : start + OUTCOME_BATCH]
            derived = " UNION ALL ".join([first] + [other] * (len(batch) - 1))
            flat = [value for row in batch for value in row]
            with connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} JOIN ({derived}) AS v ON {table}.{pk} = v.{columns[0]} "  # noqa: S608
                    f"SET {assignments}",
                    [*flat, *params],
                )

    def is_closed(self, raw: Any) -> bool:
        return not getattr(raw, "open", True)

    def is_database_fault(self, exc: BaseException, connection: BaseDatabaseWrapper) -> bool:
        if super().is_database_fault(exc, connection):
            return True
        cause = exc.__cause__
        code = cause.args[0] if isinstance(exc, DatabaseError) and cause and cause.args else None
        return code in READ_ONLY_ERRORS
