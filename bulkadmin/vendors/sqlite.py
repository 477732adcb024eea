"""SQLite: one writer at a time, so bulkadmin's writers take fair turns at the write lock.

SQLite's busy handler polls: a waiting writer sleeps up to 100 ms between tries, so worker
processes that commit chunk after chunk starve everyone else (a cancel click waited for the
whole job in our tests; a login waited 7 to 21 s). Two rules fix that:

- bulkadmin's writers take an ``flock`` on a file beside the database before each transaction:
  the kernel wakes a blocked waiter the moment the lock is released, before the releasing
  process can come back, so they take turns among themselves;
- at least every ``YIELD_EVERY`` seconds, the writer holding the ``flock`` first leaves SQLite's
  lock free for ``YIELD_FOR`` seconds, longer than the busy handler's longest sleep, so any
  other writer (a login, an admin save) gets in within about a second;
- a transaction ends once it has held the database ``LONGEST_TURN`` seconds, the rest of its
  chunk going on in the next: slow rows (an HTTP call in a receiver) would otherwise hold the
  lock for the whole chunk, however long that is.

Its chunks are larger than other databases' (``CHUNK_SIZE`` not set): with one writer, what a
chunk costs beyond its rows (reading it, its record, the job's counters, the turn) is paid once
per transaction: 10,000 users imported about 10% faster in 500-row chunks than in 100-row ones
(``bench/README.md``).

SQLite has no row locks (``select_for_update`` is ignored): its IMMEDIATE transactions lock the
whole database.
"""

from __future__ import annotations

import contextlib
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

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


#: The longest a writer outside bulkadmin waits for a turn, less ``YIELD_FOR``.
YIELD_EVERY = 0.8
#: Longer than the 100 ms the busy handler sleeps between its tries once it has waited a while.
YIELD_FOR = 0.12
#: Within about a second, with ``YIELD_EVERY``: a turn that began before the pause was due.
LONGEST_TURN = 0.2
_STAMP = struct.Struct("<d")


def take_turn(handle: BinaryIO) -> None:
    """Under the gate: leave the database free for a moment if no one had it for a while.

    The time of the last pause is kept in the gate's file, shared by every process.
    """
    handle.seek(0)
    data = handle.read(_STAMP.size)
    last = _STAMP.unpack(data)[0] if len(data) == _STAMP.size else 0.0
    now = time.time()
    if now - last < YIELD_EVERY:
        return
    if last:  # the first writer has no one to make way for yet
        time.sleep(YIELD_FOR)
    handle.seek(0)
    handle.write(_STAMP.pack(time.time()))
    handle.flush()


class SQLite(Vendor):
    name = "sqlite"
    chunk_size = 500
    longest_turn = LONGEST_TURN

    @contextlib.contextmanager
    def write_turn(self, connection: BaseDatabaseWrapper) -> Iterator[None]:
        path = lock_path(connection)
        if path is None:
            yield
            return
        with os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                take_turn(handle)
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
