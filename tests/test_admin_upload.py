"""The upload page, the report (every kind of validation message) and the confirm click."""

from __future__ import annotations

import csv
import io
import json
import os
import time

import openpyxl
import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.db.models.signals import post_save, pre_save
from django.test.utils import CaptureQueriesContext

from bulkadmin import conf, sealed_files, uploads, views
from bulkadmin.engine import JobRunner
from bulkadmin.jobs import prepare_job
from bulkadmin.models import ImportChunk, ImportJob, JobStatus, StartedVia
from bulkadmin.uploads import PendingUpload
from bulkadmin.validation import MASK
from tests.conftest import row_outcomes
from tests.test_admin_support import *  # noqa: F403  (the shared fixtures)
from tests.test_admin_support import IMPORT_PERMS, User, make_user, url

pytestmark = pytest.mark.django_db


def upload(client, content: str | bytes, name: str = "users.csv", **data):
    raw = content.encode() if isinstance(content, str) else content
    payload = {"file": SimpleUploadedFile(name, raw), "importer": "bulkadmin.importers.users.UserImporter"}
    payload.update(data)
    return client.post(url("add"), payload)


def token_of(response):
    return response.context["confirm_form"].initial["token"]


GOOD = "username,email\nann,ann@example.com\nbob,bob@example.com\ncyd,cyd@example.com\n"


# ---- the upload page -----------------------------------------------------------------------
def test_upload_page_looks_like_the_admin(staff_client):
    response = staff_client.get(url("add"))
    assert response.status_code == 200
    names = [t.name for t in response.templates]
    assert "bulkadmin/upload.html" in names and "admin/change_form.html" in names
    html = response.content.decode()
    assert 'class="breadcrumbs"' in html and 'enctype="multipart/form-data"' in html
    assert "theme-toggle" in html  # the admin's dark mode switch: each_context() was passed
    form = response.context["adminform"].form
    # no update mode for who may not change users; the email option because users are offered
    assert list(form.fields) == ["file", "importer", "send_password_email", "workers"]
    choices = form.fields["importer"].choices
    assert choices[0][0] == "bulkadmin.importers.users.UserImporter"
    assert form.initial["importer"] == choices[0][0]


def test_importers_offered_are_those_the_user_may_add(staff_client):
    choices = staff_client.get(url("add")).context["adminform"].form.fields["importer"].choices
    assert [c[0] for c in choices] == ["bulkadmin.importers.users.UserImporter"]  # no testapp.add_restaurant


def test_back_link_keeps_the_options(staff_client):
    response = staff_client.get(url("add") + "?update_existing=on&workers=3")
    form = response.context["adminform"].form
    assert form.initial["update_existing"] == "on" and form.initial["workers"] == "3"


# ---- validation in the request: no writes, no signals --------------------------------------
def test_upload_shows_a_report_and_writes_nothing(staff_client):
    fired = []

    def receiver(**kwargs):
        fired.append(kwargs["sender"])

    pre_save.connect(receiver, dispatch_uid="test-upload-pre")
    post_save.connect(receiver, dispatch_uid="test-upload-post")
    users_before = User.objects.count()
    try:
        with CaptureQueriesContext(connection) as queries:
            response = upload(staff_client, GOOD + "bad user!,x@example.com\n")
    finally:
        pre_save.disconnect(dispatch_uid="test-upload-pre")
        post_save.disconnect(dispatch_uid="test-upload-post")
    assert response.status_code == 200
    assert "bulkadmin/report.html" in [t.name for t in response.templates]
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].split()[0].upper() in ("INSERT", "UPDATE", "DELETE")
    ]
    assert writes == []
    assert fired == []
    assert ImportJob.objects.count() == 0 and User.objects.count() == users_before
    report = response.context["report"]
    assert (report.total, report.valid, report.invalid) == (4, 3, 1)
    html = response.content.decode()
    assert "Import 3 valid rows" in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert "ann@example.com" in html  # the preview


def test_upload_is_stored_privately_under_a_name_of_ours(staff_client):
    response = upload(staff_client, GOOD, name="../../etc/evil.csv")
    pending = PendingUpload.unsign(token_of(response), response.wsgi_request.user.pk)
    # in the uploader's own owner-only directory, named by a keyed hash, not by their pk
    assert pending.path.parent.parent == conf.data_dir() / "uploads"
    assert pending.path.parent == uploads.owner_dir(response.wsgi_request.user.pk)
    assert len(pending.path.parent.name) == 64 and pending.path.parent.name != pending.owner
    assert oct(pending.path.parent.stat().st_mode & 0o777) == oct(0o700)
    assert len(pending.path.name) == 32 and "evil" not in pending.path.name
    assert "ann@example.com" not in pending.path.read_bytes().decode("latin-1")  # sealed at rest
    with sealed_files.open_read(pending.path) as handle:
        assert handle.read().decode() == GOOD
    assert oct(pending.path.stat().st_mode & 0o777) == oct(0o600)
    assert "evil.csv" in response.content.decode()  # shown, for the user's benefit only


