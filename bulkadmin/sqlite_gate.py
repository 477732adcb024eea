"""A fair turn at SQLite's single write lock for bulkadmin's own writers.

SQLite's busy handler polls: a waiting writer sleeps up to 100 ms between tries, so worker
processes that commit chunk after chunk starve everyone else (a cancel click waited for the
whole job in our tests). Taking an ``flock`` on a file beside the database before the
transaction starts fixes that: the kernel wakes a blocked waiter the moment the lock is
released, before the releasing process can come back. PostgreSQL needs none of this.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from django.db import connections

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


def _lock_path(alias: str) -> Path | None:
    connection = connections[alias]
    if connection.vendor != "sqlite" or fcntl is None:
        return None
    name = str(connection.settings_dict["NAME"])
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(f"{name}.bulkadmin-lock")


@contextlib.contextmanager
def write_turn(alias: str = "default") -> Iterator[None]:
    """Hold this around a writing transaction; a no-op but on SQLite files."""
    path = _lock_path(alias)
    if path is None:
        yield
        return
    with path.open("a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
