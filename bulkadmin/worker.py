"""What runs in a worker: one chunk of rows, its outcome in the same transaction as its objects.

Used by the local process pool (``bootstrap.initialize_worker`` prepares each worker),
in-process for ``--workers 1``, and by queue workers (Celery). A chunk is committed in as few
transactions as possible: all its rows in one, and when a row fails, the rows before it are
committed together, the failing row is recorded alone and the rest go on, so a bad row never
undoes or blocks its neighbours. Where the database has one writer (SQLite), a transaction also
ends when it has kept the others waiting long enough (``vendors.turn_is_over``), the rest going
on in the next. Each transaction of rows reads and locks the chunk's record after its rows, and
rolls back if one of them is listed as done there: a chunk run twice (a retry, a redelivery, a
second runner) does each row once. Locking the record last lets parts of one chunk run side by
side on servers with row locks, and on SQLite, where the transaction and its write turn start
at the first statement (``vendors.rows_turn``), what a row does before it writes overlaps the
other writers' turns. A transaction that records failures only locks the record first.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import logging
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

from django.contrib.admin.models import LogEntry
from django.db import DatabaseError, connections, models, transaction
from django.utils.module_loading import import_string

from bulkadmin import conf, crypto, history, vendors
from bulkadmin import undo as undo_values
from bulkadmin.bookkeeping import add_progress, read_chunk, write_chunk
from bulkadmin.cpuclock import CpuTimes, ThreadCpu
from bulkadmin.importers.base import Cleaned, Errors, Importer, RowInvalid
from bulkadmin.jobs import importer_for
from bulkadmin.models import ChunkStatus, ImportChunk, ImportJob, ImportRow
from bulkadmin.pool import Gate
from bulkadmin.vendors import (
    CONNECTION_ERRORS,
    DatabaseFault,
    is_database_fault,
    ran_before_writing,
    rows_turn,
    started_row,
    turn_is_over,
    turn_waits,
    write_turn,
)

logger = logging.getLogger("bulkadmin")
T = TypeVar("T")


@dataclass(frozen=True)
class ChunkResult:
    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    #: The worker thread's time on these rows: in all, on a CPU, ready for one while the cores
    #: ran something else (``cpuclock``), and waiting for a write turn.
    #: The runner's thread tuning reads them (``tuning.ThreadTuner``).
    seconds: float = 0.0
    cpu: float = 0.0
    waited: float = 0.0
    ready: float = 0.0

    def __add__(self, other: ChunkResult) -> ChunkResult:
        return ChunkResult(
            self.processed + other.processed,
            self.succeeded + other.succeeded,
            self.failed + other.failed,
            self.seconds + other.seconds,
            self.cpu + other.cpu,
            self.waited + other.waited,
            self.ready + other.ready,
        )


# ---- per-process state ---------------------------------------------------------------------
_importers: dict[int, Importer] = {}
_importers_lock = threading.Lock()
_gang: ThreadGang | None = None


def configure_threads(threads: int, active: int | None = None) -> None:
    """This process's threads for units: ``threads``, ``active`` of them (all by default)."""
    global _gang
    if _gang is not None and _gang.size != threads:
        _gang.shutdown()
        _gang = None
    if threads > 1 and _gang is None:
        _gang = ThreadGang(threads, active)
    elif _gang is not None:
        _gang.set_active(threads if active is None else active)


def thread_gang() -> ThreadGang | None:
    return _gang


#: This thread is the job's only writer (``--workers 1``, one thread): committing a row alone
#: would let no other writer of the job in, and only cost a commit (``Vendor.alone_after``).
_only_writer = False


def set_only_writer(only: bool) -> None:
    global _only_writer
    _only_writer = only


def get_importer(job_id: int) -> Importer:
    """The job's importer for this process, set up on first use (once per process)."""
    with _importers_lock:
        importer = _importers.get(job_id)
        if importer is None:
            job = ImportJob.objects.select_related("created_by").get(pk=job_id)
            importer = importer_for(job)
            _set_up(importer, conf.get("SETUP_HOOK"))
            _importers[job_id] = importer
        return importer


def _set_up(importer: Importer, hook: str | None = None) -> None:
    """The importer's ``setup()`` (and the hook), on a worker's start or after a rollback. What
    they write, if anything, is written in a write turn: a process that runs jobs
    (``vendors.runs_jobs``) writes only in turns, so no one pauses for it."""
    with vendors.writes_turn():
        importer.setup()
        if hook:
            import_string(hook)(importer)