# Every message a staff member can meet, in the report's table of errors by row and column.
ROW_ERRORS = [
    ("username\nbad user!\n", "username", "Enter a valid username"),
    ("username,email\nann,not-an-email\n", "email", "Enter a valid email address."),
    ("username,is_active\nann,maybe\n", "is_active", "Not a yes/no value"),
    ("username,password\nann,123\n", "password", "This password is too short"),
    ("username,groups\nann,No Such Group\n", "groups", "Unknown group “No Such Group”."),
    ("username\nann\nANN\n", "username", "Duplicate of row 2."),
    ("username\nexisting\n", "username", "A user with the username “existing” already exists."),
    ("username,is_staff\nann,true\n", "is_staff", "Only a superuser may create or change staff"),
    ("username,email\n,x@example.com\n", "username", "This field is required."),
]


@pytest.mark.parametrize(("content", "column", "message"), ROW_ERRORS)
def test_every_row_error_appears_in_the_report(staff_client, content, column, message):
    User.objects.create(username="existing")
    response = upload(staff_client, content)
    assert response.status_code == 200
    errors = response.context["report"].errors
    assert any(e.column == column and message in e.message for e in errors), errors
    html = response.content.decode()
    assert f"<code>{column}</code>" in html
    from django.utils.html import escape

    assert escape(message) in html


FILE_ERRORS = [
    ("username\nzoë\n".encode() + b"Jos\xe9\n", "users.csv", "not UTF-8"),
    (b"", "users.csv", "file is empty."),
    (b"username\n", "users.csv", "no rows"),
    (b"\x00\x01\x02binary", "users.csv", "NUL bytes"),
]


def test_a_windows_csv_is_read_and_the_report_says_in_which_encoding(staff_client):
    response = upload(staff_client, "username,first_name\nrene,René\n".encode("cp1252"))
    assert response.context["report"].valid == 1
    html = response.content.decode()
    assert "The file is not UTF-8: it was read as Windows-1252." in html and "René" in html


@pytest.mark.parametrize(("content", "name", "message"), FILE_ERRORS)
def test_a_file_error_is_a_form_error_with_no_confirm(staff_client, content, name, message):
    response = upload(staff_client, content, name=name)
    assert response.status_code == 200
    assert "bulkadmin/upload.html" in [t.name for t in response.templates]
    errors = response.context["adminform"].form.errors["file"]
    assert any(message in e for e in errors), errors
    html = response.content.decode()
    assert "errornote" in html
    assert "confirm_form" not in html
    assert not [path for path in uploads.uploads_dir().rglob("*") if path.is_file()]  # nothing kept


def test_superuser_may_upload_staff_rows(super_client):
    response = upload(super_client, "username,is_staff,is_superuser\nboss,true,true\n")
    assert response.context["report"].invalid == 0


def test_preview_masks_passwords(staff_client):
    response = upload(staff_client, "username,password\nann,Correct-Horse-Battery-9\n")
    html = response.content.decode()
    assert "Correct-Horse" not in html and MASK in html


def test_other_formats(staff_client):
    book = openpyxl.Workbook()
    book.active.append(["username", "email"])
    book.active.append(["ann", "ann@example.com"])
    data = io.BytesIO()
    book.save(data)
    response = upload(staff_client, data.getvalue(), name="u.xlsx")
    assert response.context["report"].format == "xlsx" and response.context["report"].valid == 1
    response = upload(staff_client, json.dumps([{"username": "bob"}]), name="u.json")
    assert response.context["report"].format == "json" and response.context["report"].valid == 1
    response = upload(staff_client, "username\temail\ncyd\tcyd@example.com\n", name="u.tsv")
    assert response.context["report"].format == "tsv" and response.context["report"].valid == 1


def test_truncated_errors_say_so(staff_client, monkeypatch):
    monkeypatch.setattr(views, "ERRORS_SHOWN", 2)
    response = upload(staff_client, "username\nbad one\nbad two\nbad three\n")
    html = response.content.decode()
    assert "Showing the first 2 errors; 1 more are in the download of the invalid rows." in html


