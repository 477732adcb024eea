"""The hand-off: a detached ``runbulkjob`` started after commit, and the launcher registry."""

from __future__ import annotations

import os
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import SimpleUploadedFile

from bulkadmin import conf, launch
from bulkadmin.models import ImportJob, JobStatus
from tests.conftest import wait_until
from tests.test_admin_support import *  # noqa: F403  (the shared fixtures)
from tests.test_admin_support import User, make_job, url


def wait_for(job_id: int, statuses, timeout: float = 60.0) -> ImportJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ImportJob.objects.get(pk=job_id)
        if job.status in statuses:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} is still {ImportJob.objects.get(pk=job_id).status}")


def wait_for_runners_to_exit(timeout: float = 10.0) -> None:
    """A runner records its end, then closes its connections; PostgreSQL cannot drop the test
    database while one is still open."""
    from django.db import connection

    deadline = time.monotonic() + timeout
    while connection.vendor == "postgresql" and time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] == 0:
                return
        time.sleep(0.1)


@pytest.mark.django_db(transaction=True)
def test_confirm_launches_a_detached_runner_that_finishes_the_job(staff_client, importer_user):
    """End to end through the admin: upload, confirm, and a real runner imports the rows."""
    content = b"username,email\nann,ann@example.com\nbob-boom,bob@example.com\ncyd,\n"
    response = staff_client.post(
        url("add"),
        {
            "file": SimpleUploadedFile("users.csv", content),
            "importer": "bulkadmin.importers.users.UserImporter",
            "workers": "1",
        },
    )
    token = response.context["confirm_form"].initial["token"]
    response = staff_client.post(url("confirm"), {"token": token})
    job = ImportJob.objects.get()
    assert response["Location"] == url("change", job.pk)
    job = wait_for(job.pk, (JobStatus.SUCCEEDED, JobStatus.FINISHED_WITH_ERRORS, JobStatus.CRASHED))
    assert job.status == JobStatus.FINISHED_WITH_ERRORS, launch.log_path(job).read_text()
    assert (job.succeeded, job.failed) == (2, 1)
    assert set(User.objects.filter(username__in=["ann", "cyd"]).values_list("username", flat=True)) == {
        "ann",
        "cyd",
    }
    assert job.runner_pid is None and job.created_by == importer_user
    wait_for_runners_to_exit()
    log = launch.log_path(job)
    assert log.parent == conf.data_dir() / "logs"
    # The runner records the job's end, then prints its summary: the log may lag the status.
    wait_until(lambda: "succeeded" in log.read_text(), timeout=10, what=f"the summary in {log}")
    assert oct(log.stat().st_mode & 0o777) == oct(0o600)  # owner-only: a log may quote row values
    assert oct(log.parent.stat().st_mode & 0o777) == oct(0o700)


def test_runner_environment_points_at_the_settings():
    env, cwd = launch.runner_environment()
    assert env["DJANGO_SETTINGS_MODULE"] == "tests.settings"
    assert os.path.isdir(os.path.join(cwd, "tests"))
    assert cwd in env["PYTHONPATH"].split(os.pathsep)
    assert env.get("BULKADMIN_TEST_DB_NAME")  # the test database reaches the runner


def test_runner_command():
    job = ImportJob(pk=42)
    command = launch.runner_command(job)
    assert command[1:] == ["-m", "django", "runbulkjob", "42"]


def test_launcher_registry(settings):
    assert launch.get_launcher() is launch.launch_subprocess
    settings.BULKADMIN = {**settings.BULKADMIN, "LAUNCHER": "carrier-pigeon"}
    with pytest.raises(ImproperlyConfigured, match="known launchers: celery, subprocess, tasks"):
        launch.get_launcher()
    calls: list[ImportJob] = []
    launch.register_launcher("carrier-pigeon", calls.append)
    try:
        assert launch.get_launcher() == calls.append
    finally:
        launch.LAUNCHERS.pop("carrier-pigeon")
    settings.BULKADMIN = {**settings.BULKADMIN, "LAUNCHER": "tests.test_launch.dotted_launcher"}
    assert launch.get_launcher() is dotted_launcher


def dotted_launcher(job):
    raise RuntimeError("no workers here")


@pytest.mark.django_db
def test_a_failing_launcher_leaves_the_job_crashed_and_resumable(users_csv, settings):
    settings.BULKADMIN = {**settings.BULKADMIN, "LAUNCHER": "tests.test_launch.dotted_launcher"}
    job = make_job(users_csv(3))
    assert launch.launch_job(job) is False
    job.refresh_from_db()
    assert job.status == JobStatus.CRASHED and "no workers here" in job.error


@pytest.mark.django_db
def test_a_job_already_handed_off_is_not_launched_twice(users_csv, launched):
    job = make_job(users_csv(3))
    assert launch.launch_job(job) is True
    assert launch.launch_job(job) is False
    ImportJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    assert launch.launch_job(job) is False
    assert launched == [job.pk]
