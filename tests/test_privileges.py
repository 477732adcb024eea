"""Non-superusers cannot create or promote staff or superusers, nor hand out permissions.

The upload and update mode are covered in tests/test_validation.py. Here: groups that grant
permissions the uploader lacks are refused, at upload and in the worker; the row form refuses
a promotion and ignores columns the row does not have; update mode needs the change permission
for every action on the job; and a row that reaches the worker anyway (its stored values
tampered with) is refused there, with the superuser's account left as it was.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import Group, Permission

from bulkadmin.engine import JobRunner
from bulkadmin.importers.base import ImportContext
from bulkadmin.importers.users import GROUP_MESSAGE, PRIVILEGE_MESSAGE, UserImporter
from bulkadmin.jobs import rerun_failed
from bulkadmin.models import ImportRow, JobStatus
from bulkadmin.validation import validate_file
from tests.test_admin_support import *  # noqa: F403  (the shared fixtures)
from tests.test_admin_support import IMPORT_PERMS, PASSWORD, User, make_job, make_user, settle, url

pytestmark = pytest.mark.django_db

UPDATE_PERMS = (*IMPORT_PERMS, "auth.change_user")


def failed_job(write_file, user, content: str, **options: bool):
    """A job of ``user`` whose row 2 failed at import."""
    job = make_job(write_file("f.csv", content), user=user, options=options)
    return settle(job, {2: {"__all__": ["RuntimeError: receiver refused boom1"]}})


def edit(client, job, values: dict[str, str]):
    row = ImportRow.objects.get(job=job, number=2)
    return client.post(url("row", job.pk, row.pk), values), row


@pytest.mark.parametrize("column", ["is_staff", "is_superuser"])
def test_a_staff_member_cannot_save_a_promoting_row(write_file, client, importer_user, column):
    boss = make_user("boss", superuser=True)
    job = failed_job(write_file, boss, f"username,{column}\nboom1,true\n")
    importer_user.user_permissions.add(Permission.objects.get(codename="view_all_importjobs"))
    client.force_login(User.objects.get(pk=importer_user.pk))  # may act on the boss's job

    response, row = edit(client, job, {"username": "fixed1", column: "true"})

    assert response.status_code == 200
    assert PRIVILEGE_MESSAGE in response.content.decode()
    row.refresh_from_db()
    assert row.values == {"username": "boom1", column: "true"} and row.errors  # unchanged


def test_a_superuser_may_save_a_promoting_row(write_file, super_client, admin_user_):
    job = failed_job(write_file, admin_user_, "username,is_staff\nboom1,true\n")
    response, row = edit(super_client, job, {"username": "fixed1", "is_staff": "true"})
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.values == {"username": "fixed1", "is_staff": "true"}


def test_columns_the_row_lacks_cannot_be_posted_in(write_file, staff_client, importer_user):
    job = failed_job(write_file, importer_user, "username,first_name\nboom1,Ann\n")

    response, row = edit(
        staff_client,
        job,
        {"username": "fixed1", "first_name": "Ann", "is_staff": "true", "is_superuser": "true"},
    )

    assert response.status_code == 302
    row.refresh_from_db()
    assert row.values == {"username": "fixed1", "first_name": "Ann"}


def test_a_corrected_username_may_not_name_an_existing_staff_member(write_file, client):
    make_user("admin2", staff=True)
    updater = make_user("updater", perms=UPDATE_PERMS)
    job = failed_job(write_file, updater, "username,password\nboom1,\n", update_existing=True)
    client.force_login(updater)

    response, row = edit(client, job, {"username": "admin2", "password": "Takeover-Pass-99"})

    assert response.status_code == 200
    assert PRIVILEGE_MESSAGE in response.content.decode()
    row.refresh_from_db()
    assert row.values == {"username": "boom1"} and row.secret == ""


@pytest.mark.parametrize("action", ["row", "rerun", "resume", "cancel"])
def test_update_mode_jobs_need_the_change_permission_for_every_action(write_file, client, action):
    updater = make_user("updater", perms=UPDATE_PERMS)
    # may add users, not change them; may see everyone's jobs, so only the change permission counts
    adder = make_user("adder", perms=(*IMPORT_PERMS, "bulkadmin.view_all_importjobs"))
    job = failed_job(write_file, updater, "username\nboom1\n", update_existing=True)
    row = ImportRow.objects.get(job=job, number=2)
    args = (job.pk, row.pk) if action == "row" else (job.pk,)
    client.force_login(adder)

    assert client.post(url(action, *args), {"username": "fixed1"}).status_code == 403
    assert client.get(url("change", job.pk)).status_code == 200  # watching is still allowed

    client.force_login(updater)
    assert client.post(url(action, *args), {"username": "fixed1"}).status_code in (200, 302)


@pytest.mark.django_db(transaction=True)
def test_a_tampered_row_is_refused_by_the_worker(write_file, importer_user):
    """The last line: the worker checks the rerun's user again, whatever the stored values say."""
    boss = User.objects.create_superuser("boss", "boss@example.com", PASSWORD)
    job = failed_job(write_file, importer_user, "username,first_name\nboom1,A\nboom2,B\nplain,C\n")
    ImportRow.objects.create(job=job, number=3, values={"username": "newadmin", "is_superuser": "true"})
    ImportRow.objects.filter(job=job, number=2).update(values={"username": "boss", "first_name": "Owned"})
    job.options = {"update_existing": True}  # as if update mode had been granted
    job.save(update_fields=["options"])

    rerun = rerun_failed(job, user=importer_user)
    assert rerun is not None
    rerun = JobRunner(rerun.pk, workers=1).run()

    assert rerun.status == JobStatus.FINISHED_WITH_ERRORS and rerun.failed == 2
    errors = [row.errors for row in ImportRow.objects.filter(job=rerun).order_by("number")]
    assert errors == [{"username": [PRIVILEGE_MESSAGE]}, {"is_superuser": [PRIVILEGE_MESSAGE]}]
    assert not User.objects.filter(username="newadmin").exists()
    boss.refresh_from_db()
    assert boss.first_name == "" and check_password(PASSWORD, boss.password)


