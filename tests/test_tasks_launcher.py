"""Django's Tasks framework as the launcher: jobs run by real ``db_worker`` processes.

The task backend is django-tasks-db's database backend (the demo's); a worker killed mid-job
leaves the job resumable, and a backend that would run a job inside the request is refused.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model

from bulkadmin import launch
from bulkadmin.checks import check_settings
from bulkadmin.models import ImportJob, JobStatus
from tests.conftest import manage, spawn, wait_until
from tests.test_engine import make_job
from tests.test_faults import assert_exactly_once
from tests.testapp.models import SignalRecord

User = get_user_model()
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def tasks_launcher(settings):
    settings.BULKADMIN = {**settings.BULKADMIN, "LAUNCHER": "tasks"}


@pytest.fixture
def db_worker():
    """``manage.py db_worker`` processes, as the README runs them; killed with their pools after."""
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        args = [
            sys.executable,
            "manage.py",
            "db_worker",
            "--interval",
            "0.2",
            "--no-startup-delay",
            "--no-reload",
        ]
        process = spawn(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def wait_final(job: ImportJob, timeout: float = 120) -> ImportJob:
    wait_until(lambda: ImportJob.objects.get(pk=job.pk).is_final, timeout=timeout, interval=0.1)
    job.refresh_from_db()
    return job


def task_results() -> int:
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.count()


def test_a_confirmed_job_runs_as_a_task_on_a_db_worker(users_csv, knobs, db_worker):
    knobs(record_signals="1")
    job = make_job(users_csv(300))
    assert launch.launch_job(job)
    assert task_results() == 1  # enqueued, not run here (the watch is sent by the worker)
    assert ImportJob.objects.get(pk=job.pk).status == JobStatus.QUEUED

    db_worker()
    job = wait_final(job)

    assert_exactly_once(job, 300)
    assert os.getpid() not in set(SignalRecord.objects.values_list("pid", flat=True))


def test_a_db_worker_killed_mid_job_leaves_it_resumable_and_resume_finishes_it(users_csv, knobs, db_worker):
    knobs(record_signals="1", row_delay="0.01")
    job = make_job(users_csv(300))
    assert launch.launch_job(job)
    worker = db_worker()
    wait_until(lambda: ImportJob.objects.get(pk=job.pk).processed >= 40)
    os.killpg(worker.pid, signal.SIGKILL)  # the worker, its runner and its pool
    worker.wait(timeout=30)

    # django-tasks-db never runs a task twice: the job's stale heartbeat says it crashed.
    wait_until(lambda: ImportJob.objects.filter(pk=job.pk).stale().exists(), timeout=30, interval=0.2)
    assert ImportJob.objects.filter(pk=job.pk).mark_stale_crashed() == 1
    job.refresh_from_db()
    assert job.is_resumable and job.processed < 300

    knobs(row_delay="0")
    assert launch.launch_job(job)  # what Resume does: a new task
    db_worker()
    assert_exactly_once(wait_final(job), 300)


def test_when_the_worker_running_a_job_dies_another_worker_takes_it_over(users_csv, knobs, db_worker):
    knobs(record_signals="1", row_delay="0.01")
    job = make_job(users_csv(300))
    assert launch.launch_job(job)
    workers = [db_worker(), db_worker()]
    wait_until(lambda: ImportJob.objects.get(pk=job.pk).processed >= 40)
    running = ImportJob.objects.get(pk=job.pk).runner_pid
    assert running is not None
    victim = next(worker for worker in workers if worker.pid == os.getpgid(running))
    os.killpg(victim.pid, signal.SIGKILL)  # the host running the job, its runner and its pool
    victim.wait(timeout=30)

    # No Resume: the survivor's watch sees the heartbeat go stale (5 s here) and takes over.
    job = wait_final(job, timeout=120)

    assert_exactly_once(job, 300)


def test_bulkimport_enqueues_the_job_and_follows_it(users_csv, db_worker):
    db_worker()
    result = manage("bulkimport", str(users_csv(120)), env={"BULKADMIN_LAUNCHER": "tasks"}, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "succeeded: 120 succeeded, 0 failed" in result.stdout
    assert User.objects.count() == 120


TASKS_MODULE = "django.tasks" if importlib.util.find_spec("django.tasks") else "django_tasks"
IMMEDIATE = {"default": {"BACKEND": f"{TASKS_MODULE}.backends.immediate.ImmediateBackend"}}


def test_a_backend_that_runs_tasks_in_the_request_is_never_used(users_csv, knobs, settings):
    knobs(record_signals="1")
    settings.TASKS = IMMEDIATE
    assert "bulkadmin.W002" in [message.id for message in check_settings()]

    job = make_job(users_csv(20))
    assert launch.launch_job(job)  # a detached runner instead of the task, in this "request"
    job = wait_final(job)

    assert (job.status, job.succeeded) == (JobStatus.SUCCEEDED, 20)
    assert os.getpid() not in set(SignalRecord.objects.values_list("pid", flat=True))
    assert task_results() == 0
