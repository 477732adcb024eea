"""Reverting a job: what it created is deleted through delete(), what it changed gets its earlier
values back through save(), an object changed since is left alone, and a revert is a job like
any other: resumable after a SIGKILL, each object once, and a second revert changes nothing."""

from __future__ import annotations

import datetime
import signal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from bulkadmin import undo
from bulkadmin.engine import JobRunner
from bulkadmin.jobs import create_job, rerun_failed
from bulkadmin.models import ImportChunk, ImportJob, ImportRow, JobKind, JobStatus
from bulkadmin.reverts import NotRevertible, plan, start_revert
from tests.conftest import import_rows, manage, wait_until
from tests.test_faults import start_runner
from tests.testapp.models import SignalRecord

pytestmark = pytest.mark.django_db(transaction=True)
User = get_user_model()


def imported(write_file, content: str, **options) -> ImportJob:
    path = write_file("users.csv", content)
    job, report = create_job(path, path.name, options=options)
    assert job is not None, report.errors
    job = JobRunner(job.pk, workers=2, chunk_size=25).run()
    assert job.failed == 0, list(job.rows.values_list("errors", flat=True))
    return job


def test_reverting_a_create_job_deletes_each_object_through_delete(write_file, knobs):
    User.objects.create_user("bystander")
    rows = "".join(f"user{i:03d},u{i}@example.com\n" for i in range(120))
    job = imported(write_file, "username,email\n" + rows)
    knobs(record_changes="1")

    what = plan(job)
    assert (what.deletes, what.restores, what.unrecorded) == (120, 0, 0)
    revert, created = start_revert(job)
    assert created and revert.kind == JobKind.REVERT and revert.reverts == job and revert.total == 120
    revert = JobRunner(revert.pk, workers=2, chunk_size=25).run()

    assert revert.status == JobStatus.SUCCEEDED and revert.succeeded == 120
    assert not User.objects.filter(username__startswith="user").exists()
    assert User.objects.filter(username="bystander").exists()
    deleted = SignalRecord.objects.filter(signal="delete")
    assert deleted.count() == 120 and deleted.values("username").distinct().count() == 120

    # Asking again gives the same revert; a new one (after errors) would change nothing either.
    again, created = start_revert(job)
    assert (again.pk, created) == (revert.pk, False)
    with pytest.raises(NotRevertible, match="cannot itself be reverted"):
        start_revert(revert)