def forget_job(job_id: int) -> None:
    """Drop a finished job's importer and its caches: queue workers run for weeks."""
    with _importers_lock:
        _importers.pop(job_id, None)


# ---- threads within a worker process -------------------------------------------------------
class ThreadGang:
    """Long-lived threads, each with its own database connection, closed when the thread ends.

    Only the first ``active`` threads take calls; the others wait parked (their connections
    closed) until ``set_active`` wakes them: the runner checks the rows on one thread before it
    gives them the threads asked for (``tuning.ThreadTuner``), and ``longest_call`` lets it
    see rows that wait without waiting for them.
    """

    def __init__(self, size: int, active: int | None = None) -> None:
        self.size = size
        self._gate = Gate(size if active is None else max(1, min(active, size)))
        #: Each running call's start: wall clock, and its thread's clock and CPU times then.
        self._running: dict[int, tuple[float, ThreadCpu, CpuTimes]] = {}
        self._tasks: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._loop, args=(i,), name=f"bulkadmin-{i}", daemon=True)
            for i in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def _loop(self, index: int) -> None:
        clock = ThreadCpu.current()
        try:
            while True:
                self._gate.wait_turn(index)
                task = self._tasks.get()
                if task is None:
                    break
                fn, future = task
                if future.set_running_or_notify_cancel():
                    if (times := clock.times()) is not None:
                        self._running[index] = (time.perf_counter(), clock, times)
                    try:
                        future.set_result(fn())
                    except BaseException as exc:
                        future.set_exception(exc)
                    finally:
                        self._running.pop(index, None)
        finally:
            connections.close_all()

    def set_active(self, active: int) -> None:
        self._gate.set(max(1, min(active, self.size)))

    def longest_call(self) -> tuple[float, float] | None:
        """The call running longest: its seconds so far, and its thread's seconds on a CPU or
        ready for one in them (``cpuclock``); None where threads have no CPU clock of their own."""
        now = time.perf_counter()
        calls = list(self._running.values())
        if not calls:
            return None
        started, clock, begun = min(calls, key=lambda call: call[0])
        times = clock.times()
        if times is None:  # its thread is gone: the gang is shutting down
            return None
        spent = times.since(begun)
        return now - started, spent.on_cpu + spent.ready

    def runs_this_thread(self) -> bool:
        return threading.current_thread() in self._threads

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        self._tasks.put((fn, future))
        return future

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        futures = [self.submit(partial(fn, item)) for item in items]
        return [f.result() for f in futures]

    def shutdown(self) -> None:
        self._gate.set(self.size)  # each thread, parked or not, reads its stop below
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join()


# ---- one chunk -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    """A chunk, or some of its rows (``only``: row numbers), handed to a worker as one task."""

    chunk_id: int
    only: tuple[int, ...] | None = None


def import_chunk(job_id: int, chunk_id: int, only: Sequence[int] | None = None) -> ChunkResult:
    """Import the chunk's rows not yet done (or those of ``only``); safe to call again."""
    return import_units(job_id, [Unit(chunk_id, tuple(only) if only is not None else None)])


def import_units(job_id: int, units: Sequence[Unit]) -> ChunkResult:
    """Import several chunks, one per thread of this worker when it has several."""
    importer = get_importer(job_id)
    if _gang is None or len(units) < 2 or _gang.runs_this_thread():  # never wait on our own gang
        results = [_import_unit(importer, job_id, unit) for unit in units]
    else:
        results = _gang.map(partial(_import_unit, importer, job_id), list(units))
    total = ChunkResult()
    for result in results:
        total += result
    return total


@dataclass(frozen=True)
class Row:
    number: int
    values: dict[str, str]
    secret: dict[str, str]


Prepared = tuple[Row, Cleaned]
Failure = tuple[Row, Errors]


class _RowFailed(Exception):
    def __init__(self, index: int, exc: Exception) -> None:
        super().__init__(index, exc)
        self.index = index
        self.exc = exc


class _NotCommitted(Exception):
    """Raised in a transaction outside any row (its outcome, its history: an object's
    ``__str__``), so the transaction rolled back; not an ``on_commit`` callback's failure."""

    def __init__(self, exc: Exception) -> None:
        super().__init__(exc)
        self.exc = exc


