"""Every bulkadmin URL against every kind of user: login redirect, 403, or allowed."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from bulkadmin.models import ImportJob, ImportRow
from tests.test_admin_support import *  # noqa: F403  (the shared fixtures)
from tests.test_admin_support import IMPORT_PERMS, make_job, make_user, settle, url

pytestmark = pytest.mark.django_db

USERS: dict[str, dict[str, Any] | None] = {
    "anonymous": None,
    "non_staff": {"staff": False, "perms": IMPORT_PERMS},
    "staff_no_perms": {"staff": True, "perms": ()},
    # everything but the right to add users: the users importer is off limits
    "staff_without_add_user": {
        "staff": True,
        "perms": ("bulkadmin.add_importjob", "bulkadmin.view_importjob", "bulkadmin.delete_importjob"),
    },
    "staff_view_only": {"staff": True, "perms": ("bulkadmin.view_importjob", "auth.add_user")},
    "staff_with_perms": {"staff": True, "perms": IMPORT_PERMS},
    "superuser": {"staff": True, "superuser": True},
}

#: (name, method, whether only importers (add permission) may use it)
ENDPOINTS = [
    ("changelist", "get", False),
    ("add", "get", True),
    ("add", "post", True),
    ("confirm", "post", True),
    ("discard", "post", True),
    ("change", "get", False),
    ("history", "get", False),
    ("progress", "get", False),
    ("download_csv", "get", False),
    ("download_xlsx", "get", False),
    ("row", "get", True),
    ("row", "post", True),
    ("cancel", "post", True),
    ("resume", "post", True),
    ("rerun", "post", True),
]


def endpoint_url(name: str, job, row) -> str:
    if name in ("changelist", "add", "confirm", "discard"):
        return url(name)
    if name.startswith("download_"):
        return url("download", job.pk, name.split("_")[1])
    if name == "row":
        return url("row", job.pk, row.pk)
    return url(name, job.pk)


@pytest.fixture
def job(write_file):
    job = make_job(write_file("p.csv", "username\nann\nboom\n"))
    return settle(job, {3: {"__all__": ["refused"]}})


@pytest.mark.parametrize("kind", list(USERS))
@pytest.mark.parametrize(("name", "method", "importers_only"), ENDPOINTS)
def test_permission_matrix(kind, name, method, importers_only, job):
    client = Client()
    spec = USERS[kind]
    if spec is not None:
        user = make_user(
            kind, staff=spec["staff"], superuser=spec.get("superuser", False), perms=spec.get("perms", ())
        )
        client.force_login(user)
        ImportJob.objects.filter(pk=job.pk).update(created_by=user)  # their own job
    row = ImportRow.objects.get(job=job, number=3)
    target = endpoint_url(name, job, row)
    response = getattr(client, method)(target, {"username": "fixed"} if name == "row" else {})
    if kind in ("anonymous", "non_staff"):
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    elif kind in ("staff_no_perms", "staff_without_add_user") or (
        kind == "staff_view_only" and importers_only
    ):
        assert response.status_code == 403
    else:
        assert response.status_code in (200, 302), response.status_code
        if response.status_code == 302:
            assert "/admin/login/" not in response["Location"]
    response.close()  # what the web server does once it has sent a streamed download


def test_the_users_importer_is_hidden_from_the_index_without_add_user(client):
    client.force_login(make_user("nope", perms=("bulkadmin.add_importjob", "bulkadmin.view_importjob")))
    assert b"Import jobs" not in client.get("/admin/").content


def test_view_only_staff_see_no_action_buttons(client, job):
    viewer = make_user("viewer", perms=("bulkadmin.view_importjob", "auth.add_user"))
    ImportJob.objects.filter(pk=job.pk).update(created_by=viewer)
    client.force_login(viewer)
    html = client.get(url("change", job.pk)).content.decode()
    assert url("rerun", job.pk) not in html and url("cancel", job.pk) not in html
    assert "bulkadmin-fix" not in html
    assert "Download failed rows (CSV)" in html


def test_running_job_cannot_be_deleted(client, job):
    from bulkadmin.models import ImportJob, JobStatus

    client.force_login(make_user("root2", superuser=True))
    ImportJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    response = client.get(url("delete", job.pk), follow=True)  # before: "you don't have permission"
    assert response.redirect_chain[-1][0] == url("change", job.pk)
    assert any("cancel it first" in str(m) for m in response.context["messages"])
    assert client.post(url("delete", job.pk), {"post": "yes"}).status_code == 302
    assert ImportJob.objects.filter(pk=job.pk).exists()
    ImportJob.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    assert client.get(url("delete", job.pk)).status_code == 200
