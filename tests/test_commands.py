"""``manage.py bulkimport`` and ``runbulkjob`` as a user runs them: real subprocesses, real exit codes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from bulkadmin.engine import JobRunner
from bulkadmin.jobs import create_job
from bulkadmin.models import ImportJob, JobStatus
from tests.conftest import import_rows, manage, row_outcomes

User = get_user_model()
CORPUS = Path(__file__).resolve().parent / "corpus" / "files"
pytestmark = pytest.mark.django_db(transaction=True)


def no_traceback(result) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


def test_invalid_file_exits_2_names_rows_and_columns_and_imports_nothing(write_file):
    path = write_file(
        "u.csv", "username,email\nann,ann@example.com\nbad user!,x@example.com\nbob,not-an-email\n"
    )
    result = manage("bulkimport", str(path), "--workers", "1")
    assert result.returncode == 2, result.stderr
    assert "Row 3, column “username”: Enter a valid username." in result.stderr
    assert "Row 4, column “email”: Enter a valid email address." in result.stderr
    assert "2 of 3 rows are invalid; nothing imported" in result.stderr
    assert "3 rows read: 1 valid, 2 invalid." in result.stdout
    no_traceback(result)
    assert User.objects.count() == 0
    assert ImportJob.objects.count() == 0


def test_skip_invalid_imports_the_valid_rows(write_file):
    path = write_file("u.csv", "username\nann\nbad user!\nbob\n")
    result = manage("bulkimport", str(path), "--skip-invalid", "--workers", "1", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "Row 3, column “username”" in result.stderr
    no_traceback(result)
    assert sorted(User.objects.values_list("username", flat=True)) == ["ann", "bob"]


def test_success_exits_0_with_a_progress_bar(users_csv):
    result = manage("bulkimport", str(users_csv(300)), "--workers", "2", "--chunk-size", "50")
    assert result.returncode == 0, result.stderr
    assert "row/s" in result.stderr or "100%" in result.stderr, result.stderr
    assert "300 succeeded, 0 failed" in result.stdout
    no_traceback(result)
    assert User.objects.count() == 300
    job = ImportJob.objects.get()
    assert job.status == JobStatus.SUCCEEDED


def test_rows_failing_at_import_exit_1(write_file):
    path = write_file("u.csv", "username\nann\nboom1\nbob\nkaboom\n")
    result = manage("bulkimport", str(path), "--workers", "1", "--no-progress")
    assert result.returncode == 1, result.stderr
    assert "2 succeeded, 2 failed" in result.stdout
    assert "Row 3:" in result.stderr and "Row 5:" in result.stderr
    assert "receiver refused boom1" in result.stderr
    no_traceback(result)
    assert sorted(User.objects.values_list("username", flat=True)) == ["ann", "bob"]
    assert ImportJob.objects.get().status == JobStatus.FINISHED_WITH_ERRORS


def test_missing_file_is_a_clear_error():
    result = manage("bulkimport", "/nonexistent/users.csv")
    assert result.returncode == 2
    assert "No such file: /nonexistent/users.csv" in result.stderr
    no_traceback(result)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("zip_bomb_claims_4gb.xlsx", "The workbook unpacks to 4,026,"),
        ("utf8_broken.csv", "Row 3: The file is not UTF-8 text"),
        ("unterminated_quote.csv", "Row 2: A quoted value is never closed"),
        ("binary_junk.csv", "NUL bytes"),
        ("legacy.xls", "old Excel (.xls)"),
        ("header_only.csv", "The file has a header but no rows."),
    ],
)
def test_hostile_files_exit_2_with_their_message(tmp_path, name, message):
    path = tmp_path / name
    shutil.copy(CORPUS / name, path)
    result = manage("bulkimport", str(path), "--workers", "1")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Nothing imported." in result.stderr
    no_traceback(result)
    assert ImportJob.objects.count() == 0


def test_runbulkjob_runs_a_validated_job(users_csv):
    path = users_csv(40)
    job, report = create_job(path, path.name)
    assert job is not None, report.file_error
    result = manage("runbulkjob", str(job.pk), "--workers", "1")
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    assert User.objects.count() == 40


def test_runbulkjob_resumes_a_crashed_job(users_csv):
    path = users_csv(30)
    job, _ = create_job(path, path.name)
    assert job is not None
    # What a runner killed after its first rows leaves behind: ten rows done, the job crashed.
    JobRunner(job.pk, workers=1).claim()
    import_rows(job, range(2, 12))
    ImportJob.objects.filter(pk=job.pk).update(status=JobStatus.CRASHED)
    assert list(row_outcomes(job).values()).count("succeeded") == 10

    result = manage("runbulkjob", str(job.pk), "--workers", "1", "--progress")
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    assert User.objects.count() == 30
    job.refresh_from_db()
    assert (job.status, job.processed, job.succeeded, job.failed) == (JobStatus.SUCCEEDED, 30, 30, 0)


def test_runbulkjob_on_a_finished_job_is_refused_clearly(users_csv):
    path = users_csv(5)
    job, _ = create_job(path, path.name)
    assert job is not None
    assert manage("runbulkjob", str(job.pk), "--workers", "1").returncode == 0
    again = manage("runbulkjob", str(job.pk), "--workers", "1")
    assert again.returncode != 0
    assert f"Import job {job.pk} is succeeded; only a new, queued, crashed or cancelled" in again.stderr
    no_traceback(again)
    assert User.objects.count() == 5


def test_runbulkjob_unknown_job_is_refused_clearly():
    result = manage("runbulkjob", "987654")
    assert result.returncode != 0
    assert "987654" in result.stderr
    no_traceback(result)


def test_bulkimport_takes_the_failed_rows_download_back(write_file):
    """The fix-it file on the command line: its own columns ignored, passwords carried over."""
    from bulkadmin.exports import failed_rows_csv
    from bulkadmin.importers.users import UserImporter
    from tests.test_admin_support import settle

    path = write_file("u.csv", "username,password\nann,Secret-Pass-123\nbob,\ncyd,\n")
    job, _ = create_job(path, path.name)
    assert job is not None
    settle(job, {2: {"__all__": ["refused"]}, 4: {"username": ["refused"]}})
    fix_it = write_file("fix.csv", b"".join(failed_rows_csv(job, UserImporter())))
    assert fix_it.read_text().splitlines()[0] == "row,username,errors,job"

    result = manage("bulkimport", str(fix_it), "--workers", "1")
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    assert User.objects.get(username="ann").check_password("Secret-Pass-123")
    assert User.objects.filter(username="cyd").exists() and not User.objects.filter(username="bob").exists()
    second = ImportJob.objects.exclude(pk=job.pk).get()
    assert set(job.rows.values_list("rerun_id", flat=True)) == {second.pk}


def test_bulkimport_maps_and_ignores_columns(write_file):
    path = write_file("staff.csv", "User Name,E-mail,department\nann,ann@example.com,R&D\n")
    refused = manage("bulkimport", str(path), "--workers", "1")
    assert refused.returncode == 2 and "--map 'FILE COLUMN=column'" in refused.stderr
    no_traceback(refused)
    result = manage(
        "bulkimport",
        str(path),
        "--workers",
        "1",
        "--map",
        "User Name=username",
        "--map",
        "E-mail=email",
        "--ignore",
        "department",
    )
    assert result.returncode == 0, result.stderr
    assert User.objects.get(username="ann").email == "ann@example.com"
    bad = manage("bulkimport", str(path), "--map", "User Name")
    assert bad.returncode == 2 and "write it as" in bad.stderr
    no_traceback(bad)


def test_bulkimport_picks_threads_for_rows_that_wait_and_says_so(write_file, knobs):
    knobs(row_wait="0.02")
    path = write_file("r.csv", "name,city\n" + "".join(f"R{n},Rome\n" for n in range(600)))
    importer = "tests.testapp.importers.RestaurantImporter"
    result = manage(
        "bulkimport",
        str(path),
        "--importer",
        importer,
        "--workers",
        "2",
        "--chunk-size",
        "5",
        env={"BULKADMIN_TEST_THREADS": ""},  # the default: picked
    )
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    picked = [line for line in result.stderr.splitlines() if line.startswith("Threads per worker: ")]
    assert len(picked) == 1, result.stderr
    threads = int(picked[0].split()[3])
    assert threads > 1 and "the rows waited" in picked[0], picked
    assert ImportJob.objects.get().threads == threads
