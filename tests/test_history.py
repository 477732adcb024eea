"""A job's admin history: a LogEntry per object it created or changed, by its starter, in the
object's transaction; links from the job to its objects and from each object to its job."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.urls import reverse

from bulkadmin.engine import JobRunner
from bulkadmin.jobs import create_job
from tests.test_admin_support import *  # noqa: F403  (the shared fixtures)
from tests.test_admin_support import make_user, url

pytestmark = pytest.mark.django_db(transaction=True)
User = get_user_model()


def test_each_object_gets_a_history_entry_by_the_starter_and_links_both_ways(client, write_file):
    """Before: nothing linked a job to the users it created, and their history was empty."""
    root = make_user("root", superuser=True)
    User.objects.create_user("old", first_name="Old")
    path = write_file("u.csv", "username,first_name\nann,Ann\nbob,Bob\nold,Changed\n")
    job, _ = create_job(path, path.name, user=root, options={"update_existing": True})
    assert job is not None
    job = JobRunner(job.pk, workers=2).run()
    assert job.succeeded == 3

    entries = LogEntry.objects.filter(user=root).order_by("object_repr")
    assert [(e.object_repr, e.action_flag, e.change_message) for e in entries] == [
        ("ann", ADDITION, f"Added by import job #{job.pk}."),
        ("bob", ADDITION, f"Added by import job #{job.pk}."),
        ("old", CHANGE, f"Changed by import job #{job.pk}."),
    ]

    client.force_login(root)
    page = client.get(url("change", job.pk)).content.decode()
    objects_url = reverse("admin:auth_user_changelist") + f"?bulkadmin_job={job.pk}"
    assert objects_url in page
    response = client.get(objects_url)
    assert response.status_code == 200, (response.status_code, response.get("Location"))
    listed = response.context["cl"].result_list
    assert sorted(u.username for u in listed) == ["ann", "bob", "old"]  # not root

    ann = User.objects.get(username="ann")
    html = client.get(reverse("admin:auth_user_change", args=[ann.pk])).content.decode()
    assert url("change", job.pk) in html and f"Import job #{job.pk}" in html
    assert (
        f"Added by import job #{job.pk}."
        in client.get(reverse("admin:auth_user_history", args=[ann.pk])).content.decode()
    )


def test_a_command_line_job_writes_no_history(write_file):
    path = write_file("u.csv", "username\nann\n")
    job, _ = create_job(path, path.name)
    assert job is not None
    JobRunner(job.pk, workers=1).run()
    assert not LogEntry.objects.exists()
