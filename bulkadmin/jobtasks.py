"""Django's Tasks framework as a launcher: ``BULKADMIN["LAUNCHER"] = "tasks"``.

A confirmed job is enqueued as one task, ``run_job``, which a worker (``manage.py db_worker``
with django-tasks-db) runs: the same runner as ``runbulkjob``, with its process pool, heartbeat,
cancel, retries and finish. A worker killed mid-job leaves its task behind (django-tasks-db
never delivers a task twice), so ``run_job`` first sends a deferred ``watch_job``: once the
job's heartbeat is stale, another worker takes the job over and finishes it, every row once.
With no other worker, the job turns crashed and Resume enqueues it again.

``django.tasks`` on Django 6, the django-tasks backport on 5.2. A backend that runs tasks in
the caller (the immediate backend) or never (the dummy backend) would run or lose a job inside
the web request: the launch falls back to the detached subprocess, and ``manage.py check``
warns (bulkadmin.W002).
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
from datetime import timedelta
from typing import Any

from django.utils import timezone

from bulkadmin import conf
from bulkadmin.models import ImportJob, JobStatus, Statuses

logger = logging.getLogger("bulkadmin")

if importlib.util.find_spec("django.tasks") is not None:  # Django 6+
    from django.tasks import task, task_backends
else:  # Django 5.2 with the django-tasks backport
    from django_tasks import task, task_backends  # type: ignore[no-redef,import-not-found,assignment,unused-ignore]

#: Backends that never hand a task to another process.
INLINE_BACKENDS = ("ImmediateBackend", "DummyBackend")


def backend_runs_inline(alias: str = "default") -> bool:
    """Whether the task backend would run a job in the request (or drop it): no real worker."""
    return any(type(task_backends[alias]).__name__ == name for name in INLINE_BACKENDS)


@task
def run_job(job_id: int) -> str:
    """Run a job's pending rows in this worker, with a process pool when the worker may fork one.

    First it sends a watch (``watch_job``, deferred): should this worker's host die mid-job,
    another worker takes the job over once its heartbeat is stale, with no one clicking Resume.
    """
    schedule_watch(job_id)
    return _run(job_id)


@task
def watch_job(job_id: int) -> str:
    """Take over a job whose runner went silent; while it is alive, look again later."""
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is None or job.status not in Statuses.WATCHED | {JobStatus.CRASHED}:
        return "done"
    if not job.is_stale and job.status != JobStatus.CRASHED:
        schedule_watch(job_id)
        return "alive"
    logger.warning("Job %s: its runner went silent; this worker takes it over.", job_id)
    schedule_watch(job_id)
    return _run(job_id)


def schedule_watch(job_id: int) -> None:
    backend = task_backends["default"]
    if getattr(backend, "supports_defer", False):
        delay = timedelta(seconds=float(conf.get("STALE_AFTER_SECONDS")))
        watch_job.using(run_after=timezone.now() + delay).enqueue(job_id)


def _run(job_id: int) -> str:
    from bulkadmin.engine import JobNotRunnable, JobRunner

    workers = 1 if multiprocessing.current_process().daemon else None  # daemonic: no children
    try:
        job = JobRunner(job_id, workers=workers).run()
    except JobNotRunnable as exc:  # cancelled or taken over meanwhile: nothing to do
        logger.info("Job %s: %s", job_id, exc)
        return "not runnable"
    return str(job.status)


class TasksLauncher:
    """Enqueue the job's runner as a task; fall back to the subprocess without a real worker."""

    @property
    def runs_in_foreground(self) -> bool:
        return backend_runs_inline()

    def __call__(self, job: ImportJob) -> Any:
        from bulkadmin.launch import launch_subprocess

        if backend_runs_inline():
            logger.warning(
                "Job %s: the task backend runs tasks in the caller; starting a detached runner instead.",
                job.pk,
            )
            return launch_subprocess(job)
        return run_job.enqueue(job.pk)


launch_task = TasksLauncher()
