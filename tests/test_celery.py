"""Chunks on real Celery workers: two worker processes on this machine's Redis stand for two hosts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count

from bulkadmin.models import ImportJob, ImportRow, JobStatus
from bulkadmin.tasks import launch_celery
from tests.conftest import import_rows, manage, row_outcomes, spawn, wait_until
from tests.test_database_outage import RUNNER_ENV, blip
from tests.test_engine import make_job
from tests.testapp.models import SignalRecord

User = get_user_model()
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _empty_queue():
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.ping()  # fail, not skip, without Redis
    client.flushdb()
    yield
    client.flushdb()
    client.close()


@pytest.fixture
def workers():
    started: list[subprocess.Popen[bytes]] = []

    def start(
        count: int = 2, *, name: str = "w", env: dict[str, str] | None = None
    ) -> list[subprocess.Popen[bytes]]:
        for index in range(count):
            worker = [sys.executable, "-m", "celery", "-A", "mysite", "worker", "--concurrency", "1"]
            options = ["--loglevel", "WARNING", "--hostname", f"{name}{index}-{os.getpid()}@%h"]
            quiet = ["--without-gossip", "--without-mingle", "--without-heartbeat"]
            started.append(
                spawn(
                    [*worker, *options, *quiet],
                    env={"BULKADMIN_TEST_CHUNK_SIZE": "20", **(env or {})},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        return started[-count:]

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def launch(job: ImportJob) -> None:
    ImportJob.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED)
    launch_celery(job)


def wait_final(job: ImportJob, timeout: float = 120) -> ImportJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.is_final:
            return job
        time.sleep(0.2)
    rows = Counter(row_outcomes(job).values())
    queued = redis.Redis.from_url(settings.CELERY_BROKER_URL).llen(settings.CELERY_TASK_DEFAULT_QUEUE)
    raise AssertionError(
        f"job still {job.status} with {job.processed}/{job.total} rows; rows {rows}; {queued} queued"
    )


def assert_exactly_once(job: ImportJob, count: int) -> None:
    assert (job.processed, job.succeeded, job.failed) == (count, count, 0)
    assert User.objects.count() == count
    posts = SignalRecord.objects.filter(signal="post")
    assert posts.count() == count
    assert not posts.values("username").annotate(n=Count("id")).filter(n__gt=1).exists()


def test_a_job_spreads_over_two_workers(users_csv, knobs, workers):
    knobs(record_signals="1")
    job = make_job(users_csv(400))
    workers(2)
    launch(job)
    job = wait_final(job)
    assert job.status == JobStatus.SUCCEEDED
    assert_exactly_once(job, 400)
    assert SignalRecord.objects.values("pid").distinct().count() >= 2, "both workers took chunks"


def test_a_worker_killed_mid_job_and_the_job_still_finishes_exactly_once(users_csv, knobs, workers):
    knobs(record_signals="1", row_delay="0.01")
    job = make_job(users_csv(400))
    first, _second = workers(2)
    launch(job)
    deadline = time.monotonic() + 60
    while ImportJob.objects.get(pk=job.pk).processed < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)  # the worker and its pool child, mid-chunk
    first.wait(timeout=30)
    job = wait_final(job, timeout=180)
    assert job.status == JobStatus.SUCCEEDED
    assert_exactly_once(job, 400)
    assert set(row_outcomes(job).values()) == {"succeeded"}


def test_a_dead_worker_host_s_chunks_are_finished_by_the_others_without_resume(users_csv, knobs, workers):
    """The broker would give the dead host's chunk back after an hour: the survivors do not wait."""
    knobs(record_signals="1", row_delay="0.01")
    job = make_job(users_csv(400))
    hour = {"BULKADMIN_TEST_VISIBILITY_TIMEOUT": "3600"}
    first, _second = workers(2, env=hour)
    launch(job)
    wait_until(lambda: ImportJob.objects.get(pk=job.pk).processed >= 60)
    os.killpg(first.pid, signal.SIGKILL)  # the host, mid-chunk
    first.wait(timeout=30)

    job = wait_final(job, timeout=90)  # STALE_AFTER_SECONDS is 5 here; an hour is the broker's

    assert job.status == JobStatus.SUCCEEDED
    assert_exactly_once(job, 400)


def test_a_database_outage_mid_job_is_waited_out(users_csv, knobs, workers):
    """PostgreSQL restarts (or SQLite stays locked) mid-job: chunk tasks retry, each row once."""
    knobs(record_signals="1", row_delay="0.01")
    job = make_job(users_csv(400))
    workers(2, env=RUNNER_ENV)
    launch(job)
    deadline = time.monotonic() + 60
    while ImportJob.objects.get(pk=job.pk).processed < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    blip(seconds=3)
    assert ImportJob.objects.get(pk=job.pk).processed < 400, "the outage should land mid-job"
    job = wait_final(job, timeout=180)
    assert job.status == JobStatus.SUCCEEDED
    assert_exactly_once(job, 400)