def test_no_valid_row_means_no_confirm_button(staff_client):
    response = upload(staff_client, "username\nbad one\n")
    html = response.content.decode()
    assert "No row is valid" in html and 'name="_confirm"' not in html


def test_too_large_upload(staff_client, settings):
    settings.BULKADMIN = {**settings.BULKADMIN, "MAX_UPLOAD_BYTES": 10}
    response = upload(staff_client, GOOD)
    assert "larger than 10 bytes" in str(response.context["adminform"].form.errors["file"])


def test_update_existing_is_offered_only_with_the_change_permission(staff_client, importer_user):
    """Before: offered to all, then refused after the upload, which cleared the chosen file."""
    assert "update_existing" not in staff_client.get(url("add")).context["adminform"].form.fields
    response = upload(staff_client, GOOD, update_existing="on")  # a forged form: ignored
    assert response.context["pending"].options["update_existing"] is False
    importer_user.user_permissions.add(
        __import__("django.contrib.auth.models", fromlist=["Permission"]).Permission.objects.get(
            codename="change_user"
        )
    )
    staff_client.force_login(User.objects.get(pk=importer_user.pk))
    assert "update_existing" in staff_client.get(url("add")).context["adminform"].form.fields
    response = upload(staff_client, GOOD, update_existing="on")
    assert response.context["report"].valid == 3
    assert response.context["pending"].options["update_existing"] is True


def test_stale_uploads_are_cleaned_up(staff_client):
    old = uploads.uploads_dir() / ("a" * 32)
    old.write_text("x")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (day_ago, day_ago))
    fresh = uploads.uploads_dir() / ("b" * 32)
    fresh.write_text("x")
    upload(staff_client, GOOD)
    assert not old.exists() and fresh.exists()


# ---- confirm -------------------------------------------------------------------------------
def test_confirm_creates_the_job_logs_it_and_launches_after_commit(
    staff_client, importer_user, launched, django_capture_on_commit_callbacks
):
    Group.objects.create(name="Editors")
    response = upload(
        staff_client,
        "username,email,groups,password\nann,ann@example.com,Editors,Correct-Horse-1\nbad user!,\nbob,,\n",
        send_password_email="on",
        workers="2",
    )
    token = token_of(response)
    path = PendingUpload.unsign(token, importer_user.pk).path
    assert ImportJob.objects.count() == 0  # nothing before the click
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = staff_client.post(url("confirm"), {"token": token})
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == url("change", job.pk)
    assert len(callbacks) == 1 and launched == [job.pk]
    assert job.status == JobStatus.QUEUED
    # The confirm reads nothing: the job holds the upload until its runner reads the rows in.
    assert not job.prepared and job.total == 0 and not ImportChunk.objects.exists()
    assert job.upload_id and not path.exists() and uploads.confirmed_path(job.upload_id).is_file()
    assert (job.created_by, job.workers) == (importer_user, 2)
    assert job.options == {"update_existing": False, "send_password_email": True}
    assert job.started_via == StartedVia.PERSON
    assert job.source_name == "users.csv"
    entry = LogEntry.objects.get()
    assert (entry.action_flag, entry.object_id, entry.user_id) == (ADDITION, str(job.pk), importer_user.pk)
    follow = staff_client.get(response["Location"])
    messages = [str(m) for m in follow.context["messages"]]
    assert any("Importing users.csv" in m for m in messages)

    prepare_job(job)
    job = ImportJob.objects.get(pk=job.pk)
    assert job.prepared and (job.total, job.processed, job.failed) == (3, 1, 1)
    assert row_outcomes(job) == {2: "pending", 3: "failed", 4: "pending"}
    assert "Correct-Horse" not in str(list(ImportChunk.objects.values()))
    assert not uploads.confirmed_path(str(job.upload_id)).exists()
    # The invalid row is not dropped: it is a failed row, with its errors, to correct.
    failed = job.rows.get()
    assert failed.number == 3 and failed.values["username"] == "bad user!" and "username" in failed.errors


def test_confirm_twice_does_not_import_twice(staff_client, launched, django_capture_on_commit_callbacks):
    token = token_of(upload(staff_client, GOOD))
    with django_capture_on_commit_callbacks(execute=True):
        first = staff_client.post(url("confirm"), {"token": token})
        second = staff_client.post(url("confirm"), {"token": token}, follow=True)
    job = ImportJob.objects.get()
    assert first["Location"] == second.redirect_chain[-1][0] == url("change", job.pk)
    assert len(launched) == 1
    assert any("already confirmed" in str(m) for m in second.context["messages"])


