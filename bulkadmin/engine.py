"""The runner: feeds a job's pending rows, in chunks, to an executor and sees the job through.

One runner owns a job at a time (a conditional UPDATE claims it). It keeps a bounded number of
chunks in flight, so memory does not grow with the job; it beats a heartbeat so a dead runner
is noticed; it stops dispatching when the job is cancelled; it rebuilds a broken pool and
retries a chunk whose database connection failed. Counters are written by the workers, in the
same transaction as the rows they count.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from types import FrameType
from typing import Any, TypeVar

from django.db import DatabaseError, connections

from bulkadmin import conf, vendors
from bulkadmin.bootstrap import worker_ready
from bulkadmin.executors import InlineExecutor, make_executor
from bulkadmin.jobs import PreparationFailed, importer_for, prepare_job
from bulkadmin.launch import get_launcher, runs_in_foreground
from bulkadmin.models import ChunkStatus, ImportChunk, ImportJob, JobStatus, Owner, Statuses
from bulkadmin.notify import notify_starter
from bulkadmin.pool import WorkerPool
from bulkadmin.tuning import Step, ThreadTuner
from bulkadmin.units import PROBE_ROWS, Units, pending_chunks, unit_size
from bulkadmin.vendors import CONNECTION_ERRORS, runs_jobs, write_turn
from bulkadmin.worker import ChunkResult, Unit, fail_rows, forget_job, import_units, pending_rows

logger = logging.getLogger("bulkadmin")

#: A row that broke the pool this many times while running alone is failed.
FAIL_AFTER_BREAKS = 2
CANCEL_POLL_SECONDS = 0.5
DIED_MESSAGE = "The worker process died while importing this row."

ProgressCallback = Callable[[ChunkResult], None]
T = TypeVar("T")


class JobNotRunnable(Exception):
    pass


class _Stopped(Exception):
    """A cancel arrived while the rows were being read in."""


@dataclass
class Task:
    """One executor call: a unit of work (a chunk, or some of its rows); split when suspect."""

    unit: Unit
    breaks: int = 0
    retries: int = 0


@dataclass
class Settings:
    workers: int
    #: Threads per worker; None: picked while a pool runs the job (``tuning.ThreadTuner``).
    threads: int | None
    chunk_size: int

    @classmethod
    def resolve(
        cls, job: ImportJob, workers: int | None, threads: int | None, chunk_size: int | None
    ) -> Settings:
        workers = max(1, workers or job.workers or conf.get("WORKERS") or os.cpu_count() or 1)
        chosen = threads or job.threads or conf.get("THREADS")
        if not chosen and workers == 1:
            chosen = 1  # in-process: the plain loop, where a debugger's pause is not I/O
        return cls(
            workers=workers,
            threads=max(1, int(chosen)) if chosen else None,
            chunk_size=max(1, chunk_size or conf.chunk_size()),
        )


@dataclass
class JobRunner:
    job_id: int
    workers: int | None = None
    threads: int | None = None
    chunk_size: int | None = None
    on_progress: ProgressCallback | None = None
    #: Told the threads per worker the runner picked, and why, when nobody chose a number.
    on_threads_picked: Callable[[Step], None] | None = None
    handle_signals: bool = False
    _stop_reason: str = field(default="", init=False)
    _cancelled: bool = field(default=False, init=False)
    _heartbeat_stop: threading.Event = field(default_factory=threading.Event, init=False)

    # ---- lifecycle -----------------------------------------------------------------------
    def claim(self) -> ImportJob:
        return claim_job(self.job_id, self._owner())

    def run(self) -> ImportJob:
        job = self.claim()
        settings = Settings.resolve(job, self.workers, self.threads, self.chunk_size)
        with write_turn():
            ImportJob.objects.filter(pk=job.pk).update(workers=settings.workers, threads=settings.threads)
        previous = self._install_signal_handlers()
        heartbeat = threading.Thread(target=self._beat, name="bulkadmin-heartbeat", daemon=True)
        heartbeat.start()
        try:
            if job.prepared or self._prepare(job, settings.chunk_size):
                start_job_hooks(self.job_id)
                # Not around before_job and after_job: an importer's hooks may write anyhow.
                with runs_jobs():
                    self._dispatch(settings)
        except BaseException as exc:
            # The type only, for the job page: an exception's text may quote row values.
            self._stop_reason = self._stop_reason or (
                f"The runner failed ({type(exc).__name__}); see the job's log, then resume the job."
            )
            raise
        finally:
            self._heartbeat_stop.set()
            heartbeat.join()
            self._restore_signal_handlers(previous)
            forget_job(self.job_id)  # an in-process run (a task worker) keeps no caches
            job = self._finish()
        if job.status in Statuses.FINAL and job.status != JobStatus.CANCELLED:
            end_job_hooks(job)
        return job

    def _prepare(self, job: ImportJob, chunk_size: int) -> bool:
        """Read a confirmed upload's rows in; then run them here, or hand them to the launcher.

        Returns whether to go on and dispatch the rows in this process.
        """

        def stop_if_asked() -> None:
            if self._cancelled or self._cancel_requested():
                raise _Stopped

        try:
            prepare_job(job, size=chunk_size, after_save=stop_if_asked)
        except _Stopped:
            self._cancelled = True
            return False
        except PreparationFailed as exc:
            self._stop_reason = str(exc)
            return False
        launcher = get_launcher()
        if runs_in_foreground(launcher) or not ImportJob.objects.filter(pk=job.pk).hand_off(self._owner()):
            return True
        job.refresh_from_db()
        try:
            launcher(job)
        except Exception as exc:
            logger.exception("Job %s: the launcher could not take the job over.", job.pk)
            job.jobs.fail_launch(f"The runner could not be started: {exc}")
        return False

    def _finish(self) -> ImportJob:
        """Record how the run ended; waits out a database restart like a chunk does.

        If the database stays away, the error propagates and the job, still ``running`` with a
        heartbeat no one beats, turns crashed (and resumable) once that heartbeat is stale.
        """
        return _with_db_retries(self._record_end)

    def _record_end(self) -> ImportJob:
        ImportJob.objects.filter(pk=self.job_id).finish(self._owner(), self._stop_reason)
        return ImportJob.objects.get(pk=self.job_id)

    # ---- dispatch ------------------------------------------------------------------------
    def _dispatch(self, settings: Settings) -> None:
        counts = ImportJob.objects.filter(pk=self.job_id).values_list("total", "processed")
        try:
            total, processed = _with_db_retries(counts.get)
        except CONNECTION_ERRORS as exc:
            self._stop_reason = _database_gone(exc)
            return
        tuner = None
        if settings.threads is None:
            tuner = ThreadTuner(settings.workers, most_threads(settings.workers))
        elif settings.threads > 1:  # checked: CPU-bound rows get 1
            tuner = ThreadTuner(settings.workers, settings.threads, asked=True)
        executor = self._start_executor(settings, tuner)
        if executor is None:
            return

        def active_threads() -> int:
            return tuner.threads if tuner is not None else settings.threads or 1

        def slots() -> int:
            return settings.workers * active_threads()

        def unit_rows() -> int:
            """For all the active threads of all the workers, the rows left being ``left``."""
            return unit_size(settings.chunk_size, left, slots())

        left = total - processed
        units = Units(
            self.job_id,
            unit_rows(),
            fetch=partial(_with_db_retries_of, pending_chunks),
            probe=PROBE_ROWS if tuner is not None else 0,
            probe_every=settings.workers,
            pending=left,
            slots=slots(),
        )
        in_flight: dict[Future[ChunkResult], Task] = {}
        retries: list[Task] = []  # resubmitted before any new task
        suspects: list[Task] = []  # lost with a broken pool: each runs alone to find the culprit
        exhausted = False
        next_cancel_check = 0.0
        try:
            while True:
                if time.monotonic() >= next_cancel_check:
                    next_cancel_check = time.monotonic() + CANCEL_POLL_SECONDS
                    self._cancelled = self._cancelled or self._cancel_requested()
                stopping = self._cancelled or bool(self._stop_reason)
                # Every active thread of every worker takes the next unit when it is free; a
                # few more wait queued, so none idles between units.
                limit = settings.workers * active_threads() * int(conf.get("MAX_IN_FLIGHT_PER_WORKER"))
                while not stopping and len(in_flight) < limit:
                    if suspects:
                        if in_flight:
                            break
                        task = suspects.pop(0)
                    elif retries:
                        task = retries.pop(0)
                    elif not exhausted:
                        unit = self._next_unit(units)
                        if unit is None:
                            exhausted = True
                            # From here threads run out of work: a trial would measure that.
                            if tuner is not None and (step := tuner.conclude()) is not None:
                                self._report_pick(step)
                            continue
                        task = Task(unit)
                    else:
                        break
                    in_flight[executor.submit(import_units, self.job_id, [task.unit])] = task
                    if suspects or task.breaks:
                        break  # a suspect runs alone
                if not in_flight:
                    if tuner is not None and (step := tuner.conclude()) is not None:
                        self._report_pick(step)
                    break
                done, _ = wait(in_flight, timeout=CANCEL_POLL_SECONDS, return_when=FIRST_COMPLETED)
                if not done and tuner is not None and self._tune_running(tuner, executor):
                    units.resize(unit_rows(), slots())  # the rest is cut for the threads asked for
                broken = False
                failed: list[tuple[Task, Exception]] = []
                for future in done:
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken = True
                        continue
                    except CONNECTION_ERRORS as exc:
                        failed.append((in_flight.pop(future), exc))
                        continue
                    task = in_flight.pop(future)
                    left -= result.processed
                    units.finished(result)  # their pace tapers the last units
                    if self.on_progress:
                        self.on_progress(result)
                    if (
                        tuner is not None
                        and not (task.breaks or task.retries)
                        and self._tune(tuner, executor, result) is not None
                    ):
                        units.resize(unit_rows(), slots())  # more threads, or the pick: cut for them
                if tuner is not None and (failed or broken):
                    tuner.restart_window()  # waits and suspects run alone: not the rows' pace
                retries += self._after_connection_errors(failed)
                if broken:
                    suspects[:0] = self._after_break(list(in_flight.values()))
                    in_flight.clear()
                    executor.shutdown(wait=True, cancel_futures=True)
                    logger.warning("Job %s: a worker process died; restarting the pool.", self.job_id)
                    executor = self._start_executor(settings, tuner)
                    if executor is None:
                        return
        finally:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)

    def _tune(
        self, tuner: ThreadTuner, executor: InlineExecutor | WorkerPool, result: ChunkResult
    ) -> Step | None:
        step = tuner.observe(result, time.monotonic())
        if step is None:
            return None
        executor.set_threads(step.threads)
        if not step.final:
            logger.info("Job %s: trying %s threads per worker.", self.job_id, step.threads)
        else:
            self._report_pick(step)
        return step

    def _tune_running(self, tuner: ThreadTuner, executor: InlineExecutor | WorkerPool) -> bool:
        """In-process, the threads asked for, once the unit on the one thread shows rows that
        wait: they may be waiting for rows of the units queued behind it."""
        call = executor.longest_call() if isinstance(executor, InlineExecutor) else None
        step = None if call is None else tuner.observe_running(*call)
        if step is None:
            return False
        executor.set_threads(step.threads)
        self._report_pick(step)
        return True

    def _report_pick(self, step: Step) -> None:
        """Record the pick on the job, and say it once: to the listener (the command line), else
        in the log (a Tasks worker's runner)."""
        try:  # for the job page, and a resume; not worth stopping the job for
            with write_turn():
                ImportJob.objects.filter(pk=self.job_id).update(threads=step.threads)
        except DatabaseError as exc:
            logger.warning("Job %s: could not record the threads picked (%s).", self.job_id, exc)
            connections.close_all()
        if self.on_threads_picked:
            self.on_threads_picked(step)
        else:
            logger.info("Job %s: threads per worker: %s (%s).", self.job_id, step.threads, step.reason)

    def _start_executor(
        self, settings: Settings, tuner: ThreadTuner | None
    ) -> InlineExecutor | WorkerPool | None:
        """A new executor whose workers are shown to start; None (and the job stops) if they cannot.

        While threads are being picked, each worker (or this process, for one) starts the most
        it may use, all but ``tuner.threads`` of them parked.
        """
        if tuner is None:
            threads, active = settings.threads or 1, None
        elif tuner.done:
            threads, active = tuner.threads, None
        else:
            threads, active = tuner.most, tuner.threads
        executor = make_executor(self.job_id, workers=settings.workers, threads=threads, active=active)
        try:
            executor.submit(worker_ready).result()
        except BrokenProcessPool:
            executor.shutdown(wait=True, cancel_futures=True)
            self._stop_reason = (
                "The worker processes cannot start (see the job's log); resume the job once the "
                "cause is fixed."
            )
            return None
        return executor

    def _next_unit(self, units: Units) -> Unit | None:
        """The next unit of pending work; None at the end, or if the database stays away."""
        try:
            return next(units, None)
        except CONNECTION_ERRORS as exc:
            self._stop_reason = _database_gone(exc)
            return None

    def _after_break(self, lost: list[Task]) -> list[Task]:
        """Tasks lost with a broken pool, as suspects; a culprit found alone is split or failed."""
        if len(lost) != 1:
            for task in lost:
                task.breaks = max(task.breaks, 1)
            return lost
        task = lost[0]
        task.breaks += 1
        unit = task.unit
        numbers = unit.only or tuple(row.number for row in pending_rows(unit))
        if len(numbers) > 1:
            return [Task(Unit(unit.chunk_id, (number,)), breaks=1) for number in numbers]
        if task.breaks > FAIL_AFTER_BREAKS:
            fail_rows(self.job_id, unit.chunk_id, numbers, DIED_MESSAGE)
            return []
        return [task]

    def _after_connection_errors(self, failed: list[tuple[Task, Exception]]) -> list[Task]:
        """Tasks whose database connection failed, to retry after one wait shared by them all.

        The tasks in flight fail together when the database goes away; waiting once per task
        would add their delays up.
        """
        if not failed:
            return []
        delays = retry_delays()
        exc = failed[0][1]
        if any(task.retries >= len(delays) for task, _ in failed):
            self._stop_reason = _database_gone(exc)
            return [task for task, _ in failed]
        delay = max(delays[task.retries] for task, _ in failed)
        for task, _ in failed:
            task.retries += 1
        logger.warning(
            "Job %s: database error (%s); retrying %s chunks in %ss.", self.job_id, exc, len(failed), delay
        )
        time.sleep(delay)
        connections.close_all()
        return [task for task, _ in failed]

    def _cancel_requested(self) -> bool:
        """Whether to stop dispatching: a cancel, or another runner owns the job now.

        The second happens when this runner was thought dead (suspended past the stale limit)
        and the job was resumed meanwhile: the row locks keep rows exactly once, but two
        runners would do all the remaining work twice over.
        """
        try:
            jobs = ImportJob.objects.filter(pk=self.job_id)
            state = jobs.values_list("status", "runner_pid", "runner_host").first()
            if state is None:
                return True
            if state[0] == JobStatus.CRASHED and state[1] is None:
                # Marked dead while alive (a heartbeat held up): take the job back.
                if jobs.filter(runner_pid=None).revive(self._owner()):
                    return False
                state = jobs.values_list("status", "runner_pid", "runner_host").first() or state
        except DatabaseError:
            connections.close_all()
            return False
        status, runner_pid, runner_host = state
        if status in (JobStatus.CANCELLING, JobStatus.CANCELLED):
            return True
        if Owner(runner_pid, runner_host) != self._owner():
            self._stop_reason = self._stop_reason or "Another runner took the job over."
            return True
        return False

    @staticmethod
    def _owner() -> Owner:
        return Owner.this_process()

    # ---- heartbeat and signals -----------------------------------------------------------
    def _beat(self) -> None:
        interval = float(conf.get("HEARTBEAT_SECONDS"))
        try:
            while not self._heartbeat_stop.wait(interval):
                beat(self.job_id, self._owner())
        finally:
            connections.close_all()

    def _install_signal_handlers(self) -> dict[int, Any]:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _restore_signal_handlers(self, previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        logger.warning("Job %s: %s received; finishing the chunks in flight.", self.job_id, name)
        self._stop_reason = f"The runner was stopped ({name}); resume the job to finish it."


def most_threads(workers: int) -> int:
    """The most threads per worker to try: ``MAX_AUTO_THREADS``, within half the database's
    connections (the site keeps the rest)."""
    most = max(1, int(conf.get("MAX_AUTO_THREADS")))
    limit = vendors.for_alias().connection_limit(connections["default"])
    return most if limit is None else max(1, min(most, limit // 2 // workers))


def start_job_hooks(job_id: int) -> None:
    """The importer's ``before_job``, before the job's first row (again only if none was done)."""
    job = ImportJob.objects.get(pk=job_id)
    if job.succeeded or ImportChunk.objects.filter(job_id=job_id, status=ChunkStatus.DONE).exists():
        return
    importer_for(job).before_job()


def end_job_hooks(job: ImportJob) -> None:
    """Once the job's last row is done: the importer's ``after_job``, then the starter's email.
    A failure of either is logged; the rows are in."""
    try:
        importer_for(job).after_job(job.total)
    except Exception:
        logger.exception("Job %s: the importer's after_job failed.", job.pk)
    notify_starter(job)


def beat(job_id: int, owner: Owner | None = None) -> None:
    """One heartbeat. It outlives any error, or a live job would look dead."""
    try:
        ImportJob.objects.filter(pk=job_id).beat(owner)
    except Exception as exc:
        lost = isinstance(exc, CONNECTION_ERRORS)  # expected in an outage: no traceback
        logger.warning("Job %s: the heartbeat failed (%s).", job_id, exc, exc_info=not lost)
        connections.close_all()


def retry_delays() -> tuple[float, ...]:
    return tuple(float(delay) for delay in conf.get("DB_RETRY_DELAYS"))


def _with_db_retries(query: Callable[[], T]) -> T:
    """Run ``query``, reconnecting and retrying after each of the configured delays."""
    for delay in (*retry_delays(), None):
        try:
            return query()
        except CONNECTION_ERRORS:
            connections.close_all()
            if delay is None:
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")


def _database_gone(exc: Exception) -> str:
    return f"The database kept failing ({exc}); resume the job once it is back."


def claim_job(job_id: int, owner: Owner) -> ImportJob:
    """Take the job if it may start, or say why it may not."""
    claimed = ImportJob.objects.filter(pk=job_id).claim(owner)
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is None:
        raise JobNotRunnable(f"There is no import job {job_id}.")
    if not claimed:
        raise JobNotRunnable(
            f"Import job {job_id} is {job.get_status_display().lower()}"
            + (" with no row pending" if job.status == JobStatus.CANCELLED else "")
            + "; only a new, queued, crashed or cancelled job with rows pending can be run."
        )
    return job


def _with_db_retries_of(query: Callable[..., T], *args: Any) -> T:
    return _with_db_retries(partial(query, *args))
