"""Whose failure is it? A row's own fails that row alone; the database's, or a side effect's, never does.

Found in review: a retried row reusing a dict its first attempt had changed, an exception from
``prepare_row`` stopping the whole job, a foreign key failing at COMMIT, a mail server failing
after the commit, database errors that are not ``OperationalError``, Celery chunks dropped after
their job was marked stalled, and a runner that had lost its job (or Ctrl-C) mid-run.
"""

from __future__ import annotations

import signal
import smtplib
import time

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import InternalError, OperationalError, connection

from bulkadmin.engine import JobRunner, claim_job
from bulkadmin.importers.model import ModelImporter
from bulkadmin.importers.users import UserImporter
from bulkadmin.jobs import create_job
from bulkadmin.models import QUEUE_WORKERS, ImportChunk, ImportJob, ImportRow, JobStatus, Owner
from bulkadmin.vendors import write_turn
from tests.conftest import import_rows, row_outcomes, wait_until
from tests.test_faults import assert_exactly_once, start_runner
from tests.testapp.models import Place, Tag

User = get_user_model()
pytestmark = pytest.mark.django_db(transaction=True)


class FlakyPrepareImporter(UserImporter):
    """``prepare_row`` calls something that can raise, quoting a secret in its message."""

    def prepare_row(self, cleaned):
        if cleaned["username"] == "bad-prep":
            raise ValueError(f"lookup failed for {cleaned['password']}")
        return super().prepare_row(cleaned)


def make(path, **kwargs) -> ImportJob:
    job, report = create_job(path, path.name, **kwargs)
    assert job is not None, report.errors
    return job


def outcomes(job: ImportJob) -> dict[str, tuple[str, str]]:
    """Each row's outcome and error text, by its username (or name)."""
    status = row_outcomes(job)
    errors = {row.number: row.error_text for row in ImportRow.objects.filter(job=job)}
    return {
        values.get("username") or values["name"]: (status[number], errors.get(number, ""))
        for chunk in ImportChunk.objects.filter(job=job)
        for number, values in chunk.rows
    }


def all_units(job: ImportJob) -> list[tuple[int, None]]:
    """What dispatch_job sends a chunk task: every chunk of the job, whole."""
    return [(pk, None) for pk in ImportChunk.objects.filter(job=job).values_list("pk", flat=True)]


def test_a_row_imported_again_after_a_rollback_gets_its_values_afresh(write_file):
    # The README's example importer pops "tags" from the dict it is given.
    path = write_file("r.csv", "name,city,tags\nAlpha,Paris,cosy\nBeta,Rome,\nGamma,Oslo,\n")
    job = make(path, importer_path="tests.testapp.importers.RestaurantImporter")
    Place.objects.create(name="Beta", city="Rome")  # taken after validation: Beta fails at import

    job = JobRunner(job.pk, workers=1, chunk_size=10).run()

    result = outcomes(job)
    assert result["Alpha"][0] == result["Gamma"][0] == "succeeded", result
    assert result["Beta"][0] == "failed" and "KeyError" not in result["Beta"][1]


def test_an_exception_in_prepare_row_fails_that_row_alone_without_quoting_it(write_file, allow_importers):
    importer = f"{__name__}.FlakyPrepareImporter"
    allow_importers(importer)
    path = write_file("p.csv", "username,password\nann,\nbad-prep,Secret-Pass-777\nbob,\n")
    job = make(path, importer_path=importer)

    job = JobRunner(job.pk, workers=1).run()

    assert (job.status, job.succeeded, job.failed) == (JobStatus.FINISHED_WITH_ERRORS, 2, 1)
    status, error = outcomes(job)["bad-prep"]
    assert status == "failed" and error == "This row could not be prepared (ValueError)."
    assert "Secret-Pass" not in job.error + error


class TagImporter(ModelImporter):
    model = Tag
    fields = ["name"]
    key_field = "name"


def test_an_object_whose_text_raises_fails_its_row_alone_and_no_row_is_left_pending(
    write_file, allow_importers
):
    """A person's job writes each object's history entry, with the object's text, in the rows'
    transaction. A ``__str__`` raising there rolled the transaction back, and was logged as an
    ``on_commit`` callback failing after the commit: the chunk's rows were left pending."""
    importer = f"{__name__}.TagImporter"
    allow_importers(importer)
    starter = User.objects.create_superuser("boss", "boss@example.com", "x")
    path = write_file("t.csv", "name\nalpha\nbroken-one\ngamma\n")
    job = make(path, importer_path=importer, user=starter)

    job = JobRunner(job.pk, workers=1).run()

    result = outcomes(job)
    assert (job.status, job.succeeded, job.failed, job.pending) == (
        JobStatus.FINISHED_WITH_ERRORS,
        2,
        1,
        0,
    ), result
    assert result["broken-one"] == ("failed", "ValueError: this tag cannot be shown")
    assert set(Tag.objects.values_list("name", flat=True)) == {"alpha", "gamma"}
    assert sorted(LogEntry.objects.values_list("object_repr", flat=True)) == ["alpha", "gamma"]