class _Raced(Exception):
    """In a deferred transaction, a row imported was done, or its chunk finished, by another
    worker before the chunk's record could be read."""


def _import_unit(importer: Importer, job_id: int, unit: Unit) -> ChunkResult:
    clock = ThreadCpu.current()
    started, begun, waited = time.perf_counter(), clock.times(), turn_waits()
    try:
        rows = pending_rows(unit)
        ready, failures = _prepare(job_id, importer, rows)
        result = _commit_all(importer, job_id, unit.chunk_id, ready, failures)
        seconds, ended = time.perf_counter() - started, clock.times()
        spent = ended.since(begun) if ended and begun else CpuTimes(seconds, 0.0)  # unread: busy
        return replace(
            result, seconds=seconds, cpu=spent.on_cpu, ready=spent.ready, waited=turn_waits() - waited
        )
    except DatabaseError as exc:
        if not is_database_fault(exc):
            raise
        connections.close_all()  # reconnect on the next chunk
        if isinstance(exc, CONNECTION_ERRORS):
            raise
        raise DatabaseFault(str(exc)) from exc  # what the runner and Celery retry


def pending_rows(unit: Unit) -> list[Row]:
    """The unit's rows not yet done, read without a lock (the commit checks again)."""
    chunk = (
        ImportChunk.objects.filter(pk=unit.chunk_id, status=ChunkStatus.PENDING)
        .only("rows", "secret", "done_rows")
        .first()
    )
    if chunk is None:
        return []
    skip = set(chunk.done_rows)
    wanted = set(unit.only) if unit.only is not None else None
    try:
        secrets = crypto.unseal_rows(chunk.secret)
    except crypto.SecretUnreadable:
        secrets = {number: {crypto.UNREADABLE: "1"} for number in chunk.row_numbers()}
    return [
        Row(number, values, secrets.get(number, {}))
        for number, values in chunk.rows
        if number not in skip and (wanted is None or number in wanted)
    ]


def _prepare(job_id: int, importer: Importer, rows: list[Row]) -> tuple[list[Prepared], list[Failure]]:
    """Clean and prepare rows outside any transaction: CPU work holds no locks."""
    ready: list[Prepared] = []
    failures: list[Failure] = []
    for row in rows:
        try:
            if crypto.UNREADABLE in row.secret:
                raise crypto.SecretUnreadable(crypto.UNREADABLE_MESSAGE)
            ready.append((row, importer.prepare_row(importer.clean_row({**row.values, **row.secret}))))
        except RowInvalid as exc:
            failures.append((row, exc.errors))
        except crypto.SecretUnreadable as exc:
            failures.append((row, {"__all__": [str(exc)]}))
        except Exception as exc:
            if is_database_fault(exc):
                raise
            # A bug or a value the importer did not foresee fails this row alone. Only the
            # type is kept: the message may quote a secret (a password being hashed).
            kind = type(exc).__name__
            logger.warning("Job %s row %s: preparing it raised %s.", job_id, row.number, kind)
            failures.append((row, {"__all__": [f"This row could not be prepared ({kind})."]}))
    if ready:
        importer.prefetch([cleaned for _row, cleaned in ready])
    return ready, failures