def test_cancel_stops_the_remaining_chunks(users_csv, knobs, workers):
    knobs(row_delay="0.02")
    job = make_job(users_csv(400))
    workers(2)
    launch(job)
    deadline = time.monotonic() + 60
    while ImportJob.objects.get(pk=job.pk).processed < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ImportJob.objects.get(pk=job.pk).request_cancel()
    job = wait_final(job)
    assert job.status == JobStatus.CANCELLED
    time.sleep(2)  # chunks already running may still commit; nothing after that
    job.refresh_from_db()
    pending = list(row_outcomes(job).values()).count("pending")
    assert pending > 0 and job.processed + pending == 400
    assert User.objects.count() == job.succeeded


def test_bulkimport_enqueues_on_celery_and_follows_the_job(users_csv, workers):
    workers(2)
    result = manage("bulkimport", str(users_csv(150)), env={"BULKADMIN_LAUNCHER": "celery"}, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "succeeded: 150 succeeded, 0 failed" in result.stdout
    job = ImportJob.objects.get()
    assert job.runner_host == "celery" and User.objects.count() == 150


def test_resume_a_crashed_job_on_celery_and_a_stalled_job_says_so(users_csv, knobs, workers, settings):
    from bulkadmin.engine import JobRunner

    knobs(record_signals="1")
    job = make_job(users_csv(200))
    JobRunner(job.pk, workers=1).claim()
    ImportJob.objects.filter(pk=job.pk).update(runner_host="celery", runner_pid=None)
    import_rows(job, range(2, 82))  # the first workers got this far, then all of them died
    settings.BULKADMIN = {**settings.BULKADMIN, "STALE_AFTER_SECONDS": 0.0}
    assert ImportJob.objects.filter(pk=job.pk).mark_stale_crashed() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.CRASHED and job.error.startswith("Stalled")

    workers(2)
    from bulkadmin.launch import launch_job

    settings.BULKADMIN = {**settings.BULKADMIN, "STALE_AFTER_SECONDS": 30.0, "LAUNCHER": "celery"}
    assert launch_job(job)  # what Resume does
    job = wait_final(job)
    assert job.status == JobStatus.SUCCEEDED
    assert_exactly_once(job, 200)


def test_failed_rows_corrected_and_rerun_on_celery(write_file, workers, settings):
    from bulkadmin.jobs import rerun_failed
    from bulkadmin.launch import launch_job

    lines = ["username"] + [f"user{i:03d}" for i in range(60)]
    lines[10], lines[40] = "boom010", "boom040"  # refused by a receiver at import time
    job = make_job(write_file("b.csv", "\n".join(lines) + "\n"))
    workers(2)
    settings.BULKADMIN = {**settings.BULKADMIN, "LAUNCHER": "celery"}
    assert launch_job(job)
    job = wait_final(job)
    assert (job.status, job.succeeded, job.failed) == (JobStatus.FINISHED_WITH_ERRORS, 58, 2)

    for row in ImportRow.objects.filter(job=job):
        row.values = {"username": row.values["username"].replace("boom", "fixed")}
        row.errors = {}
        row.save(update_fields=["values", "errors"])  # what the row form does
    rerun = rerun_failed(job)
    assert rerun is not None
    assert launch_job(rerun)  # what the Rerun button does
    rerun = wait_final(rerun)
    assert (rerun.status, rerun.parent_id, rerun.succeeded) == (JobStatus.SUCCEEDED, job.pk, 2)
    assert set(User.objects.filter(username__startswith="fixed").values_list("username", flat=True)) == {
        "fixed010",
        "fixed040",
    }
    assert User.objects.count() == 60


def test_a_confirmed_upload_is_read_on_this_host_then_run_on_celery(tmp_path, workers, monkeypatch):
    """The upload is only here: a detached runner reads it in, then hands the job to the queue."""
    from bulkadmin.launch import launch_job
    from bulkadmin.models import CELERY_RUNNER
    from tests.test_reading_uploads import assert_every_row_once, confirmed

    monkeypatch.setenv("BULKADMIN_LAUNCHER", "celery")  # what the runner it starts will read
    job = confirmed(tmp_path, 120, bad=(3,))
    workers(2)
    assert launch_job(job)  # what the confirm does after its commit
    job = wait_final(job)
    assert job.status == JobStatus.FINISHED_WITH_ERRORS, job.error
    assert_every_row_once(job, 120, failed=1)
    assert job.runner_host == CELERY_RUNNER  # dispatched by the queue, not by the reader