@pytest.mark.parametrize("longest_turn", [None, 0.0], ids=["one-transaction", "a-transaction-a-row"])
def test_a_foreign_key_gone_mid_job_fails_only_the_row_that_needs_it(write_file, monkeypatch, longest_turn):
    """With a turn that ends after each row, the row failing at COMMIT has rows after it that
    never ran: they go on once, together."""
    from bulkadmin import vendors

    monkeypatch.setattr(vendors.for_alias(), "longest_turn", longest_turn)
    Group.objects.create(name="Editors")
    path = write_file("g.csv", "username,groups\nann,Editors\nbob,\ncyd,Editors\ndan,\n")
    job = make(path)
    claim_job(job.pk, Owner(None, "test"))
    import_rows(job, [2])  # the worker is set up: it has the group's id cached
    Group.objects.filter(name="Editors").delete()  # staff delete the group mid-job

    import_rows(job, [3, 4, 5])  # on SQLite the foreign key fails at COMMIT

    result = outcomes(job)
    assert {name: status for name, (status, _) in result.items()} == {
        "ann": "succeeded",
        "bob": "succeeded",
        "cyd": "failed",
        "dan": "succeeded",
    }
    assert result["cyd"][1] == "groups: Unknown group “Editors”."
    job.refresh_from_db()
    assert (job.processed, job.succeeded, job.failed) == (4, 3, 1)


def test_a_failing_mail_server_neither_stops_the_job_nor_loses_the_other_emails(write_file, monkeypatch):
    sent: list[str] = []

    def send_mail(**kwargs):
        if kwargs["recipient_list"] == ["u1@example.com"]:
            raise smtplib.SMTPServerDisconnected("mail server went away")
        sent.extend(kwargs["recipient_list"])

    monkeypatch.setattr("bulkadmin.importers.users.send_mail", send_mail)
    lines = ["username,email"] + [f"u{i},u{i}@example.com" for i in range(5)]
    job = make(write_file("m.csv", "\n".join(lines) + "\n"), options={"send_password_email": True})

    job = JobRunner(job.pk, workers=1, chunk_size=10).run()

    assert job.status == JobStatus.SUCCEEDED and job.succeeded == 5
    assert sorted(sent) == [f"u{i}@example.com" for i in (0, 2, 3, 4)]
    assert (job.emails_sent, job.emails_failed, job.emails_skipped) == (4, 1, 0)


class DriverError(Exception):
    """Stands for the driver's error that Django wraps: psycopg2's with its SQLSTATE, MySQLdb's
    with its error number."""

    def __init__(self, code: str | int) -> None:
        super().__init__(code, "refused")
        self.pgcode = code


def refuse_first_rows(monkeypatch, count: int, error, username: str | None = None) -> None:
    original = UserImporter.import_row
    refusals = iter(range(count))

    def import_row(self, cleaned):
        if (username is None or cleaned["username"] == username) and next(refusals, None) is not None:
            raise error()
        return original(self, cleaned)

    monkeypatch.setattr(UserImporter, "import_row", import_row)


def read_only_error() -> Exception:
    """What this database's driver raises when the server refuses every write."""
    if connection.vendor == "postgresql":  # a standby after a failover: SQLSTATE 25006
        exc: Exception = InternalError("SQLSTATE 25006")
        exc.__cause__ = DriverError("25006")
    elif connection.vendor == "mysql":  # --read-only: error 1290, here as an InternalError
        exc = InternalError("1290")
        exc.__cause__ = DriverError(1290)
    else:  # SQLite: a read-only database file
        exc = OperationalError("attempt to write a readonly database")
    return exc


def trigger_error() -> Exception:
    """A trigger's RAISE EXCEPTION (SQLSTATE P0001 on PostgreSQL): the row's fault everywhere."""
    exc = InternalError("SQLSTATE P0001")
    exc.__cause__ = DriverError("P0001")
    return exc


def test_a_server_refusing_writes_is_the_databases_fault_not_the_rows(write_file, monkeypatch, settings):
    """A read-only server: retried, no row failed."""
    settings.BULKADMIN = {**settings.BULKADMIN, "DB_RETRY_DELAYS": (0, 0, 0)}
    refuse_first_rows(monkeypatch, 2, read_only_error)
    job = make(write_file("d.csv", "username\nann\nbob\n"))

    job = JobRunner(job.pk, workers=1).run()

    assert (job.status, job.succeeded, job.failed) == (JobStatus.SUCCEEDED, 2, 0)


def test_a_trigger_refusing_a_row_fails_that_row_alone(write_file, monkeypatch):
    """Other InternalErrors, such as a trigger's RAISE EXCEPTION (P0001), are the row's."""
    refuse_first_rows(monkeypatch, 99, trigger_error, username="bob")
    job = make(write_file("d.csv", "username\nann\nbob\ncyd\n"))

    job = JobRunner(job.pk, workers=1).run()

    assert (job.status, job.succeeded, job.failed) == (JobStatus.FINISHED_WITH_ERRORS, 2, 1)
    assert outcomes(job)["bob"][0] == "failed"


