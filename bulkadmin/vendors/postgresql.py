"""PostgreSQL: row locks of the selected table only, and SQLSTATEs that are the server's fault."""

from __future__ import annotations

from typing import Any

from django.db import InternalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet

from bulkadmin.vendors.base import Vendor, server_setting

#: SQLSTATE read_only_sql_transaction: a standby, or a primary being failed over.
READ_ONLY = "25006"


class PostgreSQL(Vendor):
    name = "postgresql"
    streams_results = True

    def lock(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        # of=self: a join (an ordering by a relation, say) must never lock the job's row,
        # which every chunk shares.
        return queryset.select_for_update(of=("self",))

    def connection_limit(self, connection: BaseDatabaseWrapper) -> int | None:
        return server_setting(connection, "SHOW max_connections")

    def is_database_fault(self, exc: BaseException, connection: BaseDatabaseWrapper) -> bool:
        """Also a server that refuses every write (a read-only standby after a failover).

        Any other ``InternalError`` (a trigger's RAISE EXCEPTION, a transaction aborted by the
        importer's own error) is the row's.
        """
        if super().is_database_fault(exc, connection):
            return True
        return isinstance(exc, InternalError) and getattr(exc.__cause__, "pgcode", None) == READ_ONLY
