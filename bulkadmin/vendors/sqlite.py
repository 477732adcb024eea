"""SQLite: one writer at a time, so bulkadmin's writers take fair turns at the write lock.

SQLite's busy handler polls: a waiting writer sleeps up to 100 ms between tries, so worker
processes that commit chunk after chunk starve everyone else (a cancel click waited for the
whole job in our tests; a login waited 7 to 21 s). Two rules fix that:

- bulkadmin's writers take an ``flock`` on a file beside the database before each transaction:
  the kernel wakes a blocked waiter the moment the lock is released, before the releasing
  process can come back, so they take turns among themselves;
- at least every ``YIELD_EVERY`` seconds, the writer holding the ``flock`` first leaves SQLite's
  lock free for ``YIELD_FOR`` seconds, longer than the busy handler's longest sleep, so any
  other writer (a login, an admin save) gets in within about a second. It does so only when a
  process other than the job's own has the database open (``others_connected``): nobody else
  can be waiting then, and the pauses cost a job alone on the database 13% of its time;
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
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from django.db.backends.base.base import BaseDatabaseWrapper

from bulkadmin import conf
from bulkadmin.vendors.base import Turn, Vendor

logger = logging.getLogger("bulkadmin")

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


def database_path(connection: BaseDatabaseWrapper) -> Path | None:
    """The database's file; None for in-memory databases (or where ``flock`` is missing)."""
    name = str(connection.settings_dict["NAME"])
    if fcntl is None or not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name)


def lock_path(connection: BaseDatabaseWrapper) -> Path | None:
    """The gate's file beside a database file; None for in-memory databases."""
    database = database_path(connection)
    return None if database is None else Path(f"{database}.bulkadmin-lock")


def runners_path(database: Path) -> Path:
    """A file each process running a job holds a shared ``flock`` on (``SQLite.runs_jobs``)."""
    return Path(f"{database}.bulkadmin-runners")


_runs_jobs: dict[Path, tuple[int, int]] = {}  # a runners file: its descriptor, and how many hold it
_runs_jobs_lock = threading.Lock()
#: ``/proc/self/ns/pid``'s inode in the kernel's first PID namespace (``PROC_PID_INIT_INO``).
_INITIAL_PID_NAMESPACE = 0xEFFFFFFC


def others_connected(database: Path) -> bool:
    """Whether a process other than this one and those running jobs has the database open.

    Each SQLite connection holds a read lock on the ``-shm`` file (its "DMS" byte) for as long
    as it is open, a writer waiting for its turn included, and Linux lists every lock in
    ``/proc/locks`` with its process. Processes running jobs hold a lock on the runners file.
    The answer is yes wherever the list may not tell: it cannot be read; it does not show this
    process's own connection (another file system's numbering); or this process runs in a
    container, whose list leaves out the processes of other containers, unless the settings
    say the database is opened in this one only. A pause too many costs time, one too few
    starves a login.
    """
    if not (conf.get("SQLITE_ONE_CONTAINER") or _in_initial_pid_namespace()):
        return True
    try:
        shm, listing = _file_id(Path(f"{database}-shm")), Path("/proc/locks").read_text()
    except OSError:
        return True
    try:
        runners = _file_id(runners_path(database))
    except FileNotFoundError:  # no job has run on it: none runs now (validating a file, say)
        runners = ""
    except OSError:
        return True
    return others_in(listing, shm=shm, runners=runners, me=str(os.getpid()))


def others_in(listing: str, *, shm: str, runners: str, me: str) -> bool:
    """``others_connected`` for a ``/proc/locks`` text and the files' ids (``_file_id``)."""
    connected: set[str] = set()
    running: set[str] = set()
    for line in listing.splitlines():
        fields = [field for field in line.split() if field != "->"]  # "->": a blocked request
        if len(fields) < 6:
            continue
        pid, file = fields[4], fields[5]
        if file == shm:
            connected.add(pid)
        elif file == runners:
            running.add(pid)
    if me not in connected:
        return True
    return bool(connected - running - {me})