@pytest.mark.parametrize("longest_turn", [None, 0.0], ids=["one-transaction", "a-transaction-a-row"])
def test_a_non_robust_on_commit_callback_failing_loses_no_row(write_file, monkeypatch, caplog, longest_turn):
    """A custom importer's on_commit side effect that raises: logged; the rows are in. With a
    turn that ends after each row, the rows after it still get theirs."""
    from django.db import transaction

    from bulkadmin import vendors

    monkeypatch.setattr(vendors.for_alias(), "longest_turn", longest_turn)

    original = UserImporter.import_row

    def import_row(self, cleaned):
        user = original(self, cleaned)
        if cleaned["username"] == "bob":
            transaction.on_commit(lambda: 1 / 0)
        return user

    monkeypatch.setattr(UserImporter, "import_row", import_row)
    job = make(write_file("c.csv", "username\nann\nbob\ncyd\n"))

    job = JobRunner(job.pk, workers=1).run()

    assert (job.status, job.succeeded) == (JobStatus.SUCCEEDED, 3)
    assert User.objects.count() == 3
    assert "an on_commit callback failed" in caplog.text


def test_celery_chunks_arriving_after_the_job_was_marked_stalled_still_import(users_csv, settings):
    from bulkadmin.tasks import import_chunks_task

    job = make(users_csv(30))
    claim_job(job.pk, QUEUE_WORKERS)  # what dispatch_job does
    settings.BULKADMIN = {**settings.BULKADMIN, "STALE_AFTER_SECONDS": 0.0}  # long in the queue
    ImportJob.objects.get(pk=job.pk).settle_if_stale()  # the job page's poll marks it stalled
    assert ImportJob.objects.get(pk=job.pk).status == JobStatus.CRASHED
    settings.BULKADMIN = {**settings.BULKADMIN, "STALE_AFTER_SECONDS": 30.0}

    assert import_chunks_task(job.pk, all_units(job)) == 30  # a worker reaches the queued chunk at last

    job.refresh_from_db()
    assert (job.status, job.succeeded, job.error) == (JobStatus.SUCCEEDED, 30, "")


def test_a_stale_job_asked_to_cancel_is_cancelled_and_its_late_chunks_dropped(users_csv, settings):
    from bulkadmin.tasks import import_chunks_task

    job = make(users_csv(10))
    claim_job(job.pk, QUEUE_WORKERS)
    assert ImportJob.objects.get(pk=job.pk).request_cancel()  # cancelling; then the workers vanish
    settings.BULKADMIN = {**settings.BULKADMIN, "STALE_AFTER_SECONDS": 0.0}
    assert ImportJob.objects.filter(pk=job.pk).mark_stale_crashed() == 1
    settings.BULKADMIN = {**settings.BULKADMIN, "STALE_AFTER_SECONDS": 30.0}
    assert ImportJob.objects.get(pk=job.pk).status == JobStatus.CANCELLED

    assert import_chunks_task(job.pk, all_units(job)) == 0  # a late chunk does not revive it
    assert ImportJob.objects.get(pk=job.pk).status == JobStatus.CANCELLED
    assert not User.objects.exists()


def test_a_crashed_job_can_be_cancelled(users_csv):
    job = make(users_csv(5))
    ImportJob.objects.filter(pk=job.pk).update(status=JobStatus.CRASHED)
    assert ImportJob.objects.get(pk=job.pk).request_cancel()
    assert ImportJob.objects.get(pk=job.pk).status == JobStatus.CANCELLED


@pytest.fixture
def slow_runner(users_csv, knobs):
    knobs(record_signals="1", row_delay="0.02")
    job = make(users_csv(300))
    runner = start_runner(job.pk)
    wait_until(lambda: ImportJob.objects.get(pk=job.pk).processed >= 30)
    return job, runner


def take_over(job: ImportJob, **fields) -> None:
    """Change the job as another process would: through the write gate, or SQLite starves it."""
    with write_turn():
        ImportJob.objects.filter(pk=job.pk).update(**fields)
    assert ImportJob.objects.get(pk=job.pk).pending > 0, "too late: the job is already done"


def test_a_runner_wrongly_marked_crashed_takes_its_job_back(slow_runner):
    job, runner = slow_runner
    take_over(job, status=JobStatus.CRASHED, runner_pid=None)

    output, _ = runner.communicate(timeout=120)

    assert runner.returncode == 0, output
    assert_exactly_once(job, 300)


def test_a_runner_whose_job_another_runner_claimed_stops(slow_runner):
    job, runner = slow_runner
    take_over(job, runner_pid=1, runner_host="elsewhere")

    output, _ = runner.communicate(timeout=30)

    assert runner.returncode == 3, output
    job.refresh_from_db()
    assert job.pending > 0 and job.runner_pid == 1  # left to its new owner


def test_ctrl_c_stops_the_runner_cleanly_and_resume_finishes(slow_runner):
    job, runner = slow_runner
    import os

    os.killpg(runner.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole group

    output, _ = runner.communicate(timeout=60)
    assert runner.returncode == 3, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    job.refresh_from_db()
    assert job.status == JobStatus.CRASHED and "SIGINT" in job.error
    time.sleep(0.5)
    resumed = start_runner(job.pk)
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, output
    assert_exactly_once(job, 300)
