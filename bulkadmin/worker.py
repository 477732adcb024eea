"""What runs in a worker: one chunk of rows, each row's outcome in the same transaction as its object.

Used by the local process pool (``bootstrap.initialize_worker`` prepares each worker),
in-process for ``--workers 1``, and by Celery chunk tasks. A chunk is committed in as few
transactions as possible: all its rows in one, and when a row fails, the rows before it are
committed together, the failing row is recorded alone and the rest go on, so a bad row never
undoes or blocks its neighbours.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import DatabaseError, connection, connections, transaction
from django.utils.module_loading import import_string

from bulkadmin import conf, crypto, vendors
from bulkadmin.importers.base import Cleaned, Errors, Importer, RowInvalid
from bulkadmin.jobs import importer_for
from bulkadmin.models import ImportJob, ImportRow, RowStatus
from bulkadmin.vendors import CONNECTION_ERRORS, DatabaseFault, is_database_fault, write_turn

logger = logging.getLogger("bulkadmin")


@dataclass(frozen=True)
class ChunkResult:
    processed: int = 0
    succeeded: int = 0
    failed: int = 0

    def __add__(self, other: ChunkResult) -> ChunkResult:
        return ChunkResult(
            self.processed + other.processed,
            self.succeeded + other.succeeded,
            self.failed + other.failed,
        )


# ---- per-process state ---------------------------------------------------------------------
_importers: dict[int, Importer] = {}
_importers_lock = threading.Lock()
_gang: ThreadGang | None = None


def configure_threads(threads: int) -> None:
    global _gang
    if _gang is not None and _gang.size != threads:
        _gang.shutdown()
        _gang = None
    if threads > 1 and _gang is None:
        _gang = ThreadGang(threads)


def get_importer(job_id: int) -> Importer:
    """The job's importer for this process, set up on first use (once per process)."""
    with _importers_lock:
        importer = _importers.get(job_id)
        if importer is None:
            job = ImportJob.objects.select_related("created_by").get(pk=job_id)
            importer = importer_for(job)
            importer.setup()
            hook = conf.get("SETUP_HOOK")
            if hook:
                import_string(hook)(importer)
            _importers[job_id] = importer
        return importer


def forget_job(job_id: int) -> None:
    """Drop a finished job's importer and its caches: queue workers run for weeks."""
    with _importers_lock:
        _importers.pop(job_id, None)


