"""The job page: progress JSON (constant cost), failed rows (list, search, edit, download), actions."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import openpyxl
import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from bulkadmin import crypto
from bulkadmin.models import ImportChunk, ImportJob, ImportRow, JobStatus, RowStatus
from tests.test_admin_support import *  # noqa: F403  (the shared fixtures)
from tests.test_admin_support import IMPORT_PERMS, make_job, make_user, settle, url

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished(write_file, importer_user):
    """A job whose rows 3 and 5 failed at import time."""
    path = write_file(
        "f.csv",
        "username,first_name,password\n"
        "ann,Ann,\n"
        'boom1,"=HYPERLINK(""http://evil"")",Secret-Pass-123\n'
        "cyd,Cyd,\n"
        "boom2,+1-555,\n",
    )
    job = make_job(path, user=importer_user)
    return settle(
        job,
        {3: {"__all__": ["RuntimeError: receiver refused boom1"]}, 5: {"username": ["@bad start"]}},
    )


def running_job(users_csv, importer_user, *, heartbeat_age: float = 0.0, processed: int = 0):
    job = make_job(users_csv(20), user=importer_user)
    ImportJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING,
        runner_pid=12345,
        started_at=timezone.now() - timedelta(seconds=10),
        heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age),
        processed=processed,
        succeeded=processed,
    )
    job.refresh_from_db()
    return job


# ---- the page ------------------------------------------------------------------------------
def test_job_page_shows_state_and_polls(staff_client, users_csv, importer_user):
    job = running_job(users_csv, importer_user, processed=5)
    response = staff_client.get(url("change", job.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert "admin/change_form.html" in [t.name for t in response.templates]
    assert 'class="breadcrumbs"' in html
    assert 'data-polling="true"' in html and url("progress", job.pk) in html
    assert '<noscript><meta http-equiv="refresh" content="3"></noscript>' in html
    assert "bulkadmin/job.js" in html
    assert 'aria-valuenow="25"' in html and "rows/s" in html
    assert "Cancel the import" in html
    assert 'name="_save"' not in html  # read-only: no editing of job fields


def test_job_page_names_the_importer_and_options_in_words(staff_client, write_file, importer_user):
    job = make_job(
        write_file("u.csv", "username\nann\n"), user=importer_user, options={"update_existing": True}
    )
    html = staff_client.get(url("change", job.pk)).content.decode()
    assert '<div class="readonly">Users</div>' in html
    assert '<div class="readonly">Update existing objects instead of rejecting their rows</div>' in html
    assert "update_existing" not in html


def test_finished_job_page_stops_polling(staff_client, finished):
    html = staff_client.get(url("change", finished.pk)).content.decode()
    assert 'data-polling="false"' in html and "<noscript><meta" not in html
    assert "Rerun all 2 failed rows" in html and "Download failed rows (CSV)" in html
    assert "Cancel the import" not in html


def test_the_change_page_cannot_edit_the_job(staff_client, finished):
    response = staff_client.post(url("change", finished.pk), {"status": "queued"})
    assert response.status_code == 403
    assert ImportJob.objects.get(pk=finished.pk).status == JobStatus.FINISHED_WITH_ERRORS


def test_changelist(staff_client, finished):
    response = staff_client.get(url("changelist"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "f.csv" in html and "Finished with errors" in html
    names = [
        f if isinstance(f, str) else getattr(f, "parameter_name", None) or f[0]
        for f in response.context["cl"].list_filter
    ]
    assert names == ["status", "model"]  # only their own jobs: no "whose" or "started by"
    assert staff_client.get(url("changelist") + "?q=f.csv").context["cl"].result_count == 1
    assert staff_client.get(url("changelist") + "?q=nothing").context["cl"].result_count == 0


# ---- progress ------------------------------------------------------------------------------
def test_progress_json(staff_client, users_csv, importer_user):
    job = running_job(users_csv, importer_user, processed=5)
    data = staff_client.get(url("progress", job.pk)).json()
    assert {k: data[k] for k in ("status", "total", "processed", "succeeded", "failed", "is_final")} == {
        "status": "running",
        "total": 20,
        "processed": 5,
        "succeeded": 5,
        "failed": 0,
        "is_final": False,
    }
    assert data["percent"] == 25.0 and data["polling"] is True
    assert data["started_at"] and data["finished_at"] is None
    assert 0 <= data["heartbeat_age"] < 5
    assert 9 < data["elapsed"] < 20 and data["rate"] > 0 and data["eta"] > 0


def test_progress_costs_the_same_whatever_the_job_size(
    staff_client, users_csv, importer_user, django_assert_num_queries
):
    small = running_job(users_csv, importer_user, processed=1)
    large = make_job(users_csv(1500, prefix="big"), user=importer_user)
    ImportJob.objects.filter(pk=large.pk).update(status=JobStatus.RUNNING, heartbeat_at=timezone.now())
    staff_client.get(url("progress", small.pk))  # warm up anything cached per process
    # session, user, the user's permissions, group permissions, the job row
    with django_assert_num_queries(5):
        assert staff_client.get(url("progress", small.pk)).json()["total"] == 20
    with django_assert_num_queries(5):
        assert staff_client.get(url("progress", large.pk)).json()["total"] == 1500


def test_a_stale_live_job_is_reported_crashed(
    staff_client, users_csv, importer_user, django_assert_max_num_queries
):
    job = running_job(users_csv, importer_user, heartbeat_age=3600)
    with django_assert_max_num_queries(7):
        data = staff_client.get(url("progress", job.pk)).json()
    assert data["status"] == "crashed" and data["polling"] is False
    assert "heartbeats" in data["error"]
    assert ImportJob.objects.get(pk=job.pk).status == JobStatus.CRASHED


def test_progress_404(staff_client):
    assert staff_client.get(url("progress", 999999)).status_code == 404


# ---- failed rows ---------------------------------------------------------------------------
def test_failed_rows_are_listed_with_their_errors(staff_client, finished):
    html = staff_client.get(url("change", finished.pk)).content.decode()
    assert 'id="failed-rows"' in html
    assert "receiver refused boom1" in html and "@bad start" in html
    assert "Secret-Pass" not in html
    rows = ImportRow.objects.filter(job=finished, status=RowStatus.FAILED).order_by("number")
    for row in rows:
        assert url("row", finished.pk, row.pk) in html


def test_failed_rows_search_and_paging(staff_client, finished, settings):
    response = staff_client.get(url("change", finished.pk) + "?q=boom2")
    assert [row.number for row, _ in response.context["failed_rows"]] == [5]
    response = staff_client.get(url("change", finished.pk) + "?q=3")
    assert [row.number for row, _ in response.context["failed_rows"]] == [3]
    settings.BULKADMIN = {**settings.BULKADMIN, "FAILED_ROWS_PER_PAGE": 1}
    response = staff_client.get(url("change", finished.pk) + "?page=2")
    assert [row.number for row, _ in response.context["failed_rows"]] == [5]
    assert "Page 2 of 2" in response.content.decode()


def test_edit_a_failed_row(staff_client, finished, importer_user):
    row = ImportRow.objects.get(job=finished, number=3)
    edit = url("row", finished.pk, row.pk)
    response = staff_client.get(edit)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Secret-Pass" not in html and 'type="password"' in html
    assert 'value="boom1"' in html and 'class="breadcrumbs"' in html

    # errors of clean_row and check_rows are shown, nothing saved
    response = staff_client.post(edit, {"username": "bad name!", "first_name": "X", "password": ""})
    assert response.status_code == 200 and "Enter a valid username" in response.content.decode()
    response = staff_client.post(edit, {"username": "fixed", "first_name": "X", "password": "short"})
    assert "too short" in response.content.decode()
    assert ImportRow.objects.get(pk=row.pk).values["username"] == "boom1"

    # blank password keeps the old one, unseen
    response = staff_client.post(edit, {"username": "fixed1", "first_name": "Fixed", "password": ""})
    assert response.status_code == 302 and response["Location"].endswith("#failed-rows")
    row.refresh_from_db()
    assert row.values == {"username": "fixed1", "first_name": "Fixed"}
    assert crypto.unseal(row.secret) == {"password": "Secret-Pass-123"}
    assert row.status == RowStatus.FAILED and row.errors == {}
    assert LogEntry.objects.filter(action_flag=CHANGE, object_id=str(finished.pk)).exists()

    # a new password replaces it
    staff_client.post(edit, {"username": "fixed1", "first_name": "", "password": "Another-Pass-456"})
    row.refresh_from_db()
    assert crypto.unseal(row.secret) == {"password": "Another-Pass-456"}


def test_rows_of_a_running_job_cannot_be_edited(staff_client, users_csv, importer_user):
    job = running_job(users_csv, importer_user)
    row = ImportRow.objects.create(job=job, number=2, values={"username": "boom1"}, errors={"__all__": ["x"]})
    response = staff_client.post(url("row", job.pk, row.pk), {"username": "x"})
    assert response.status_code == 302 and ImportRow.objects.get(pk=row.pk).values["username"] != "x"


def test_only_a_failed_row_of_this_job_is_editable(staff_client, finished, users_csv, importer_user):
    assert not ImportRow.objects.filter(job=finished, number=2).exists()  # succeeded: no record
    other = settle(make_job(users_csv(3), user=importer_user), {2: {"__all__": ["refused"]}})
    row_of_other_job = ImportRow.objects.get(job=other)
    assert staff_client.get(url("row", finished.pk, row_of_other_job.pk)).status_code == 404
    assert staff_client.get(url("row", other.pk, row_of_other_job.pk)).status_code == 200


def test_rerun_failed_rows(
    staff_client, finished, importer_user, launched, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(url("rerun", finished.pk))
    rerun = ImportJob.objects.exclude(pk=finished.pk).get()
    assert response["Location"] == url("change", rerun.pk)
    assert (rerun.parent, rerun.total, rerun.created_by) == (finished, 2, importer_user)
    assert launched == [rerun.pk]
    assert ImportJob.objects.get(pk=rerun.pk).status == JobStatus.QUEUED
    assert LogEntry.objects.filter(action_flag=ADDITION, object_id=str(rerun.pk)).exists()
    html = staff_client.get(url("change", rerun.pk)).content.decode()
    assert f"#{finished.pk}" in html  # linked to its parent


def test_a_rerun_takes_its_rows_so_a_second_click_reruns_nothing(
    staff_client, finished, launched, django_capture_on_commit_callbacks
):
    """Before: the parent still offered every row, and a second rerun imported them again."""
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(url("rerun", finished.pk), {"_rerun_all": "1"})
        second = staff_client.post(url("rerun", finished.pk), {"_rerun_all": "1"}, follow=True)
    rerun = ImportJob.objects.exclude(pk=finished.pk).get()
    assert launched == [rerun.pk]
    assert any("No failed row is left" in str(m) for m in second.context["messages"])
    assert set(finished.rows.values_list("rerun_id", flat=True)) == {rerun.pk}
    html = staff_client.get(url("change", finished.pk)).content.decode()
    assert "_rerun_all" not in html and f"In rerun #{rerun.pk}" in html
    assert url("change", rerun.pk) + "#row-3" in html  # where each row went
    taken = finished.rows.get(number=3)
    response = staff_client.post(url("row", finished.pk, taken.pk), {"username": "x"})
    assert response.status_code == 302 and finished.rows.get(number=3).values["username"] == "boom1"


def test_rerun_the_corrected_rows_only(staff_client, finished, launched, django_capture_on_commit_callbacks):
    row = finished.rows.get(number=3)
    staff_client.post(
        url("row", finished.pk, row.pk), {"username": "fixed1", "first_name": "F", "password": ""}
    )
    html = staff_client.get(url("change", finished.pk)).content.decode()
    assert 'value="Rerun the corrected row"' in html and 'value="Rerun all 2 failed rows"' in html
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(url("rerun", finished.pk), {"_rerun_corrected": "1"})
    rerun = ImportJob.objects.exclude(pk=finished.pk).get()
    assert rerun.total == 1 and [c.row_numbers() for c in rerun.chunks.all()] == [[3]]
    html = staff_client.get(url("change", finished.pk)).content.decode()
    assert "_rerun_corrected" not in html and 'value="Rerun 1 failed row"' in html
    # the password given in the file goes with the corrected row
    chunk = rerun.chunks.get()
    assert crypto.unseal_rows(chunk.secret) == {3: {"password": "Secret-Pass-123"}}


def test_a_rerun_may_switch_on_updating_existing_objects(
    client, finished, launched, django_capture_on_commit_callbacks
):
    plain = make_user("plain", perms=(*IMPORT_PERMS, "bulkadmin.view_all_importjobs"))
    client.force_login(plain)
    assert "update_existing" not in client.get(url("change", finished.pk)).content.decode()
    assert (
        client.post(url("rerun", finished.pk), {"_rerun_all": "1", "update_existing": "on"}).status_code
        == 403
    )
    updater = make_user("updater", perms=(*IMPORT_PERMS, "auth.change_user", "bulkadmin.view_all_importjobs"))
    client.force_login(updater)
    assert 'name="update_existing"' in client.get(url("change", finished.pk)).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url("rerun", finished.pk), {"_rerun_all": "1", "update_existing": "on"})
    rerun = ImportJob.objects.exclude(pk=finished.pk).get()
    assert rerun.options["update_existing"] is True and rerun.created_by == updater


def test_rerun_needs_failed_rows_and_a_stopped_job(staff_client, users_csv, importer_user, launched):
    job = running_job(users_csv, importer_user)
    staff_client.post(url("rerun", job.pk))
    assert ImportJob.objects.count() == 1 and launched == []


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_download_failed_rows(staff_client, finished, file_format):
    response = staff_client.get(url("download", finished.pk, file_format))
    assert response.status_code == 200
    assert (
        response["Content-Disposition"]
        == f'attachment; filename="job-{finished.pk}-failed-rows.{file_format}"'
    )
    content = response.getvalue()
    assert response.streaming  # written a batch at a time, never built whole in the request
    if file_format == "csv":
        rows = list(csv.reader(io.StringIO(content.decode())))
    else:
        sheet = openpyxl.load_workbook(io.BytesIO(content)).active
        assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
        rows = [[c if c is not None else "" for c in row] for row in sheet.iter_rows(values_only=True)]
    job = str(finished.pk)
    assert rows[0] == ["row", "username", "first_name", "errors", "job"]
    assert rows[1] == [
        "3",
        "boom1",
        '\'=HYPERLINK("http://evil")',
        "RuntimeError: receiver refused boom1",
        job,
    ]
    assert rows[2] == ["5", "boom2", "'+1-555", "username: @bad start", job]
    assert b"Secret-Pass" not in content and b"password" not in content


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_the_download_uploads_again_unchanged(staff_client, finished, file_format):
    """Before: "Row 1: Unknown column: 'errors'"."""
    content = staff_client.get(url("download", finished.pk, file_format)).getvalue()
    name = f"job-{finished.pk}-failed-rows.{file_format}"
    response = staff_client.post(
        url("add"),
        {"file": SimpleUploadedFile(name, content), "importer": "bulkadmin.importers.users.UserImporter"},
    )
    report = response.context["report"]
    assert not report.file_error and report.headers == ["username", "first_name"]
    assert (report.total, report.valid, report.errors) == (2, 2, [])
    # the escaped formula and phone number read back as they were in the job
    assert report.preview == [
        (2, {"username": "boom1", "first_name": '=HYPERLINK("http://evil")'}),
        (3, {"username": "boom2", "first_name": "+1-555"}),
    ]


def test_a_corrected_fix_it_file_keeps_the_password_the_download_left_out(
    staff_client, finished, launched, django_capture_on_commit_callbacks
):
    from bulkadmin.jobs import prepare_job

    rows = list(
        csv.reader(io.StringIO(staff_client.get(url("download", finished.pk, "csv")).getvalue().decode()))
    )
    rows[1][1], rows[2][1] = "fixed1", "fixed2"  # usernames corrected; no password column at all
    fixed = io.StringIO()
    csv.writer(fixed).writerows(rows)
    response = staff_client.post(
        url("add"),
        {
            "file": SimpleUploadedFile("fixed.csv", fixed.getvalue().encode()),
            "importer": "bulkadmin.importers.users.UserImporter",
        },
    )
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(url("confirm"), {"token": response.context["confirm_form"].initial["token"]})
    job = ImportJob.objects.exclude(pk=finished.pk).get()
    prepare_job(job)
    chunk = job.chunks.get()
    assert [number for number, _ in chunk.rows] == [2, 3]
    assert crypto.unseal_rows(chunk.secret) == {2: {"password": "Secret-Pass-123"}}
    # the failed rows of the first job say where they went
    assert set(finished.rows.values_list("rerun_id", flat=True)) == {job.pk}
    html = staff_client.get(url("change", finished.pk)).content.decode()
    assert f"In rerun #{job.pk}" in html and "_rerun_all" not in html


def test_a_fix_it_file_cannot_borrow_another_persons_rows(
    client, finished, django_capture_on_commit_callbacks
):
    from bulkadmin.jobs import prepare_job

    other = make_user("other", perms=IMPORT_PERMS)
    client.force_login(other)
    assert client.get(url("download", finished.pk, "csv")).status_code == 403  # not theirs to see
    # a forged fix-it file naming the other person's failed rows
    download = f"row,username,errors,job\n3,boom1,,{finished.pk}\n5,boom2,,{finished.pk}\n".encode()
    response = client.post(
        url("add"),
        {"file": SimpleUploadedFile("f.csv", download), "importer": "bulkadmin.importers.users.UserImporter"},
    )
    client.post(url("confirm"), {"token": response.context["confirm_form"].initial["token"]})
    job = ImportJob.objects.exclude(pk=finished.pk).get()
    prepare_job(job)
    assert crypto.unseal_rows(job.chunks.get().secret) == {}
    assert set(finished.rows.values_list("rerun_id", flat=True)) == {None}


def test_download_unknown_format(staff_client, finished):
    assert staff_client.get(url("download", finished.pk, "pdf")).status_code == 404


def test_formula_escaping():
    from bulkadmin.fixit import escape_formula

    for value in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert escape_formula(value) == "'" + value
    assert escape_formula("plain") == "plain" and escape_formula(None) == ""


# ---- cancel and resume ---------------------------------------------------------------------
def test_cancel(staff_client, users_csv, importer_user):
    job = running_job(users_csv, importer_user)
    response = staff_client.post(url("cancel", job.pk))
    assert response["Location"] == url("change", job.pk)
    assert ImportJob.objects.get(pk=job.pk).status == JobStatus.CANCELLING
    assert LogEntry.objects.filter(action_flag=CHANGE, change_message="Cancelled the import.").exists()


def test_cancel_a_finished_job_does_nothing(staff_client, finished):
    response = staff_client.post(url("cancel", finished.pk), follow=True)
    assert ImportJob.objects.get(pk=finished.pk).status == JobStatus.FINISHED_WITH_ERRORS
    assert any("nothing to cancel" in str(m) for m in response.context["messages"])


@pytest.mark.parametrize("how", ["crashed", "stale", "cancelled"])
def test_resume(staff_client, users_csv, importer_user, launched, django_capture_on_commit_callbacks, how):
    job = running_job(users_csv, importer_user, heartbeat_age=3600 if how == "stale" else 0, processed=5)
    if how in ("crashed", "cancelled"):
        ImportJob.objects.filter(pk=job.pk).update(status=how)
    assert "Resume" in staff_client.get(url("change", job.pk)).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(url("resume", job.pk))
    assert response["Location"] == url("change", job.pk)
    assert launched == [job.pk]
    assert ImportJob.objects.get(pk=job.pk).status == JobStatus.QUEUED


def test_a_live_job_is_not_resumed(
    staff_client, users_csv, importer_user, launched, django_capture_on_commit_callbacks
):
    job = running_job(users_csv, importer_user)
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(url("resume", job.pk))
    assert launched == [] and ImportJob.objects.get(pk=job.pk).status == JobStatus.RUNNING


def test_actions_are_post_only(staff_client, finished):
    for name in ("cancel", "resume", "rerun"):
        assert staff_client.get(url(name, finished.pk)).status_code == 405


def test_actions_need_csrf(client, importer_user, finished):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(importer_user)
    for name in ("cancel", "resume", "rerun"):
        assert strict.post(url(name, finished.pk)).status_code == 403
    row = ImportRow.objects.get(job=finished, number=3)
    assert strict.post(url("row", finished.pk, row.pk), {"username": "x"}).status_code == 403
    assert strict.post(url("confirm"), {"token": "x"}).status_code == 403


def test_deleting_a_job_counts_its_chunks_and_rows_and_never_lists_them(super_client, users_csv, admin_user_):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def delete_page(rows: int) -> tuple[ImportJob, int, str]:
        job = settle(make_job(users_csv(rows, prefix=f"d{rows}-"), user=admin_user_), {2: {"__all__": ["x"]}})
        with CaptureQueriesContext(connection) as queries:
            html = super_client.get(url("delete", job.pk)).content.decode()
        return job, len(queries), html

    small, small_queries, _ = delete_page(10)
    big, big_queries, html = delete_page(2500)
    assert big_queries == small_queries  # the page costs the same whatever the job's size
    assert "Import chunks: 25" in html and "Import rows: 1" in html
    assert "d2500-" not in html  # no row listed

    response = super_client.post(url("delete", big.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not ImportJob.objects.filter(pk=big.pk).exists()
    assert not ImportChunk.objects.filter(job_id=big.pk).exists()
    assert not ImportRow.objects.filter(job_id=big.pk).exists()
    assert ImportChunk.objects.filter(job=small).exists()  # the other job is untouched


def test_a_cancelled_job_with_nothing_pending_offers_no_resume(staff_client, finished):
    ImportJob.objects.filter(pk=finished.pk).update(status=JobStatus.CANCELLED)
    assert 'value="Resume"' not in staff_client.get(url("change", finished.pk)).content.decode()


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_a_download_costs_a_few_queries_whatever_the_number_of_failed_rows(
    staff_client, users_csv, importer_user, file_format
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    job = make_job(users_csv(60), user=importer_user)
    job = settle(job, {number: {"__all__": ["refused"]} for number in range(2, 62)})
    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(url("download", job.pk, file_format))
        content = response.getvalue()
    assert content.count(b"refused") == 60 or file_format == "xlsx"
    assert len(queries) < 20, [q["sql"][:120] for q in queries.captured_queries[:5]]


def test_a_rerun_costs_a_few_queries_whatever_the_number_of_failed_rows(users_csv, importer_user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bulkadmin.jobs import rerun_failed

    job = make_job(users_csv(60), user=importer_user)
    job = settle(job, {number: {"__all__": ["refused"]} for number in range(2, 62)})
    with CaptureQueriesContext(connection) as queries:
        rerun = rerun_failed(job, user=importer_user)
        assert rerun is not None
    assert rerun.total == 60
    assert len(queries) < 20, [q["sql"][:120] for q in queries.captured_queries[:5]]


def test_the_correct_row_form_speaks_in_the_importers_fields(staff_client, write_file, importer_user):
    """Before: raw names ("first_name:"), is_active a text box holding "true", groups free text."""
    from django.contrib.auth.models import Group

    Group.objects.create(name="Editors")
    Group.objects.create(name="Support")
    job = make_job(
        write_file("g.csv", "username,first_name,is_active,groups\nboom1,Ann,true,Editors\n"),
        user=importer_user,
    )
    job = settle(job, {2: {"__all__": ["RuntimeError: receiver refused boom1"]}})
    row = job.rows.get()
    form = staff_client.get(url("row", job.pk, row.pk)).context["adminform"].form
    assert form.fields["first_name"].label == "First name"
    assert form.fields["is_active"].label == "Active" and form["is_active"].value() is True
    assert [c for c, _l in form.fields["groups"].choices] == ["Editors", "Support"]
    assert form["groups"].value() == ["Editors"]
    response = staff_client.post(
        url("row", job.pk, row.pk),
        {"username": "fixed1", "first_name": "Ann", "is_active": "false", "groups": ["Editors", "Support"]},
    )
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.values == {
        "username": "fixed1",
        "first_name": "Ann",
        "is_active": "false",
        "groups": "Editors;Support",
    }
