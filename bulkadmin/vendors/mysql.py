"""MariaDB and MySQL: error numbers instead of SQLSTATEs, and INSERT IGNORE's leniency."""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper

from bulkadmin.vendors.base import Vendor, server_setting

#: Server errors that refuse every write, not one row: --read-only, read-only mode or transaction.
READ_ONLY_ERRORS = frozenset({1290, 1792, 1836})


class MySQL(Vendor):
    name = "mysql"
    m2m_add_drops_missing_targets = True

    def is_closed(self, raw: Any) -> bool:
        return not getattr(raw, "open", True)

    def connection_limit(self, connection: BaseDatabaseWrapper) -> int | None:
        return server_setting(connection, "SELECT @@max_connections")

    def is_database_fault(self, exc: BaseException, connection: BaseDatabaseWrapper) -> bool:
        if super().is_database_fault(exc, connection):
            return True
        cause = exc.__cause__
        code = cause.args[0] if isinstance(exc, DatabaseError) and cause and cause.args else None
        return code in READ_ONLY_ERRORS
