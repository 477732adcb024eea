"""Celery: a job's chunks as tasks that any number of workers, on any number of hosts, pick up.

``BULKADMIN["LAUNCHER"] = "celery"`` switches a confirmed job (admin or ``bulkimport``) from the
detached local runner to these tasks; importers need no change. ``dispatch_job`` cuts the
pending rows into chunks and enqueues one ``import_chunk`` task each. A chunk task runs the very
code a local pool worker runs (``worker.import_chunk``): each row's outcome is committed with
its object after locking the row, so a chunk delivered twice (late acknowledgement after a
worker died) finishes its unfinished rows and skips the rest. No process pool is started inside
a task: Celery's prefork children are daemonic and the parallelism is the workers'.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

from celery import shared_task
from django.db import connections

from bulkadmin import conf
from bulkadmin.engine import JobNotRunnable, beat, claim_job
from bulkadmin.models import QUEUE_WORKERS, ImportJob, ImportRow, JobStatus, RowStatus
from bulkadmin.vendors import CONNECTION_ERRORS
from bulkadmin.worker import configure_threads, forget_job, import_chunk


def launch_celery(job: ImportJob) -> None:
    """The launcher: the job is queued; a worker cuts it into chunk tasks."""
    dispatch_job.delay(job.pk)


@shared_task(name="bulkadmin.dispatch_job", acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
def dispatch_job(job_id: int) -> int:
    """Claim the job and enqueue a task for every chunk of its pending rows."""
    try:
        claim_job(job_id, QUEUE_WORKERS)
    except JobNotRunnable:
        # Delivered again after the dispatching worker died: re-enqueue what is still pending.
        if not ImportJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).owned_by(QUEUE_WORKERS).exists():
            return 0
    size = int(conf.get("CHUNK_SIZE"))
    last_pk, chunks = 0, 0
    while True:
        ids = list(
            ImportRow.objects.filter(job_id=job_id, status=RowStatus.PENDING, pk__gt=last_pk)
            .order_by("pk")
            .values_list("pk", flat=True)[:size]
        )
        if not ids:
            break
        last_pk = ids[-1]
        import_chunk_task.delay(job_id, ids)
        chunks += 1
    if not chunks:
        ImportJob.objects.filter(pk=job_id).finish_if_done()
    return chunks


@shared_task(
    name="bulkadmin.import_chunk",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=CONNECTION_ERRORS,
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=10,
)  # type: ignore[untyped-decorator]
def import_chunk_task(job_id: int, row_ids: list[int]) -> int:
    """Import one chunk unless the job was cancelled; close the job after its last chunk."""
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
    configure_threads(int(conf.get("THREADS")))
    with heartbeat(job_id):
        result = import_chunk(job_id, row_ids)
    if jobs.finish_if_done():
        forget_job(job_id)
    return result.processed


def _reclaim(job_id: int) -> bool:
    """A chunk that reaches a worker proves the Celery job alive again.

    Chunks queued behind other jobs (or a lost host's, redelivered after the visibility
    timeout) beat no heartbeat while they wait, so the job can be marked stalled meanwhile;
    dropping them then would leave their rows pending until someone clicks Resume.
    """
    return bool(ImportJob.objects.filter(pk=job_id).owned_by(QUEUE_WORKERS).revive(QUEUE_WORKERS))


@contextlib.contextmanager
def heartbeat(job_id: int) -> Iterator[None]:
    """Beat while a chunk runs, so a slow chunk (real password hashing) never looks stalled."""
    stop = threading.Event()
    interval = float(conf.get("HEARTBEAT_SECONDS"))

    def keep_beating() -> None:
        try:
            while not stop.wait(interval):
                beat(job_id)
        finally:
            connections.close_all()

    thread = threading.Thread(target=keep_beating, name=f"bulkadmin-beat-{socket.gethostname()}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