def _commit_all(
    importer: Importer, job_id: int, chunk_id: int, ready: list[Prepared], failures: list[Failure]
) -> ChunkResult:
    result = ChunkResult()
    batches: deque[tuple[list[Prepared], list[Failure]]] = deque([(ready, failures)])
    again: set[int] = set()  # rows that failed alone on the database, tried once more

    def once_more(row: Row, exc: BaseException) -> bool:
        """Whether a row that failed alone on the database runs once more, on the caches just
        set up afresh: an id they kept may be the cause (a group deleted since), and the row
        then fails as itself, or goes in."""
        if not isinstance(exc, DatabaseError) or row.number in again:
            return False
        again.add(row.number)
        return True

    while batches:
        ok, failed = batches.popleft()
        rest: list[Prepared] = []  # the rows left when the write turn ran out
        try:
            result += _commit(importer, job_id, chunk_id, ok, failed, rest)
        except _RowFailed as failure:
            _set_up(importer)  # caches filled in the rolled-back transaction may name lost rows
            index = failure.index
            if index > 0:  # commit the rows before the failing one, then go on from it
                batches.appendleft((ok[index:], []))
                batches.appendleft((ok[:index], failed))
            elif once_more(ok[0][0], failure.exc):
                batches.appendleft((ok, failed))
            else:  # it ran first in a fresh transaction: the failure is its own
                row, cleaned = ok[0]
                errors = importer.explain_error(cleaned, failure.exc)
                batches.appendleft((ok[1:], [*failed, (row, errors)]))
        except CONNECTION_ERRORS:
            raise
        except (DatabaseError, _NotCommitted) as exc:
            # The COMMIT itself failed (a foreign key, deferred until then), or something the
            # transaction did outside any row: which row is the cause is unknown, so each is
            # committed alone until the culprit fails by itself.
            cause = exc.exc if isinstance(exc, _NotCommitted) else exc
            if isinstance(exc, DatabaseError) and is_database_fault(exc):
                raise
            if not ok:
                if isinstance(exc, DatabaseError):
                    raise
                logger.error(
                    "Job %s: recording %s failed rows raised %s; they stay pending.",
                    job_id,
                    len(failed),
                    type(cause).__name__,
                )
                continue
            _set_up(importer)
            tried = ok[: len(ok) - len(rest)]  # the rest never ran: one batch again, after
            if rest:
                batches.appendleft((rest, []))
            if len(tried) > 1:
                batches.extendleft(
                    reversed([([item], failed if i == 0 else []) for i, item in enumerate(tried)])
                )
            elif once_more(tried[0][0], cause):
                batches.appendleft((tried, failed))
            else:
                row, cleaned = tried[0]
                batches.appendleft(([], [*failed, (row, importer.explain_error(cleaned, cause))]))
        except Exception:
            # Raised after the commit, by an on_commit callback (not registered robust=True):
            # the rows are in, and Django skipped the batch's later callbacks.
            logger.exception("Job %s: an on_commit callback failed after its rows committed.", job_id)
            if rest:
                batches.appendleft((rest, []))
        else:
            if rest:
                batches.appendleft((rest, []))
    return result


def _commit(
    importer: Importer,
    job_id: int,
    chunk_id: int,
    ok: list[Prepared],
    failed: list[Failure],
    rest: list[Prepared] | None = None,
) -> ChunkResult:
    """Commit the rows of ``ok`` and the failures of ``failed`` with their outcomes, in one
    transaction. If the write turn runs out first (one row at least is done), the rows left
    go into ``rest``, for another: set before the commit, whatever its callbacks raise."""
    if not ok and not failed:
        return ChunkResult()

    def write(deferred: bool) -> ChunkResult:
        with _transaction(deferred):
            return _write(importer, job_id, chunk_id, ok, failed, rest, deferred=deferred)

    if not (ok and rest is not None):
        return write(deferred=False)
    try:
        return write(deferred=True)
    except _Raced:  # rolled back: again, the chunk's record read first
        _set_up(importer)  # caches filled in the rolled-back transaction may name lost rows
        rest.clear()
        return write(deferred=False)


@contextlib.contextmanager
def _transaction(deferred: bool) -> Iterator[None]:
    """One transaction of ``_commit``'s, in a write turn taken at once or at its first
    statement (``deferred``). An error outside any row is ``_NotCommitted``, not taken for an
    ``on_commit`` callback's."""
    with rows_turn() if deferred else write_turn(), transaction.atomic():
        try:
            yield
        except (_RowFailed, DatabaseError, _Raced):
            raise
        except Exception as exc:
            raise _NotCommitted(exc) from exc


