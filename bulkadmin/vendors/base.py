"""The portable behaviour each vendor module starts from."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet


def server_setting(connection: BaseDatabaseWrapper, query: str) -> int | None:
    """A number the server reports, or None if it cannot be read (its rights, a proxy)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(query)
            row = cursor.fetchone()
        return int(row[0]) if row else None
    except (DatabaseError, TypeError, ValueError):
        return None


#: Takes a write turn: entered, it holds it (``vendors.write_turn``'s inside).
Turn = Callable[[], contextlib.AbstractContextManager[None]]


class Vendor:
    name = ""
    #: Django adds many-to-many rows with ``ignore_conflicts``; on MariaDB that is INSERT IGNORE,
    #: which also drops a row whose target was deleted meanwhile instead of failing.
    m2m_add_drops_missing_targets = False
    #: Rows per chunk when ``CHUNK_SIZE`` is not set. A chunk is one transaction, with its own
    #: bookkeeping (its record, the job's counters).
    chunk_size = 100
    #: The longest, in seconds, one of bulkadmin's writing transactions should keep others from
    #: writing: a chunk whose rows take longer commits in several. None: rows lock rows only.
    longest_turn: float | None = None
    #: Whether ``QuerySet.iterator()`` reads a result as it goes (a server-side cursor, SQLite
    #: stepping through it). Where the driver fetches all of it first (mysqlclient), a large
    #: result is read by key instead (``keyset.in_batches``), as it is for a vendor not known.
    streams_results = False

    def lock(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Lock the rows a query selects (not the rows it joins), until the transaction ends."""
        return queryset.select_for_update()

    def is_database_fault(self, exc: BaseException, connection: BaseDatabaseWrapper) -> bool:
        """A database error that is not a connection error but still not the row's fault.

        Some drivers report a lost connection as a bare ``DatabaseError``; Django drops a
        connection whose rollback failed. Either way the connection is gone.
        """
        if not isinstance(exc, DatabaseError):
            return False
        return connection.connection is None or self.is_closed(connection.connection)

    def connection_limit(self, connection: BaseDatabaseWrapper) -> int | None:
        """How many connections the server takes in all; None: no limit worth keeping to."""
        return None

    def is_closed(self, raw: Any) -> bool:
        return bool(getattr(raw, "closed", False))

    #: In a ``rows_turn``, a row that ran this long before its first statement is committed
    #: alone, so that the next row's time before its first statement is outside any turn too.
    #: None: turns are not deferred (servers with row locks take none).
    alone_after: float | None = None

    @contextlib.contextmanager
    def write_turn(self, connection: BaseDatabaseWrapper) -> Iterator[None]:
        """Servers with row locks need no turn taking."""
        yield

    @contextlib.contextmanager
    def deferred_turn(
        self, connection: BaseDatabaseWrapper, turn: Turn, saw: Callable[[], None]
    ) -> Iterator[None]:
        """``vendors.rows_turn``: here the turn is taken at once."""
        with turn():
            yield

    @contextlib.contextmanager
    def turn_at_first_write(self, connection: BaseDatabaseWrapper, turn: Turn) -> Iterator[None]:
        """``vendors.writes_turn``: here no turn is needed."""
        yield

    @contextlib.contextmanager
    def runs_jobs(self, connection: BaseDatabaseWrapper) -> Iterator[None]:
        """Within it, this process runs jobs and writes only in write turns: where writers pause
        for other processes (SQLite), they need not pause for this one."""
        yield
