"""Faults: a runner killed with SIGKILL, a worker process dying mid-chunk. Rows end exactly once."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Count

from bulkadmin.engine import JobRunner
from bulkadmin.jobs import create_job
from bulkadmin.models import ImportJob, ImportRow, JobStatus
from tests.conftest import ROOT, object_pks, row_outcomes, spawn, wait_until
from tests.testapp.models import SignalRecord

User = get_user_model()
pytestmark = pytest.mark.django_db(transaction=True)


def assert_exactly_once(job: ImportJob, count: int, prefix: str = "user") -> None:
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert (job.total, job.processed, job.succeeded, job.failed) == (count, count, count, 0)
    assert User.objects.filter(username__startswith=prefix).count() == count
    outcomes = row_outcomes(job)
    assert len(outcomes) == count and set(outcomes.values()) == {"succeeded"}
    assert not ImportRow.objects.filter(job=job).exists()
    # one post_save per user: nothing created twice, nothing replayed
    posts = SignalRecord.objects.filter(signal="post")
    assert posts.count() == count
    assert not posts.values("username").annotate(n=Count("id")).filter(n__gt=1).exists()
    # every row points at its own user
    pks = object_pks(job)
    assert len(pks) == count and len(set(pks.values())) == count


def start_runner(job_id: int, *, chunk_size: int = 15, **env: str) -> subprocess.Popen[str]:
    """``runbulkjob`` with two workers, in its own session, its output captured."""
    args = [sys.executable, str(ROOT / "manage.py"), "runbulkjob", str(job_id), "--workers", "2"]
    return spawn(
        [*args, "--chunk-size", str(chunk_size)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_runner_killed_with_sigkill_then_resumed_does_every_row_once(seed, users_csv, knobs):
    rng = random.Random(seed)
    count = 400
    # Slow enough rows (20 ms each) that the kill lands mid-job on a fast PostgreSQL too.
    knobs(record_signals="1", row_delay="0.02")
    job, _ = create_job(users_csv(count), "users.csv")
    assert job is not None

    runner = start_runner(job.pk)
    kill_at = rng.randrange(15, count - 150)
    wait_until(lambda: ImportJob.objects.get(pk=job.pk).processed >= kill_at)
    time.sleep(rng.random() * 0.2)  # anywhere inside a chunk
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=30)
    killed_at = ImportJob.objects.get(pk=job.pk)
    assert killed_at.status == JobStatus.RUNNING and killed_at.processed < count

    # The heartbeat goes stale; the job is then crashed (what the job page and Resume see).
    wait_until(lambda: ImportJob.objects.filter(pk=job.pk).stale().exists(), timeout=30, interval=0.2)
    assert ImportJob.objects.filter(pk=job.pk).mark_stale_crashed() == 1
    # Orphaned pool workers finish at most the chunk they held; let them.
    time.sleep(1.0)

    resumed = start_runner(job.pk)
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, output
    assert_exactly_once(job, count)


def test_a_worker_dying_mid_chunk_is_replaced_and_its_rows_retried(tmp_path, write_file, knobs):
    marker = tmp_path / "die-once"
    marker.touch()
    knobs(record_signals="1", die_file=str(marker))
    lines = ["username"] + [f"user{i:03d}" for i in range(120)]
    lines[50] = "user-die-050"
    job, _ = create_job(write_file("d.csv", "\n".join(lines) + "\n"), "d.csv")
    assert job is not None

    job = JobRunner(job.pk, workers=2, chunk_size=10).run()

    assert not marker.exists(), "the worker should have died once"
    assert_exactly_once(job, 120)


def test_a_row_that_always_kills_its_worker_fails_alone(write_file, knobs):
    knobs(record_signals="1", always_die="1", die_file="unused")
    lines = ["username"] + [f"user{i:03d}" for i in range(40)]
    lines[20] = "user-die-020"
    job, _ = create_job(write_file("d.csv", "\n".join(lines) + "\n"), "d.csv")
    assert job is not None

    job = JobRunner(job.pk, workers=2, chunk_size=10).run()

    assert job.status == JobStatus.FINISHED_WITH_ERRORS
    assert (job.succeeded, job.failed) == (39, 1)
    failed = ImportRow.objects.get(job=job)
    assert failed.number == 21 and "worker process died" in failed.error_text
    assert SignalRecord.objects.filter(signal="post").count() == 39