# ---- threads within a worker process -------------------------------------------------------
class ThreadGang:
    """Long-lived threads, each with its own database connection, closed when the thread ends."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._tasks: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._loop, name=f"bulkadmin-{i}", daemon=True) for i in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def _loop(self) -> None:
        try:
            while (task := self._tasks.get()) is not None:
                fn, future = task
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn())
                    except BaseException as exc:
                        future.set_exception(exc)
        finally:
            connections.close_all()

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        futures = []
        for item in items:
            future: Future[Any] = Future()
            self._tasks.put((partial(fn, item), future))
            futures.append(future)
        return [f.result() for f in futures]

    def shutdown(self) -> None:
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join()


# ---- one chunk -----------------------------------------------------------------------------
def import_chunk(job_id: int, row_ids: Sequence[int]) -> ChunkResult:
    """Import the still-pending rows among ``row_ids``; safe to call again for the same ids."""
    importer = get_importer(job_id)
    if _gang is None or len(row_ids) < 2:
        return _import_rows(importer, job_id, row_ids)
    slices = [list(row_ids[i :: _gang.size]) for i in range(_gang.size)]

    def run(ids: list[int]) -> ChunkResult:
        return _import_rows(importer, job_id, ids)

    results = _gang.map(run, [s for s in slices if s])
    total = ChunkResult()
    for result in results:
        total += result
    return total


Prepared = tuple[ImportRow, Cleaned]
Failure = tuple[ImportRow, Errors]


class _RowFailed(Exception):
    def __init__(self, index: int, exc: Exception) -> None:
        super().__init__(index, exc)
        self.index = index
        self.exc = exc


def _import_rows(importer: Importer, job_id: int, row_ids: Sequence[int]) -> ChunkResult:
    try:
        rows = list(ImportRow.objects.pending().filter(job_id=job_id, pk__in=list(row_ids)).order_by("pk"))
        ready, failures = _prepare(importer, rows)
        return _commit_all(importer, job_id, ready, failures)
    except DatabaseError as exc:
        if not is_database_fault(exc):
            raise
        connections.close_all()  # reconnect on the next chunk
        if isinstance(exc, CONNECTION_ERRORS):
            raise
        raise DatabaseFault(str(exc)) from exc  # what the runner and Celery retry


def _prepare(importer: Importer, rows: list[ImportRow]) -> tuple[list[Prepared], list[Failure]]:
    """Clean and prepare rows outside any transaction: CPU work holds no locks."""
    ready: list[Prepared] = []
    failures: list[Failure] = []
    for row in rows:
        try:
            values = {**row.values, **crypto.unseal(row.secret)}
            ready.append((row, importer.prepare_row(importer.clean_row(values))))
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
            logger.warning("Job %s row %s: preparing it raised %s.", row.job_id, row.number, kind)
            failures.append((row, {"__all__": [f"This row could not be prepared ({kind})."]}))
    return ready, failures


def _commit_all(
    importer: Importer, job_id: int, ready: list[Prepared], failures: list[Failure]
) -> ChunkResult:
    result = ChunkResult()
    batches: deque[tuple[list[Prepared], list[Failure]]] = deque([(ready, failures)])
    while batches:
        ok, failed = batches.popleft()
        try:
            result += _commit(importer, job_id, ok, failed)
        except _RowFailed as failure:
            importer.setup()  # caches filled in the rolled-back transaction may name lost rows
            index = failure.index
            if index > 0:  # commit the rows before the failing one, then go on from it
                batches.appendleft((ok[index:], []))
                batches.appendleft((ok[:index], failed))
            else:  # it ran first in a fresh transaction: the failure is its own
                row, cleaned = ok[0]
                errors = importer.explain_error(cleaned, failure.exc)
                batches.appendleft((ok[1:], [*failed, (row, errors)]))
        except CONNECTION_ERRORS:
            raise
        except DatabaseError as exc:
            # The COMMIT itself failed (a foreign key, deferred until then): which row is
            # unknown, so each is committed alone until the culprit fails by itself.
            if is_database_fault(exc) or not ok:
                raise
            importer.setup()
            if len(ok) > 1:
                batches.extendleft(
                    reversed([([item], failed if i == 0 else []) for i, item in enumerate(ok)])
                )
            else:
                row, cleaned = ok[0]
                batches.appendleft(([], [*failed, (row, importer.explain_error(cleaned, exc))]))
        except Exception:
            # Raised after the commit, by an on_commit callback (not registered robust=True):
            # the rows are in, and Django skipped the batch's later callbacks.
            logger.exception("Job %s: an on_commit callback failed after its rows committed.", job_id)
    return result


def _commit(importer: Importer, job_id: int, ok: list[Prepared], failed: list[Failure]) -> ChunkResult:
    if not ok and not failed:
        return ChunkResult()
    with write_turn(), transaction.atomic():
        ids = [row.pk for row, _ in ok] + [row.pk for row, _ in failed]
        # Locks the rows (PostgreSQL; SQLite's IMMEDIATE transaction locks the database), so
        # a row another runner finished meanwhile is seen as done and skipped: exactly once.
        # No ordering (the default would join the job): lock these rows only, never the job's
        # row, which every chunk shares.
        pending = set(
            vendors.for_alias()
            .lock(ImportRow.objects.filter(pk__in=ids, status=RowStatus.PENDING).order_by())
            .values_list("pk", flat=True)
        )
        done: list[tuple[int, str]] = []
        failures: list[ImportRow] = []
        for index, (row, cleaned) in enumerate(ok):
            if row.pk not in pending:
                continue
            try:
                # A copy: after a rollback the row is imported again, from the same values.
                obj = importer.import_row(copy.deepcopy(cleaned))
            except CONNECTION_ERRORS:
                raise
            except Exception as exc:
                if is_database_fault(exc):
                    raise DatabaseFault(str(exc)) from exc
                raise _RowFailed(index, exc) from exc
            done.append((row.pk, str(obj.pk)))
        for row, errors in failed:
            if row.pk in pending:
                row.status, row.errors, row.attempts = RowStatus.FAILED, errors, row.attempts + 1
                failures.append(row)
        if not done and not failures:
            return ChunkResult()
        _mark_succeeded(done)
        if failures:
            ImportRow.objects.bulk_update(failures, ["status", "errors", "attempts"])
        result = ChunkResult(len(done) + len(failures), len(done), len(failures))
        ImportJob.objects.filter(pk=job_id).add_progress(result.processed, result.succeeded, result.failed)
    return result


def _mark_succeeded(done: list[tuple[int, str]]) -> None:
    """One statement per batch of imported rows: only ``object_pk`` differs between them."""
    vendors.for_alias().update_from_values(
        connection,
        ImportRow,
        "status = %s, object_pk = v.new_object_pk, secret = '', errors = '{}', attempts = attempts + 1",
        ("row_id", "new_object_pk"),
        done,
        [RowStatus.SUCCEEDED],
    )