def _read_through(connection: BaseDatabaseWrapper) -> None:
    """Open the connection and read through it: SQLite maps the ``-shm`` file at a connection's
    first read, and when the last connection closes the file goes (a runner closes its own
    before starting its pool)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM sqlite_master LIMIT 1")


def _in_initial_pid_namespace() -> bool:
    try:
        return Path("/proc/self/ns/pid").stat().st_ino == _INITIAL_PID_NAMESPACE
    except OSError:
        return False


def _hold_shared(path: Path) -> int:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH)
    except OSError:
        os.close(descriptor)
        raise
    return descriptor


def _forget_inherited() -> None:
    """In a forked child: the parent's runners files are its own, not the child's (closing our
    copies leaves the parent's locks alone; a worker takes its own)."""
    for descriptor, _holders in _runs_jobs.values():
        with contextlib.suppress(OSError):
            os.close(descriptor)
    _runs_jobs.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited)


def _file_id(path: Path) -> str:
    """A file as ``/proc/locks`` names it: device major and minor in hex, and its inode."""
    info = path.stat()
    return f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"


#: The longest a writer outside bulkadmin waits for a turn, less ``YIELD_FOR``.
YIELD_EVERY = 0.8
#: Longer than the 100 ms the busy handler sleeps between its tries once it has waited a while.
YIELD_FOR = 0.12
#: Within about a second, with ``YIELD_EVERY``: a turn that began before the pause was due.
LONGEST_TURN = 0.2
#: How often, once a pause is due, a writer looks for other processes: each look at
#: ``/proc/locks`` waits out the kernel's RCU grace period, 4 to 10 ms here. As often as pauses
#: are due: a writer arriving just after a look then waits no longer than one arriving just
#: after a pause, and a job alone on the database looks about once a second.
LOOK_EVERY = YIELD_EVERY
#: A row that ran 2 ms before its first statement commits alone (``Vendor.alone_after``): far
#: more than a commit costs, far less than a receiver that waits on another service.
ALONE_AFTER = 0.002
#: The gate file's contents: when the last pause began, and when a writer last looked.
_STAMPS = struct.Struct("<dd")


def take_turn(handle: BinaryIO, database: Path, connection: BaseDatabaseWrapper) -> None:
    """Under the gate: leave the database free for a moment if no one had it for a while, and
    another process may want it.

    The times of the last pause and the last look are kept in the gate's file, shared by every
    process. While nobody else has the database open the pause stays due, so it is made as
    soon as a look finds someone.
    """
    handle.seek(0)
    data = handle.read(_STAMPS.size)
    paused, looked = _STAMPS.unpack(data) if len(data) == _STAMPS.size else (0.0, 0.0)
    now = time.time()  # shared by processes: a clock set back makes a pause due, never late
    if 0 <= now - paused < YIELD_EVERY or (paused and 0 <= now - looked < LOOK_EVERY):
        return
    if paused:  # the first writer has no one to make way for yet
        _read_through(connection)  # so the list shows this process: it is about to write
        if not others_connected(database):
            _write_stamps(handle, paused, now)
            return
        logger.debug("Leaving %s free for other writers for %ss.", database.name, YIELD_FOR)
        time.sleep(YIELD_FOR)
    now = time.time()
    _write_stamps(handle, now, now)


def _write_stamps(handle: BinaryIO, paused: float, looked: float) -> None:
    handle.seek(0)
    handle.write(_STAMPS.pack(paused, looked))
    handle.flush()


def _before_first(
    connection: BaseDatabaseWrapper,
    wanted: Callable[[str], bool],
    take: Callable[[], object],
    each: Callable[[], None] | None = None,
) -> contextlib.AbstractContextManager[None]:
    """An ``execute_wrapper`` that calls ``take()`` before the first statement ``wanted``
    accepts, until it once succeeds (and ``each()`` before every statement). Taking a turn
    reads through the same connection: those statements pass straight through."""
    done = taking = False

    def wrapper(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
    ) -> Any:
        nonlocal done, taking
        if each is not None:
            each()
        if not (done or taking) and wanted(sql):
            taking = True
            try:
                take()
                done = True
            finally:
                taking = False
        return execute(sql, params, many, context)

    return connection.execute_wrapper(wrapper)


