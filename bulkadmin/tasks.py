"""Celery: a job's chunks as tasks that any number of workers, on any number of hosts, pick up.

``BULKADMIN["LAUNCHER"] = "celery"`` switches a confirmed job (admin or ``bulkimport``) from the
detached local runner to these tasks; importers need no change. ``dispatch_job`` cuts the
pending chunks into ``import_chunks`` tasks (``THREADS`` chunks each, one per thread). A task runs the very
code a local pool worker runs (``worker.import_units``): a chunk's outcome is committed with its
objects after locking the chunk, so a chunk delivered twice (late acknowledgement after a
worker died) finishes its unfinished rows and skips the rest. No process pool is started inside
a task: Celery's prefork children are daemonic and the parallelism is the workers'.

A worker host that dies takes its chunks with it until the broker's visibility timeout (an hour
on Redis). Chunk tasks beat each chunk they hold; the chunk tasks that follow, and a
``watch_job`` task every ``STALE_AFTER_SECONDS``, send a silent chunk again, so the surviving
workers finish the job within about a minute, with no one clicking Resume.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
from collections.abc import Iterable, Iterator

from celery import Task, shared_task
from django.db import DatabaseError, connections

from bulkadmin import conf
from bulkadmin.engine import (
    JobNotRunnable,
    beat,
    claim_job,
    end_job_hooks,
    retry_delays,
    start_job_hooks,
)
from bulkadmin.models import QUEUE_WORKERS, ImportChunk, ImportJob, ImportJobQuerySet, JobStatus, stale_before
from bulkadmin.units import iter_units
from bulkadmin.vendors import CONNECTION_ERRORS
from bulkadmin.worker import Unit, configure_threads, forget_job, import_units

logger = logging.getLogger("bulkadmin")


class CeleryLauncher:
    """The job is queued; a worker cuts it into chunk tasks (``dispatch_job``)."""

    runs_in_foreground = False

    def __call__(self, job: ImportJob) -> None:
        dispatch_job.delay(job.pk)


launch_celery = CeleryLauncher()


@shared_task(name="bulkadmin.dispatch_job", acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
def dispatch_job(job_id: int) -> int:
    """Claim the job and enqueue a task for every chunk of its pending rows."""
    try:
        claim_job(job_id, QUEUE_WORKERS)
    except JobNotRunnable:
        # Delivered again after the dispatching worker died: re-enqueue what is still pending.
        if not ImportJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).owned_by(QUEUE_WORKERS).exists():
            return 0
    start_job_hooks(job_id)
    tasks = enqueue(job_id, iter_units(job_id, conf.chunk_size()))
    if not tasks:
        _finish_if_done(ImportJob.objects.filter(pk=job_id))
    else:
        watch_job.apply_async((job_id,), countdown=watch_interval())
    return tasks


def _finish_if_done(jobs: ImportJobQuerySet) -> bool:
    """The chunk that completes the job finishes it, and runs the importer's after_job."""
    job_id = jobs.values_list("pk", flat=True).first()
    if job_id is None or not jobs.finish_if_done():
        return False
    end_job_hooks(ImportJob.objects.get(pk=job_id))
    return True


def enqueue(job_id: int, units: Iterable[Unit]) -> int:
    """Send units of work as tasks of ``THREADS`` units each (one per worker thread)."""
    remaining = iter(units)
    tasks = 0
    while batch := list(itertools.islice(remaining, conf.fixed_threads())):
        import_chunks_task.delay(job_id, [[unit.chunk_id, unit.only] for unit in batch])
        tasks += 1
    return tasks


def watch_interval() -> float:
    return float(conf.get("STALE_AFTER_SECONDS"))


def recover_lost_chunks(job_id: int, *, unstarted: bool = False) -> int:
    """Send again the chunks a dead worker host held, so the surviving workers finish the job.

    Without this they would come back only after the broker's visibility timeout (an hour on
    Redis by default). Sending a chunk twice is harmless: its record keeps each row once.
    """
    lost = ImportChunk.objects.filter(job_id=job_id).take_lost(unstarted=unstarted)
    if lost:
        logger.warning(
            "Job %s: %s chunks went silent on their workers; sending them again.", job_id, len(lost)
        )
        enqueue(job_id, [Unit(pk) for pk in lost])
    return len(lost)