def test_reverting_an_update_job_restores_earlier_values_and_leaves_objects_edited_since(write_file, knobs):
    support = Group.objects.create(name="Support")
    old = Group.objects.create(name="Old")
    ann = User.objects.create_user("ann", first_name="Ann", is_active=True)
    ann.groups.add(old)
    User.objects.create_user("bob", first_name="Bob")
    User.objects.create_user("cyd", first_name="Cyd", email="cyd@example.com")
    job = imported(
        write_file,
        "username,first_name,is_active,groups,email\n"
        "ann,Annie,false,Support,\n"
        "bob,Robert,,,\n"
        "cyd,,,,cyd@new.example.com\n"
        "dan,Dan,,,\n",  # created: the revert deletes it
        update_existing=True,
    )
    ann.refresh_from_db()
    assert (ann.first_name, ann.is_active, list(ann.groups.all())) == ("Annie", False, [support])
    User.objects.filter(username="bob").update(first_name="Bobby")  # edited by someone since

    what = plan(job)
    assert (what.deletes, what.restores) == (1, 3)
    result = manage("revertjob", str(job.pk), "--no-progress", "--workers", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 objects to delete, 3 to restore" in result.stdout

    ann.refresh_from_db()
    assert (ann.first_name, ann.is_active, list(ann.groups.all())) == ("Ann", True, [old])
    assert User.objects.get(username="bob").first_name == "Bobby"  # their change wins
    assert User.objects.get(username="cyd").email == "cyd@example.com"
    assert not User.objects.filter(username="dan").exists()
    revert = ImportJob.objects.get(reverts=job)
    assert (revert.succeeded, revert.failed) == (3, 1)
    failed = ImportRow.objects.get(job=revert)
    assert failed.number == 3 and "Changed since the import" in failed.error_text  # bob's row
    assert "first_name" in failed.errors

    # Reverting again changes nothing: the job has its revert, whose failed row is what is left.
    knobs(record_changes="1")
    result = manage("revertjob", str(job.pk), "--no-progress", "--workers", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"reverted already, by job {revert.pk}" in result.stdout
    assert not SignalRecord.objects.filter(signal__in=["update", "delete"]).exists()
    assert ImportJob.objects.filter(reverts=job).count() == 1

    # Once bob's editor is fine with it, rerunning the revert's failed row restores him; a rerun
    # is a revert too, and does it once.
    User.objects.filter(username="bob").update(first_name="Robert")
    rerun = rerun_failed(revert)
    assert rerun is not None and rerun.kind == JobKind.REVERT and rerun.reverts_id == job.pk
    rerun = JobRunner(rerun.pk, workers=1).run()
    assert (rerun.succeeded, rerun.failed) == (1, 0)
    assert User.objects.get(username="bob").first_name == "Bob"


def test_a_revert_killed_with_sigkill_then_resumed_deletes_each_object_once(write_file, knobs):
    count = 200
    job = imported(write_file, "username\n" + "".join(f"user{i:03d}\n" for i in range(count)))
    knobs(record_changes="1", delete_delay="0.02")
    revert, _ = start_revert(job)

    runner = start_runner(revert.pk)
    wait_until(lambda: ImportJob.objects.get(pk=revert.pk).processed >= 40, what="the revert to start")
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=30)
    assert ImportJob.objects.get(pk=revert.pk).processed < count
    wait_until(lambda: ImportJob.objects.filter(pk=revert.pk).stale().exists(), timeout=30, interval=0.2)
    assert ImportJob.objects.filter(pk=revert.pk).mark_stale_crashed() == 1

    # `revertjob` finds the unfinished revert and resumes it rather than starting another.
    result = manage("revertjob", str(job.pk), "--no-progress", "--workers", "2", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Resuming job {revert.pk}" in result.stdout
    revert.refresh_from_db()
    assert (revert.status, revert.succeeded, revert.failed) == (JobStatus.SUCCEEDED, count, 0)
    assert not User.objects.filter(username__startswith="user").exists()
    deleted = list(SignalRecord.objects.filter(signal="delete").values_list("username", flat=True))
    assert sorted(deleted) == sorted({f"user{i:03d}" for i in range(count)})  # each once
    assert ImportJob.objects.filter(reverts=job).count() == 1


def test_jobs_from_before_undo_was_recorded_cannot_be_reverted(write_file):
    job = imported(write_file, "username\nann\n")
    ImportJob.objects.filter(pk=job.pk).update(records_undo=False)
    job.refresh_from_db()
    result = manage("revertjob", str(job.pk))
    assert result.returncode == 2 and "cannot be reverted" in result.stderr
    assert User.objects.filter(username="ann").exists()


def test_the_undo_record_is_written_with_the_change(write_file):
    User.objects.create_user("ann", first_name="Ann")
    job = imported(write_file, "username,first_name\nann,Annie\nbob,Bob\n", update_existing=True)
    (chunk,) = ImportChunk.objects.filter(job=job)
    ann = User.objects.get(username="ann")
    assert chunk.object_pks == {"2": str(ann.pk), "3": str(User.objects.get(username="bob").pk)}
    assert chunk.undo == {
        "2": {"before": {"first_name": "Ann"}, "after": {"first_name": "Annie"}},
        "3": {"created": True},
    }


def test_a_row_its_importer_did_not_describe_is_never_deleted(write_file):
    """A chunk without a record for a row (an importer that did not say): the revert fails the
    row and leaves the object, rather than take it for one the job created."""
    User.objects.create_user("ann")
    job = imported(write_file, "username\nbob\n")
    ImportChunk.objects.filter(job=job).update(undo={})
    ann_pk = User.objects.get(username="ann").pk
    ImportChunk.objects.filter(job=job).update(object_pks={"2": str(ann_pk)})
    assert plan(job).unrecorded == 1 and plan(job).deletes == 0
    revert, _ = start_revert(job)
    revert = JobRunner(revert.pk, workers=1).run()
    assert (revert.succeeded, revert.failed) == (0, 1)
    assert User.objects.filter(username="ann").exists()


def test_a_cancelled_job_once_reverted_is_never_resumed(write_file):
    path = write_file("users.csv", "username\n" + "".join(f"user{i:02d}\n" for i in range(30)))
    job, _ = create_job(path, path.name, size=10)
    assert job is not None
    import_rows(job, range(2, 12))  # the first chunk, as a runner would
    job.request_cancel()
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.is_resumable
    revert, _ = start_revert(job)
    assert JobRunner(revert.pk, workers=1).run().succeeded == 10
    assert not ImportJob.objects.get(pk=job.pk).is_resumable
    result = manage("runbulkjob", str(job.pk))
    assert result.returncode == 2, result.stdout + result.stderr
    assert not User.objects.filter(username__startswith="user").exists()


def test_kept_values_compare_as_the_database_gives_them_back():
    naive = LogEntry(action_time=datetime.datetime(2024, 1, 31, 9, 30), object_repr="x")
    kept = undo.value_of(naive, "action_time")
    assert kept == "2024-01-31T09:30:00+00:00"  # made aware, as the database returns it
    aware = LogEntry(
        action_time=datetime.datetime(
            2024, 1, 31, 10, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
        )
    )
    assert not undo.differing(aware, {"action_time": kept})


def test_a_staff_member_cannot_revert_their_way_into_privileges(write_file):
    """A superuser's job demoted a staff member; a non-superuser reverting it would restore the
    staff flag, so that row fails, while the rest of the revert goes through."""
    from django.contrib.auth.models import Permission

    root = User.objects.create_superuser("root")
    User.objects.create_user("ann", is_staff=True)
    User.objects.create_user("bob", first_name="Bob")
    path = write_file("users.csv", "username,is_staff,first_name\nann,false,\nbob,,Robert\n")
    job, _ = create_job(path, path.name, user=root, options={"update_existing": True})
    assert job is not None
    job = JobRunner(job.pk, workers=1).run()
    assert not User.objects.get(username="ann").is_staff

    staff = User.objects.create_user("staff", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["change_user", "delete_user"]))
    revert, _ = start_revert(job, staff)
    revert = JobRunner(revert.pk, workers=1).run()
    assert (revert.succeeded, revert.failed) == (1, 1)
    assert not User.objects.get(username="ann").is_staff  # not restored by a non-superuser
    assert User.objects.get(username="bob").first_name == "Bob"
    (row,) = ImportRow.objects.filter(job=revert)
    assert "Only a superuser" in row.error_text