class SQLite(Vendor):
    name = "sqlite"
    chunk_size = 500
    streams_results = True
    longest_turn = LONGEST_TURN
    alone_after = ALONE_AFTER

    @contextlib.contextmanager
    def write_turn(self, connection: BaseDatabaseWrapper) -> Iterator[None]:
        database, path = database_path(connection), lock_path(connection)
        if database is None or path is None:
            yield
            return
        with os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                take_turn(handle, database, connection)
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def deferred_turn(
        self, connection: BaseDatabaseWrapper, turn: Turn, saw: Callable[[], None]
    ) -> Iterator[None]:
        """The transaction ``atomic()`` begins inside this starts at its first statement, not at
        once: only then are the turn and SQLite's write lock taken (``BEGIN IMMEDIATE``), so
        whatever runs before (a ``pre_save`` receiver that waits or computes) overlaps other
        writers' turns. Every statement passes ``execute_wrapper``, Django's own savepoints
        included, so none runs outside the transaction; IMMEDIATE from the first one, so a read
        never leaves a snapshot that a write could not upgrade from (``SQLITE_BUSY_SNAPSHOT``)."""
        if database_path(connection) is None or connection.in_atomic_block:
            # An in-memory database (no turns), or a transaction begun already (a test's)
            with super().deferred_turn(connection, turn, saw):
                yield
            return
        taken = contextlib.ExitStack()

        def begin() -> None:
            with contextlib.ExitStack() as held:
                held.enter_context(turn())
                with connection.wrap_database_errors:
                    connection.connection.execute("BEGIN IMMEDIATE")
                taken.push(held.pop_all())  # held until the transaction ends

        # If BEGIN fails, the next statement tries again: none runs outside the transaction.
        # ``saw`` comes before any wait for the turn: that wait is not the row's doing.
        first_statement = _before_first(connection, lambda sql: connection.in_atomic_block, begin, each=saw)
        connection.ensure_connection()
        # Django's SQLite backend begins atomic()'s transaction here; the wrapper does instead.
        connection._start_transaction_under_autocommit = lambda: None  # type: ignore[attr-defined]
        try:
            with taken, first_statement:
                yield
        finally:
            del connection._start_transaction_under_autocommit  # type: ignore[attr-defined]

    @contextlib.contextmanager
    def turn_at_first_write(self, connection: BaseDatabaseWrapper, turn: Turn) -> Iterator[None]:
        """Statements run outside turns until one may write (anything but a ``SELECT`` in
        autocommit, ``atomic()``'s ``BEGIN`` included); from it to the end, the turn is held. So
        code that reads, or waits, overlaps other writers' turns, and one that writes does not
        contend with them for SQLite's lock."""
        if database_path(connection) is None:
            yield
            return
        taken = contextlib.ExitStack()

        def may_write(sql: str) -> bool:
            return connection.in_atomic_block or sql.lstrip()[:6].upper() != "SELECT"

        with taken, _before_first(connection, may_write, lambda: taken.enter_context(turn())):
            yield

    @contextlib.contextmanager
    def runs_jobs(self, connection: BaseDatabaseWrapper) -> Iterator[None]:
        database = database_path(connection)
        if database is None:
            yield
            return
        path = runners_path(database)
        with _runs_jobs_lock:
            descriptor, holders = _runs_jobs.get(path, (-1, 0))
            try:
                descriptor = descriptor if holders else _hold_shared(path)
            except OSError as exc:  # seen as any other process then: pauses are made for it
                logger.warning("Could not mark this process as running a job (%s).", exc)
                holders = -1
            else:
                _runs_jobs[path] = (descriptor, holders + 1)
        if holders < 0:
            yield
            return
        try:
            yield
        finally:
            with _runs_jobs_lock:
                descriptor, holders = _runs_jobs.pop(path)
                if holders > 1:
                    _runs_jobs[path] = (descriptor, holders - 1)
                else:
                    os.close(descriptor)  # and with it the lock
