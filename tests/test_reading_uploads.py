"""A confirmed upload is read in by its runner, not by the request: killed, cancelled or handed
to Celery part way, the job still ends with every row once."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from django.db.models import Count

from bulkadmin import uploads
from bulkadmin.jobs import confirm_upload
from bulkadmin.models import ImportJob, JobStatus
from tests.conftest import row_outcomes, wait_until
from tests.test_admin_support import *  # noqa: F403  (the shared fixtures: a private DATA_DIR)
from tests.test_admin_support import make_user
from tests.test_faults import start_runner
from tests.testapp.models import Restaurant

pytestmark = pytest.mark.django_db(transaction=True)

RESTAURANTS = "tests.testapp.importers.RestaurantImporter"
READ_SLOWLY = {"BULKADMIN_TEST_CLEAN_DELAY": "0.002"}  # 2,500 rows: 5 s of reading
ROWS = 2500


def confirmed(tmp_path: Path, count: int, *, bad: tuple[int, ...] = ()) -> ImportJob:
    """A job as the admin's confirm leaves it: the upload moved aside, no row read yet."""
    lines = ["name,city,cuisine"]
    lines += [f"place{i:04d},Lyon,{'poison' if i in bad else 'thai'}" for i in range(count)]
    source = tmp_path / "places.csv"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    root = make_user("root", superuser=True)
    upload_id = uploads.save_chunks([source.read_bytes()], owner=root.pk)
    pending = uploads.PendingUpload(
        upload_id=upload_id, name="places.csv", importer=RESTAURANTS, owner=str(root.pk)
    )
    job, created = confirm_upload(pending, root)
    assert created and not job.prepared and job.total == 0
    return job


def assert_every_row_once(job: ImportJob, count: int, failed: int = 0) -> None:
    job.refresh_from_db()
    assert job.prepared and (job.total, job.processed, job.failed) == (count, count, failed), job.error
    assert Restaurant.objects.count() == count - failed
    assert not Restaurant.objects.values("name").annotate(n=Count("id")).filter(n__gt=1).exists()
    outcomes = row_outcomes(job)
    assert len(outcomes) == count
    assert not uploads.confirmed_path(str(job.upload_id)).exists()


def test_a_runner_killed_while_reading_starts_over_on_resume(tmp_path):
    job = confirmed(tmp_path, ROWS, bad=(7, 2250))
    runner = start_runner(job.pk, chunk_size=5, **READ_SLOWLY)
    wait_until(lambda: ImportJob.objects.get(pk=job.pk).total >= 1000, timeout=60)
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=30)
    killed = ImportJob.objects.get(pk=job.pk)
    assert not killed.prepared and killed.status == JobStatus.RUNNING and Restaurant.objects.count() == 0

    wait_until(lambda: ImportJob.objects.filter(pk=job.pk).stale().exists(), timeout=30, interval=0.2)
    assert ImportJob.objects.filter(pk=job.pk).mark_stale_crashed() == 1
    assert ImportJob.objects.get(pk=job.pk).is_resumable
    resumed = start_runner(job.pk, chunk_size=5)
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 1, output  # two rows failed, as the report said they would
    assert_every_row_once(job, ROWS, failed=2)
    assert sorted(job.rows.values_list("number", flat=True)) == [9, 2252]


def test_a_cancel_while_reading_stops_it_and_resume_finishes(tmp_path):
    job = confirmed(tmp_path, ROWS)
    runner = start_runner(job.pk, chunk_size=5, **READ_SLOWLY)
    wait_until(lambda: ImportJob.objects.get(pk=job.pk).total >= 1000, timeout=60)
    assert job.request_cancel()
    output, _ = runner.communicate(timeout=60)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and not job.prepared, output
    assert Restaurant.objects.count() == 0 and job.is_resumable

    resumed = start_runner(job.pk, chunk_size=5)
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, output
    assert_every_row_once(job, ROWS)


def test_a_job_whose_upload_is_gone_says_so(tmp_path):
    job = confirmed(tmp_path, 10)
    uploads.discard_confirmed(str(job.upload_id))
    runner = start_runner(job.pk)
    output, _ = runner.communicate(timeout=60)
    job.refresh_from_db()
    assert job.status == JobStatus.CRASHED and "upload it again" in job.error, output
