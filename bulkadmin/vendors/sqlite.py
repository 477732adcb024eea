"""SQLite: one writer at a time, so bulkadmin's writers take fair turns at the write lock.

SQLite's busy handler polls: a waiting writer sleeps up to 100 ms between tries, so worker
processes that commit chunk after chunk starve everyone else (a cancel click waited for the
whole job in our tests). Taking an ``flock`` on a file beside the database before the
transaction starts fixes that among bulkadmin's writers: the kernel wakes a blocked waiter the
moment the lock is released, before the releasing process can come back. SQLite has no row
locks (``select_for_update`` is ignored): its IMMEDIATE transactions lock the whole database.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from django.db.backends.base.base import BaseDatabaseWrapper

from bulkadmin.vendors.base import Vendor

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


def lock_path(connection: BaseDatabaseWrapper) -> Path | None:
    """The gate's file beside a database file; None for in-memory databases."""
    name = str(connection.settings_dict["NAME"])
    if fcntl is None or not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(f"{name}.bulkadmin-lock")


class SQLite(Vendor):
    name = "sqlite"

    @contextlib.contextmanager
    def write_turn(self, connection: BaseDatabaseWrapper) -> Iterator[None]:
        path = lock_path(connection)
        if path is None:
            yield
            return
        with path.open("a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
