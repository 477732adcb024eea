"""Whose jobs: staff see and act on their own; "Can view every import job" shows everyone's."""

from __future__ import annotations

import pytest

from bulkadmin.models import ImportJob, ImportRow
from tests.test_admin_permissions import endpoint_url
from tests.test_admin_support import *  # noqa: F403  (the shared fixtures)
from tests.test_admin_support import IMPORT_PERMS, make_job, make_user, settle, url

pytestmark = pytest.mark.django_db


def test_staff_see_and_act_on_their_own_jobs_unless_they_may_view_every_job(client, write_file):
    """Before: any staff member saw everyone's jobs and failed rows (names, emails) and could
    correct, rerun or cancel them."""
    job = settle(make_job(write_file("p.csv", "username\nann\nboom\n")), {3: {"__all__": ["refused"]}})
    owner = make_user("owner", perms=IMPORT_PERMS)
    ImportJob.objects.filter(pk=job.pk).update(created_by=owner)
    row = ImportRow.objects.get(job=job, number=3)
    other = make_user("other", perms=IMPORT_PERMS)
    client.force_login(other)
    assert "p.csv" not in client.get(url("changelist")).content.decode()
    for name, method in [
        ("progress", "get"),
        ("change", "get"),
        ("download_csv", "get"),
        ("row", "get"),
        ("rerun", "post"),
        ("cancel", "post"),
    ]:
        response = getattr(client, method)(endpoint_url(name, job, row))
        assert response.status_code in (302, 403), (name, response.status_code)
        if response.status_code == 302:
            assert response["Location"] == "/admin/"  # the admin's own "no such object" redirect

    boss = make_user("boss", perms=(*IMPORT_PERMS, "bulkadmin.view_all_importjobs"))
    client.force_login(boss)
    mine = client.get(url("changelist")).context["cl"].result_list
    assert list(mine) == []  # the default is "mine"
    everyone = client.get(url("changelist") + "?whose=all").context["cl"].result_list
    assert [j.pk for j in everyone] == [job.pk]
    assert client.get(url("change", job.pk)).status_code == 200
    assert client.get(url("row", job.pk, row.pk)).status_code == 200
