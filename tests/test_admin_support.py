"""Fixtures and helpers shared by the admin tests (import them explicitly; no tests here)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from bulkadmin import crypto, launch
from bulkadmin.jobs import create_job
from bulkadmin.models import ChunkStatus, ImportChunk, ImportJob, ImportRow, JobStatus

User = get_user_model()
PASSWORD = "admin-test-password"


def url(name: str, *args) -> str:
    return reverse(f"admin:bulkadmin_importjob_{name}", args=args)


def make_user(username: str, *, staff: bool = True, superuser: bool = False, perms: tuple[str, ...] = ()):
    user = User.objects.create_user(
        username, f"{username}@example.com", PASSWORD, is_staff=staff, is_superuser=superuser
    )
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


#: What "staff with permissions" needs to import users from a file and watch the job.
IMPORT_PERMS = ("bulkadmin.add_importjob", "bulkadmin.view_importjob", "auth.add_user")


@pytest.fixture
def importer_user(db):
    return make_user("importer", perms=IMPORT_PERMS)


@pytest.fixture
def admin_user_(db):
    return make_user("root", superuser=True)


@pytest.fixture
def staff_client(client, importer_user):
    client.force_login(importer_user)
    return client


@pytest.fixture
def super_client(client, admin_user_):
    client.force_login(admin_user_)
    return client


@pytest.fixture
def launched(monkeypatch):
    """Record launches instead of starting runners (the real launch has its own tests)."""
    calls: list[int] = []
    monkeypatch.setitem(launch.LAUNCHERS, "subprocess", lambda job: calls.append(job.pk))
    return calls


def make_job(path: Path, user=None, **kwargs) -> ImportJob:
    job, report = create_job(path, path.name, user=user, **kwargs)
    assert job is not None, report.file_error or report.errors
    return job


def settle(job: ImportJob, failures: dict[int, dict[str, list[str]]], status: str | None = None) -> ImportJob:
    """Pretend a runner processed the job: the rows numbered in ``failures`` failed."""
    for chunk in ImportChunk.objects.filter(job=job):
        secrets = crypto.unseal_rows(chunk.secret)
        ImportRow.objects.bulk_create(
            ImportRow(
                job=job,
                number=number,
                values=values,
                secret=crypto.seal(secrets.get(number, {})),
                errors=failures[number],
            )
            for number, values in chunk.rows
            if number in failures
        )
    ImportChunk.objects.filter(job=job).update(status=ChunkStatus.DONE, secret="")
    now = timezone.now()
    ImportJob.objects.filter(pk=job.pk).update(
        status=status or (JobStatus.FINISHED_WITH_ERRORS if failures else JobStatus.SUCCEEDED),
        processed=job.total,
        succeeded=job.total - len(failures),
        failed=len(failures),
        started_at=now - timedelta(seconds=10),
        finished_at=now,
        heartbeat_at=now,
    )
    job.refresh_from_db()
    return job


@pytest.fixture(autouse=True)
def private_data_dir(settings, tmp_path, monkeypatch):
    """Each test its own uploads and logs directory (autouse where imported), runners too."""
    settings.BULKADMIN = {**settings.BULKADMIN, "DATA_DIR": tmp_path / "bulkadmin-data"}
    monkeypatch.setenv("BULKADMIN_TEST_DATA_DIR", str(tmp_path / "bulkadmin-data"))
    return tmp_path / "bulkadmin-data"