@pytest.mark.parametrize("tamper", ["garbage", "flip"])
def test_a_tampered_token_is_refused(staff_client, tamper):
    token = token_of(upload(staff_client, GOOD))
    bad = "garbage" if tamper == "garbage" else token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    response = staff_client.post(url("confirm"), {"token": bad}, follow=True)
    assert ImportJob.objects.count() == 0
    assert any("expired" in str(m) for m in response.context["messages"])


def test_another_users_token_is_refused(staff_client, client):
    token = token_of(upload(staff_client, GOOD))
    other = make_user("other", perms=IMPORT_PERMS)
    client.force_login(other)
    response = client.post(url("confirm"), {"token": token})
    assert response.status_code == 302 and response["Location"] == url("add")
    assert ImportJob.objects.count() == 0


def test_an_expired_token_is_refused(staff_client, settings):
    token = token_of(upload(staff_client, GOOD))
    settings.BULKADMIN = {**settings.BULKADMIN, "UPLOAD_TOKEN_MAX_AGE": -1}
    response = staff_client.post(url("confirm"), {"token": token})
    assert response["Location"] == url("add") and ImportJob.objects.count() == 0


def test_a_row_invalid_by_confirm_time_becomes_a_failed_row_not_lost(
    staff_client, launched, django_capture_on_commit_callbacks
):
    token = token_of(upload(staff_client, GOOD))
    User.objects.create(username="bob")  # taken since the report
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(url("confirm"), {"token": token})
    job = ImportJob.objects.get()
    prepare_job(job)
    job.refresh_from_db()
    assert (job.total, job.failed) == (3, 1)
    assert row_outcomes(job) == {2: "pending", 3: "failed", 4: "pending"}
    row = job.rows.get()
    assert (row.number, row.values["username"]) == (3, "bob")
    assert "already exists" in row.error_text
    # the job page says what changed since the report
    assert (job.reported_invalid, job.read_invalid, job.turned_invalid) == (0, 1, 1)
    html = staff_client.get(url("change", job.pk)).content.decode()
    assert "One row became invalid between the report and the import" in html


def test_confirm_with_no_valid_row_left_lists_them_all(staff_client):
    token = token_of(upload(staff_client, "username\nann\n"))
    User.objects.create(username="ann")
    staff_client.post(url("confirm"), {"token": token})
    job = ImportJob.objects.get()
    job = JobRunner(job.pk, workers=1).run()
    assert job.status == JobStatus.FINISHED_WITH_ERRORS
    assert (job.total, job.processed, job.failed, job.succeeded) == (1, 1, 1, 0)
    assert list(job.rows.values_list("number", flat=True)) == [2]


def test_confirm_is_post_only(staff_client):
    assert staff_client.get(url("confirm")).status_code == 405


def test_workers_are_capped_for_staff(staff_client, settings):
    settings.BULKADMIN = {**settings.BULKADMIN, "MAX_WORKERS": 2}
    response = upload(staff_client, GOOD, workers="3")
    assert "At most 2 worker processes on this server." in response.content.decode()
    assert "confirm_form" not in response.context
    assert token_of(upload(staff_client, GOOD, workers="2"))


def test_confirm_rechecks_the_change_permission_of_update_mode(client, launched):
    updater = make_user("updater", perms=(*IMPORT_PERMS, "auth.change_user"))
    client.force_login(updater)
    token = token_of(upload(client, GOOD, update_existing="on"))
    updater.user_permissions.remove(Permission.objects.get(codename="change_user"))
    client.force_login(User.objects.get(pk=updater.pk))  # a fresh permission cache

    assert client.post(url("confirm"), {"token": token}).status_code == 403
    assert not ImportJob.objects.exists() and launched == []


# ---- a report that leads -------------------------------------------------------------------
def test_the_verdict_comes_first_and_alike_errors_are_one_line(staff_client):
    """Before: 500 identical "already exists" lines, and the verdict 17,900 px down the page."""
    User.objects.bulk_create([User(username=f"old{i:03d}") for i in range(300)])
    lines = ["username"] + [f"old{i:03d}" for i in range(300)] + ["new1", "bad user!"]
    response = upload(staff_client, "\n".join(lines) + "\n")
    html = response.content.decode()
    verdict = html.index('data-verdict="partly"')
    assert verdict < html.index('id="report-errors"') and verdict < html.index('name="_confirm"')
    assert "1 of 302 rows are valid." in html
    groups = response.context["error_groups"]
    assert [(g.column, g.count, g.rows) for g in groups] == [
        ("username", 300, [2, 3, 4, 5, 6]),
        ("username", 1, [303]),
    ]
    assert groups[0].example == "A user with the username “old000” already exists."
    assert "and 295 more" in html
    # staff who may change users are offered the same file as updates, with no re-upload
    assert 'data-verdict="existing"' in html and response.context["can_recheck_as_update"] is False


