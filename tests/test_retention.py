"""What is kept and for how long: a failed row's sealed password until SECRET_RETENTION_SECONDS
after its job ended, abandoned uploads until STALE_UPLOAD_SECONDS; `cleanbulkadmin` and every
upload clean both, and the job page says when the passwords go."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from bulkadmin import uploads
from bulkadmin.engine import JobRunner
from bulkadmin.jobs import create_job
from bulkadmin.models import ImportJob, ImportRow
from bulkadmin.retention import erase_expired_secrets
from tests.conftest import manage
from tests.test_admin_support import *  # noqa: F403  (the shared fixtures)
from tests.test_admin_support import url

pytestmark = pytest.mark.django_db(transaction=True)


def failed_job(write_file, name: str, user=None) -> ImportJob:
    """A job whose one row with a password failed at save time (the receiver refuses "boom")."""
    path = write_file(name, "username,password\nann,Pass-word-123x\nboom1,Pass-word-456x\n")
    job, _ = create_job(path, path.name, user=user)
    assert job is not None
    job = JobRunner(job.pk, workers=1).run()
    assert job.failed == 1 and ImportRow.objects.get(job=job).secret  # sealed, kept for a rerun
    return job


def test_secrets_of_failed_rows_are_erased_once_past_their_retention(write_file, settings):
    """Before: failed rows kept their sealed passwords for as long as the job existed."""
    old = failed_job(write_file, "old.csv")
    recent = failed_job(write_file, "recent.csv")
    ImportJob.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=8))
    stale_upload = uploads.save_chunks([b"username,password\nx,secret\n"], owner=7)
    long_ago = time.time() - 2 * 24 * 3600
    os.utime(uploads.path_for(stale_upload, 7), (long_ago, long_ago))

    result = manage("cleanbulkadmin")

    assert result.returncode == 0, result.stderr
    assert "Deleted 1 abandoned uploads; erased the secrets of 1 failed rows." in result.stdout
    assert ImportRow.objects.get(job=old).secret == ""
    assert ImportRow.objects.get(job=recent).secret != ""
    assert not uploads.path_for(stale_upload, 7).exists()

    # With the retention off (None), secrets stay as long as their job.
    settings.BULKADMIN = {**settings.BULKADMIN, "SECRET_RETENTION_SECONDS": None}
    ImportJob.objects.filter(pk=recent.pk).update(finished_at=timezone.now() - timedelta(days=80))
    assert erase_expired_secrets() == 0
    assert ImportRow.objects.get(job=recent).secret != ""


def test_the_job_page_says_when_the_passwords_go(super_client, write_file, admin_user_):
    job = failed_job(write_file, "u.csv", user=admin_user_)
    page = super_client.get(url("change", job.pk)).content.decode()
    assert "Their passwords are kept, sealed, for a rerun until" in page
    ImportJob.objects.filter(pk=job.pk).update(finished_at=timezone.now() - timedelta(days=8))
    page = super_client.get(url("change", job.pk)).content.decode()
    assert "Their passwords were erased on" in page


def test_abandoned_uploads_are_cleaned_up_in_each_users_directory(settings):
    """Each user's uploads wait in their own directory: stale ones go, fresh ones stay, and a
    directory goes once it has been empty as long; loose uploads from before those directories
    still go."""
    settings.BULKADMIN = {**settings.BULKADMIN, "MAX_PENDING_UPLOADS_PER_USER": None}
    long_ago = time.time() - 2 * 24 * 3600

    def stale(upload_id: str, owner: int) -> None:
        os.utime(uploads.path_for(upload_id, owner), (long_ago, long_ago))

    gone = uploads.save_chunks([b"username\nann\n"], owner=1)  # user 1's only upload
    stale(gone, 1)
    old, kept = uploads.save_chunks([b"a"], owner=2), uploads.save_chunks([b"b"], owner=2)
    stale(old, 2)
    loose = uploads.uploads_dir() / ("c" * 32)  # as uploads were kept before per-user directories
    loose.write_text("x")
    os.utime(loose, (long_ago, long_ago))
    other = uploads.uploads_dir() / "README"  # not a name of ours: never touched
    other.write_text("x")
    os.utime(other, (long_ago, long_ago))

    assert uploads.cleanup_stale() == 3
    assert [path.name for path in uploads.owner_dir(2).iterdir()] == [kept]
    assert not loose.exists() and other.exists()
    assert uploads.waiting(2) and not uploads.waiting(1)
    assert uploads.take(kept, 2).is_file()
    # a directory just emptied stays: another upload of its user's may be making it again
    assert uploads.owner_dir(1).is_dir() and uploads.owner_dir(2).is_dir()
    assert uploads.cleanup_stale() == 0 and uploads.owner_dir(1).is_dir()
    os.utime(uploads.owner_dir(1), (long_ago, long_ago))  # empty for as long as an upload waits
    assert uploads.cleanup_stale() == 0
    assert not uploads.owner_dir(1).exists() and uploads.owner_dir(2).is_dir()