def _write(
    importer: Importer,
    job_id: int,
    chunk_id: int,
    ok: list[Prepared],
    failed: list[Failure],
    rest: list[Prepared] | None,
    *,
    deferred: bool = False,
) -> ChunkResult:
    """``_commit``'s work inside its transaction.

    ``deferred``: the rows are imported before the chunk's record is read and locked, and if
    another worker did one of them meanwhile, ``_Raced`` rolls them back. The transaction (and
    SQLite's write turn) starts at its first statement (``vendors.rows_turn``); a row that ran
    long before its first statement ends the transaction, so that the next row's time does not
    hold the turn either (``Vendor.alone_after``).
    """
    state = None if deferred else read_chunk(chunk_id)
    if state is None and not deferred:
        return ChunkResult()
    done = set(state[1] if state is not None else ())
    alone_after = vendors.for_alias().alone_after if deferred and not _only_writer else None
    imported: dict[str, str] = {}
    undone: dict[str, dict[str, Any]] = {}
    logged: list[tuple[models.Model, int | None]] = []
    for index, (row, cleaned) in enumerate(ok):
        if row.number in done:
            continue
        if imported and rest is not None and turn_is_over():
            rest += ok[index:]
            break
        try:
            importer.forget_last_row()
            started_row()
            obj = importer.import_row(fresh_values(cleaned))
            if obj.pk is not None and not (importer.deleted or importer.untouched):
                undone[str(row.number)] = _undo_record(importer, obj)
        except CONNECTION_ERRORS:
            raise
        except Exception as exc:
            if is_database_fault(exc):
                raise DatabaseFault(str(exc)) from exc
            raise _RowFailed(index, exc) from exc
        imported[str(row.number)] = "" if obj.pk is None else str(obj.pk)
        logged.append((obj, history.action_of(importer)))
        if alone_after is not None and rest is not None and ran_before_writing() >= alone_after:
            rest += ok[index + 1 :]
            break
    if state is None:  # deferred: the rows are in; now the record, locked until the commit
        state = read_chunk(chunk_id)
        done = set(state[1]) if state is not None else set()
        if state is None or not done.isdisjoint(int(number) for number in imported):
            raise _Raced
    size, _, object_pks, undo = state
    failures = [
        ImportRow(
            job_id=job_id,
            number=row.number,
            values=row.values,
            secret=crypto.seal(row.secret) if crypto.UNREADABLE not in row.secret else "",
            errors=errors,
        )
        for row, errors in failed
        if row.number not in done
    ]
    if not imported and not failures:
        return ChunkResult()
    ImportRow.objects.bulk_create(failures)
    LogEntry.objects.bulk_create(history.entries(job_id, _starter_id(importer), logged))
    done.update(int(number) for number in imported)
    done.update(row.number for row in failures)
    finished = len(done) >= size
    write_chunk(
        chunk_id,
        status=ChunkStatus.DONE if finished else ChunkStatus.PENDING,
        done_rows=[] if finished else sorted(done),
        object_pks={**object_pks, **imported},
        **({"undo": {**undo, **undone}} if undone else {}),
        **({"secret": ""} if finished else {}),
    )
    result = ChunkResult(len(imported) + len(failures), len(imported), len(failures))
    add_progress(job_id, result.processed, result.succeeded, result.failed)
    return result


#: Types whose values cannot change in place (nor hold what can): shared by the copies.
_IMMUTABLE = frozenset(
    {str, bytes, int, float, bool, type(None), Decimal, datetime.date, datetime.datetime, datetime.time}
    | {datetime.timedelta, uuid.UUID}
)


def fresh_values(cleaned: Cleaned) -> Cleaned:
    """A copy of a row's values for one import: after a rollback the row is imported again from
    the same values, so whatever ``import_row`` could change in place (a list, a dict, an
    object) is copied. Immutable values are shared: a deep copy of each cost a CPU-bound job
    about 2% of its time."""
    memo: dict[int, Any] = {}  # one for all values, so two that shared an object still do
    return {key: v if type(v) in _IMMUTABLE else copy.deepcopy(v, memo) for key, v in cleaned.items()}


def _undo_record(importer: Importer, obj: models.Model) -> dict[str, Any]:
    """How to undo a row: ``{"created": true}``, or the fields it changed on ``obj`` before and
    after (``{}``: it did not say, and it cannot be undone)."""
    if importer.created:
        return {"created": True}
    before = importer.replaced
    if before is None:
        return {}
    return {"before": before, "after": undo_values.snapshot(obj, before)}


def _starter_id(importer: Importer) -> Any:
    """Whose history the job writes: the person who started it (none for the command line)."""
    return None if importer.context.trusted else getattr(importer.context.user, "pk", None)


def fail_rows(job_id: int, chunk_id: int, numbers: Sequence[int], message: str) -> ChunkResult:
    """Record rows as failed without importing them (a row that keeps killing its worker)."""
    failures: list[Failure] = [
        (row, {"__all__": [message]}) for row in pending_rows(Unit(chunk_id, tuple(numbers)))
    ]
    try:
        return _commit(Importer(), job_id, chunk_id, [], failures)  # imports nothing: no setup()
    except _NotCommitted as exc:
        raise exc.exc from None
