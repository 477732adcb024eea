"""The admin's bulk change action and Revert page, end to end with the real detached runner:
select, change through save(), then revert; and who may do either."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group
from django.urls import reverse

from bulkadmin.models import ImportJob, JobKind, JobStatus
from tests.test_admin_support import *  # noqa: F403  (the shared fixtures)
from tests.test_admin_support import IMPORT_PERMS, User, make_user, url
from tests.test_launch import wait_for, wait_for_runners_to_exit
from tests.testapp.models import SignalRecord

USERS = reverse("admin:auth_user_changelist")
DONE = (JobStatus.SUCCEEDED, JobStatus.FINISHED_WITH_ERRORS, JobStatus.CRASHED)
pytestmark = pytest.mark.django_db(transaction=True)


def action_choices(client) -> list[str]:
    form = client.get(USERS).context["action_form"]  # None: no action at all
    return [name for name, _label in form.fields["action"].choices] if form else []


def test_changing_ten_thousand_selected_users_through_save_then_reverting_it(super_client, knobs):
    support = Group.objects.create(name="Support")
    User.objects.bulk_create([User(username=f"user{i:05d}", password="!") for i in range(10_000)])
    knobs(record_changes="1")
    assert "bulkadmin_change" in action_choices(super_client)

    # Django's "select all 10,000": select_across, with the changelist's filter in the URL.
    selection = {
        "action": "bulkadmin_change",
        "select_across": "1",
        "index": "0",
        ACTION_CHECKBOX_NAME: ["1"],
    }
    filtered = USERS + "?is_staff__exact=0"
    page = super_client.post(filtered, selection)
    assert page.status_code == 200, page.content[:500]
    html = page.content.decode()
    assert "Change 10,000 users through save()" in html and 'name="select_across" value="1"' in html
    refused = super_client.post(filtered, {**selection, "bulkadmin_change": "1", "is_active": "maybe"})
    assert refused.status_code == 200 and refused.context["form"].errors  # no job for a bad form
    assert not ImportJob.objects.exists()

    response = super_client.post(
        filtered,
        {**selection, "bulkadmin_change": "1", "is_active": "false", "add__groups": ["Support"]},
    )
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == url("change", job.pk)
    assert job.kind == JobKind.CHANGE and job.total == 10_000  # not root, who is staff
    job = wait_for(job.pk, DONE, timeout=300)
    assert (job.status, job.succeeded) == (JobStatus.SUCCEEDED, 10_000), job.error
    assert User.objects.filter(is_active=False, groups=support).count() == 10_000
    assert SignalRecord.objects.filter(signal="update").count() == 10_000  # one save() each
    wait_for_runners_to_exit()

    page = super_client.get(url("change", job.pk)).content.decode()
    assert "Revert this job" in page
    confirm = super_client.get(url("revert", job.pk)).content.decode()
    assert "give the 10,000 users it changed their earlier values back" in confirm
    response = super_client.post(url("revert", job.pk), {"post": "yes"})
    revert = ImportJob.objects.get(kind=JobKind.REVERT)
    assert response["Location"] == url("change", revert.pk) and revert.reverts_id == job.pk
    revert = wait_for(revert.pk, DONE, timeout=300)
    assert (revert.status, revert.succeeded) == (JobStatus.SUCCEEDED, 10_000), revert.error
    assert User.objects.filter(is_active=True, groups=None, username__startswith="user").count() == 10_000
    wait_for_runners_to_exit()

    # A second click lands on the same revert; the job page no longer offers one.
    assert super_client.post(url("revert", job.pk), {"post": "yes"})["Location"] == url("change", revert.pk)
    assert ImportJob.objects.filter(kind=JobKind.REVERT).count() == 1
    assert "Revert this job" not in super_client.get(url("change", job.pk)).content.decode()
    assert (
        f'Reverts <a href="{url("change", job.pk)}">#{job.pk}</a>'
        in super_client.get(url("change", revert.pk)).content.decode()
    )


def test_the_action_needs_the_change_permission_and_the_job_permission(client):
    User.objects.create_user("someone")
    viewer = make_user("viewer", perms=("auth.view_user", "auth.change_user"))
    client.force_login(viewer)
    assert "bulkadmin_change" not in action_choices(client)  # may not start jobs
    adder = make_user("adder", perms=(*IMPORT_PERMS, "auth.view_user"))
    client.force_login(adder)
    assert "bulkadmin_change" not in action_choices(client)  # may not change users
    changer = make_user("changer", perms=(*IMPORT_PERMS, "auth.view_user", "auth.change_user"))
    client.force_login(changer)
    assert "bulkadmin_change" in action_choices(client)


def test_reverting_a_create_job_needs_the_delete_permission(client, users_csv):
    from bulkadmin.engine import JobRunner
    from bulkadmin.jobs import create_job

    # may change users, not delete them: a revert of a job that only created users is not offered
    starter = make_user("starter", perms=(*IMPORT_PERMS, "auth.view_user", "auth.change_user"))
    job, _ = create_job(users_csv(3), "users.csv", user=starter)
    assert job is not None
    JobRunner(job.pk, workers=1).run()
    client.force_login(starter)
    assert "Revert this job" not in client.get(url("change", job.pk)).content.decode()
    assert client.get(url("revert", job.pk)).status_code == 403
    assert client.post(url("revert", job.pk), {"post": "yes"}).status_code == 403
    assert not ImportJob.objects.filter(kind=JobKind.REVERT).exists()

    deleter = make_user("deleter", perms=(*IMPORT_PERMS, "auth.view_user", "auth.delete_user"))
    ImportJob.objects.filter(pk=job.pk).update(created_by=deleter)
    client.force_login(deleter)
    assert "Revert this job" in client.get(url("change", job.pk)).content.decode()
    page = client.get(url("revert", job.pk))
    assert page.status_code == 200 and "delete the 3 users it created" in page.content.decode()