def test_check_again_as_updates_without_uploading_again(client, launched):
    updater = make_user("updater", perms=(*IMPORT_PERMS, "auth.change_user"))
    client.force_login(updater)
    User.objects.bulk_create([User(username=f"old{i}") for i in range(3)])
    response = upload(client, "username,first_name\nold0,A\nold1,B\nold2,C\nnew,D\n")
    assert response.context["can_recheck_as_update"] and 'name="_recheck"' in response.content.decode()
    again = client.post(url("recheck"), {"token": token_of(response)})
    report = again.context["report"]
    assert (report.valid, report.invalid) == (4, 0)
    assert again.context["pending"].options["update_existing"] is True
    assert ImportJob.objects.count() == 0
    # the new token carries update mode to the confirm
    client.post(url("confirm"), {"token": token_of(again)})
    assert ImportJob.objects.get().options["update_existing"] is True


def test_check_again_as_updates_needs_the_change_permission(staff_client):
    User.objects.create(username="old0")
    response = upload(staff_client, "username\nold0\n")
    assert staff_client.post(url("recheck"), {"token": token_of(response)}).status_code == 403


def test_the_invalid_rows_download_before_confirming_is_a_fix_it_file(staff_client):
    response = upload(
        staff_client,
        "username,email,password\nann,ann@x.example,Correct-Horse-1\nbad user!,=cmd,Pw-Secret-99\n",
    )
    download = staff_client.post(url("invalid_rows"), {"token": token_of(response)})
    assert download["Content-Disposition"] == 'attachment; filename="users-invalid-rows.csv"'
    rows = list(csv.reader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert rows[0] == ["row", "username", "email", "errors"]  # never the password
    assert rows[1][:3] == ["3", "bad user!", "'=cmd"] and "Enter a valid username" in rows[1][3]
    assert len(rows) == 2 and ImportJob.objects.count() == 0
    # uploaded again as it is, the file is read: its own columns are ignored
    again = upload(
        staff_client,
        b"".join(staff_client.post(url("invalid_rows"), {"token": token_of(response)}).streaming_content),
    )
    assert again.context["report"].headers == ["username", "email"]


# ---- column mapping ------------------------------------------------------------------------
STAFF_HEADERS = (
    "User Name,E-mail,Surname,Active,department\nann,ann@example.com,Lovelace,yes,R&D\nbob,,Babbage,no,Ops\n"
)


def mapping_of(response) -> dict[str, str]:
    form = response.context["form"]
    return {header: field.value() for header, _examples, field in form.bound_rows()}


def test_headers_that_do_not_match_lead_to_a_mapping_step_that_writes_nothing(staff_client):
    """Before: "Unknown columns: 'user_name', 'e_mail'…", and any extra column was fatal."""
    with CaptureQueriesContext(connection) as queries:
        response = upload(staff_client, STAFF_HEADERS)
    assert next(t.name for t in response.templates) == "bulkadmin/mapping.html"
    assert not [q for q in queries if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert mapping_of(response) == {  # the file's own headers, as written
        "User Name": "username",
        "E-mail": "email",
        "Surname": "last_name",
        "Active": "is_active",
        "department": "",
    }
    html = response.content.decode()
    assert "Lovelace" in html and "R&amp;D" in html  # sample values beside each column
    assert ImportJob.objects.count() == 0


def test_a_confirmed_mapping_imports_and_is_remembered_for_the_same_header(
    staff_client, launched, django_capture_on_commit_callbacks
):
    from bulkadmin.models import ColumnMapping

    token = upload(staff_client, STAFF_HEADERS).context["form"].initial["token"]
    choices = {"column_0": "username", "column_1": "email", "column_2": "last_name", "column_3": "is_active"}
    with CaptureQueriesContext(connection) as queries:
        report = staff_client.post(url("columns"), {"token": token, "_map": "1", **choices, "column_4": ""})
    assert not [q for q in queries if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert (report.context["report"].valid, report.context["report"].invalid) == (2, 0)
    assert report.context["mapped"][0] == ("user_name", "username")
    assert "department</code> → ignored" in report.content.decode()
    assert ColumnMapping.objects.count() == 0  # remembered at the confirm, not before

    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(url("confirm"), {"token": token_of(report)})
    job = ImportJob.objects.get()
    assert job.column_map["department"] is None and job.column_map["e_mail"] == "email"
    prepare_job(job)
    assert job.chunks.get().rows[0] == [
        2,
        {"username": "ann", "email": "ann@example.com", "last_name": "Lovelace", "is_active": "yes"},
    ]
    remembered = ColumnMapping.objects.get()
    assert remembered.updated_by is not None and remembered.updated_by.username == "importer"

    # the next file with this header goes straight to its report
    response = upload(staff_client, STAFF_HEADERS.replace("ann", "cyd").replace("bob", "dan"))
    assert "bulkadmin/report.html" in [t.name for t in response.templates]
    assert response.context["report"].valid == 2
    assert any("mapped as they were" in str(m) for m in response.context["messages"])


def test_a_mapping_must_map_the_required_columns_once(staff_client):
    token = upload(staff_client, STAFF_HEADERS).context["form"].initial["token"]
    response = staff_client.post(
        url("columns"),
        {"token": token, "_map": "1", "column_0": "", "column_1": "email", "column_2": "email"},
    )
    errors = " ".join(response.context["form"].non_field_errors())
    assert "The required column “username” is not mapped" in errors
    assert "Only one column of the file can go to “email”." in errors
    assert ImportJob.objects.count() == 0


@pytest.mark.parametrize(
    "content",
    ["email\nann@example.com\n", "username,colour\nann,red\n"],
    ids=["a required column missing", "an unknown column"],
)
def test_a_header_that_does_not_match_is_mapped_not_refused(staff_client, content):
    response = upload(staff_client, content)
    assert response.status_code == 200 and "confirm_form" not in response.context
    assert response.context["problem"] and ImportJob.objects.count() == 0


# ---- the template file ---------------------------------------------------------------------
@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_each_importer_offers_a_template_file_whose_help_and_example_rows_are_skipped(
    staff_client, file_format
):
    page = staff_client.get(url("add")).content.decode()
    link = url("template", "bulkadmin.importers.users.UserImporter", file_format)
    assert link in page
    response = staff_client.get(link)
    assert response["Content-Disposition"] == f'attachment; filename="users-template.{file_format}"'
    content = b"".join(response.streaming_content) if response.streaming else response.content
    if file_format == "csv":
        rows = list(csv.reader(io.StringIO(content.decode())))
    else:
        sheet = openpyxl.load_workbook(io.BytesIO(content)).active
        rows = [[c or "" for c in row] for row in sheet.iter_rows(values_only=True)]
    assert rows[0][:2] == ["username", "email"]
    assert rows[1][0] == "(help) Required. Letters, digits and @/./+/-/_ only."
    assert rows[2][:2] == ["e.g. ada.lovelace", "e.g. ada@example.com"]
    # uploaded as it is: nothing to import, said plainly
    response = upload(staff_client, content, name=f"users-template.{file_format}")
    assert "The file has a header but no rows." in str(response.context["adminform"].form.errors)
    # filled in, the help and example rows left where they are: only the new row is read
    if file_format == "csv":
        filled = content + b"grace,grace@example.com,,,,,,,\n"
        report = upload(staff_client, filled, name="users.csv").context["report"]
        assert (report.total, report.valid) == (1, 1)


def test_a_template_needs_an_importer_the_user_may_use(staff_client):
    assert staff_client.get(url("template", "tests.testapp.importers.BookImporter", "csv")).status_code == 404


def test_the_invalid_rows_download_follows_the_column_mapping(staff_client):
    """Before: the download re-read the upload without its mapping, and so found no rows."""
    token = upload(
        staff_client, "User Name,E-mail,department\nann,ann@x.example,R&D\nbad user!,b@x.example,Ops\n"
    )
    token = token.context["form"].initial["token"]
    choices = {"column_0": "username", "column_1": "email", "column_2": ""}
    report = staff_client.post(url("columns"), {"token": token, "_map": "1", **choices})
    download = staff_client.post(url("invalid_rows"), {"token": token_of(report)})
    rows = list(csv.reader(io.StringIO(b"".join(download.streaming_content).decode())))
    assert rows[0] == ["row", "username", "email", "errors"]
    assert rows[1][:3] == ["3", "bad user!", "b@x.example"]