@shared_task(name="bulkadmin.watch_job", acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
def watch_job(job_id: int) -> int:
    """Every ``STALE_AFTER_SECONDS`` while a job runs on the queue: recover what a dead host lost.

    When no chunk has moved for that long (the job's heartbeat is stale), chunks no worker has
    started are sent again too: their messages may have died with a worker's prefetch.
    """
    jobs = ImportJob.objects.filter(pk=job_id).owned_by(QUEUE_WORKERS)
    job = jobs.filter(status__in=[JobStatus.RUNNING, JobStatus.CRASHED]).first()
    if job is None:
        return 0
    idle = job.heartbeat_at is None or job.heartbeat_at < stale_before()
    recovered = recover_lost_chunks(job_id, unstarted=idle)
    if recovered and job.status == JobStatus.CRASHED:
        jobs.revive(QUEUE_WORKERS)  # stalled, now moving again
    if ImportChunk.objects.filter(job_id=job_id).pending().exists():
        watch_job.apply_async((job_id,), countdown=watch_interval())
    elif _finish_if_done(jobs):
        forget_job(job_id)
    return recovered


@shared_task(name="bulkadmin.import_chunks", bind=True, acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
def import_chunks_task(self: Task, job_id: int, units: list[tuple[int, list[int] | None]]) -> int:
    """Import units of work (one per thread) unless the job was cancelled; finish the job after the last.

    A database error is retried after each of ``DB_RETRY_DELAYS``, as the local runner does;
    then the chunks stay pending and the job turns stalled, for Resume.
    """
    jobs = ImportJob.objects.filter(pk=job_id)
    status = jobs.values_list("status", flat=True).first()
    if status == JobStatus.CRASHED and _reclaim(job_id):
        status = JobStatus.RUNNING
    if status in (JobStatus.CANCELLING, JobStatus.CANCELLED):
        jobs.acknowledge_cancel()
        forget_job(job_id)
        return 0
    if status != JobStatus.RUNNING:
        forget_job(job_id)
        return 0  # crashed and not resumed, or already finished: leave its rows pending
    configure_threads(conf.fixed_threads())
    chunk_ids = [chunk_id for chunk_id, _only in units]
    try:
        with heartbeat(job_id, chunk_ids):
            result = import_units(
                job_id,
                [Unit(chunk_id, tuple(only) if only is not None else None) for chunk_id, only in units],
            )
    except CONNECTION_ERRORS as exc:
        connections.close_all()
        delays = retry_delays()
        if self.request.retries >= len(delays):
            raise
        raise self.retry(exc=exc, countdown=delays[self.request.retries], max_retries=len(delays)) from exc
    if _finish_if_done(jobs):
        forget_job(job_id)
    elif (
        not recover_lost_chunks(job_id) and not ImportChunk.objects.filter(job_id=job_id).unstarted().exists()
    ):
        # The queue holds no more of this job: if a dead host held the rest, no later chunk
        # task will notice; a watch will (the dispatch's own may have died with that host).
        watch_job.apply_async((job_id,), countdown=watch_interval())
    return result.processed


def _reclaim(job_id: int) -> bool:
    """A chunk that reaches a worker proves the Celery job alive again.

    Chunks queued behind other jobs (or a lost host's, redelivered after the visibility
    timeout) beat no heartbeat while they wait, so the job can be marked stalled meanwhile;
    dropping them then would leave their rows pending until someone clicks Resume.
    """
    return bool(ImportJob.objects.filter(pk=job_id).owned_by(QUEUE_WORKERS).revive(QUEUE_WORKERS))


@contextlib.contextmanager
def heartbeat(job_id: int, chunk_ids: list[int]) -> Iterator[None]:
    """Beat the job and its chunks while they run: a slow chunk (real password hashing) never
    looks stalled, and a silent one is known to be lost with its worker."""
    stop = threading.Event()
    interval = float(conf.get("HEARTBEAT_SECONDS"))
    chunks = ImportChunk.objects.filter(pk__in=chunk_ids)
    chunks.beat()

    def keep_beating() -> None:
        try:
            while not stop.wait(interval):
                beat(job_id)
                try:
                    chunks.beat()
                except DatabaseError:
                    connections.close_all()
        finally:
            connections.close_all()

    thread = threading.Thread(target=keep_beating, name=f"bulkadmin-beat-{socket.gethostname()}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