def group_with(name: str, *perms: str) -> Group:
    group = Group.objects.create(name=name)
    for perm in perms:
        app_label, codename = perm.split(".")
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return group


def test_groups_granting_permissions_the_uploader_lacks_are_refused(write_file, importer_user):
    group_with("Admins", "auth.change_user", "auth.add_user")
    group_with("Helpers", "auth.add_user")  # the uploader holds this one
    Group.objects.create(name="Customers")  # no permissions at all
    path = write_file("g.csv", "username,groups\nann,Admins\nbob,Helpers;Customers\n")

    report = validate_file(path, "g.csv", UserImporter(ImportContext(user=importer_user)))

    assert [(e.row, e.column, e.message) for e in report.errors] == [
        (2, "groups", GROUP_MESSAGE.format(name="Admins"))
    ]
    assert report.valid == 1
    boss = make_user("boss", superuser=True)
    assert validate_file(path, "g.csv", UserImporter(ImportContext(user=boss))).errors == []


@pytest.mark.django_db(transaction=True)
def test_a_group_given_more_permissions_after_the_upload_is_refused_by_the_worker(write_file, importer_user):
    group = group_with("Editors")
    job = make_job(write_file("g.csv", "username,groups\nann,Editors\nbob,\n"), user=importer_user)
    group.permissions.add(Permission.objects.get(content_type__app_label="auth", codename="delete_user"))

    job = JobRunner(job.pk, workers=1).run()

    assert (job.succeeded, job.failed) == (1, 1)
    failed = ImportRow.objects.get(job=job)
    assert failed.errors == {"groups": [GROUP_MESSAGE.format(name="Editors")]}
    assert not User.objects.filter(username="ann").exists()


@pytest.mark.django_db(transaction=True)
def test_a_job_whose_starter_was_deleted_does_not_run_as_the_command_line(write_file):
    """Only the command line runs trusted; a deleted account's job runs as nobody."""
    updater = make_user("updater", perms=UPDATE_PERMS)
    plain = make_user("plain", staff=False)
    job = make_job(
        write_file("u.csv", "username,first_name\nplain,Owned\n"),
        user=updater,
        options={"update_existing": True},
    )
    updater.delete()
    User.objects.filter(pk=plain.pk).update(is_staff=True)  # promoted since the upload

    job = JobRunner(job.pk, workers=1).run()

    assert job.created_by is None and (job.succeeded, job.failed) == (0, 1)
    assert ImportRow.objects.get(job=job).errors == {"username": [PRIVILEGE_MESSAGE]}
    assert User.objects.get(pk=plain.pk).first_name == ""


def test_the_job_list_filter_names_only_users_who_started_a_job(client, write_file):
    make_user("hidden-ceo-account", staff=False)
    viewer = make_user("viewer", perms=("bulkadmin.view_importjob", "auth.add_user"))
    make_job(write_file("u.csv", "username\nann\n"), user=viewer)
    client.force_login(viewer)
    html = client.get(url("changelist")).content.decode()
    assert "viewer" in html and "hidden-ceo-account" not in html


def test_a_rerun_records_that_a_user_started_it(write_file, importer_user):
    from bulkadmin.jobs import context_for

    job = make_job(write_file("u.csv", "username\nboom1\n"))  # the command line: trusted
    assert context_for(job).is_trusted
    rerun = rerun_failed(settle(job, {2: {"__all__": ["refused"]}}), user=importer_user)
    assert rerun is not None
    importer_user.delete()
    rerun.refresh_from_db()
    assert rerun.created_by is None and not context_for(rerun).is_trusted
