"""The engine on real process pools, against the real test database (SQLite file or PostgreSQL)."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from bulkadmin.engine import JobNotRunnable, JobRunner
from bulkadmin.importers.model import ModelImporter
from bulkadmin.jobs import create_job, rerun_failed
from bulkadmin.models import ChunkStatus, ImportChunk, ImportJob, ImportRow, JobStatus
from mysite.models import Profile
from tests.conftest import import_rows, object_pks, row_outcomes
from tests.testapp.models import Restaurant, SignalRecord, Tag

User = get_user_model()
pytestmark = pytest.mark.django_db(transaction=True)


def make_job(path, **kwargs) -> ImportJob:
    job, report = create_job(path, path.name, **kwargs)
    assert job is not None, report.file_error or report.errors
    return job


def test_signals_fire_once_per_user_in_several_worker_processes(users_csv, knobs):
    knobs(record_signals="1")
    job = make_job(users_csv(600))
    job = JobRunner(job.pk, workers=2, chunk_size=25).run()

    assert job.status == JobStatus.SUCCEEDED
    assert (job.total, job.processed, job.succeeded, job.failed) == (600, 600, 600, 0)
    assert User.objects.count() == 600
    for signal in ("pre", "post"):
        records = SignalRecord.objects.filter(signal=signal)
        assert records.count() == 600
        assert records.values("username").distinct().count() == 600
    pids = set(SignalRecord.objects.values_list("pid", flat=True))
    assert len(pids) == 2, "rows should run in both worker processes"
    import os

    assert os.getpid() not in pids
    assert Profile.objects.count() == 600  # the demo site's post_save receiver ran too
    assert set(row_outcomes(job).values()) == {"succeeded"}
    assert not ImportRow.objects.filter(job=job).exists()  # only failed rows get a record
    assert set(ImportChunk.objects.filter(job=job).values_list("secret", flat=True)) == {""}
    users = {str(pk) for pk in User.objects.values_list("pk", flat=True)}
    assert set(object_pks(job).values()) == users and len(object_pks(job)) == 600


def test_groups_are_assigned(write_file):
    Group.objects.create(name="Editors")
    Group.objects.create(name="Support")
    path = write_file("g.csv", "username,groups\nann,Editors\nbob,Editors; Support\ncyd,\n")
    job = JobRunner(make_job(path).pk, workers=2).run()
    assert job.status == JobStatus.SUCCEEDED
    groups = {u.username: sorted(g.name for g in u.groups.all()) for u in User.objects.all()}
    assert groups == {"ann": ["Editors"], "bob": ["Editors", "Support"], "cyd": []}


def test_the_users_importer_reads_the_groups_once_per_worker_not_once_per_unit(users_csv):
    """Its ``setup()`` did not set up ``ModelImporter``'s cache, so ``prefetch`` set it all up
    again for every unit: a query for every group, and the starter's grants, each time."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bulkadmin import worker

    job = make_job(users_csv(30), size=10)
    worker.get_importer(job.pk)  # set up as a worker process does, before its first unit
    try:
        with CaptureQueriesContext(connection) as queries:
            for chunk in ImportChunk.objects.filter(job=job).order_by("number"):
                assert worker.import_units(job.pk, [worker.Unit(chunk.pk)]).succeeded == 10
    finally:
        worker.forget_job(job.pk)
    groups = re.compile(r"FROM [`\"]?auth_group[`\"]?(\s|$)")
    assert [q["sql"] for q in queries if groups.search(q["sql"])] == []
    assert User.objects.count() == 30


def test_a_failing_row_mid_chunk_fails_alone(write_file, knobs):
    knobs(record_signals="1")
    lines = ["username"] + [f"u{i:03d}" for i in range(20)]
    lines[10] = "u-boom"  # the receiver raises for this one, in the middle of the only chunk
    job = JobRunner(make_job(write_file("f.csv", "\n".join(lines) + "\n")).pk, workers=2, chunk_size=50).run()

    assert job.status == JobStatus.FINISHED_WITH_ERRORS
    assert (job.processed, job.succeeded, job.failed) == (20, 19, 1)
    failed = ImportRow.objects.get(job=job)
    assert failed.number == 11
    assert "receiver refused u-boom" in failed.error_text
    assert User.objects.count() == 19
    assert not User.objects.filter(username="u-boom").exists()
    # neighbours committed once each: one post_save per user, none repeated by the retry
    assert SignalRecord.objects.filter(signal="post").count() == 19


def test_a_chunk_whose_turn_runs_out_commits_the_rest_in_turns_of_their_own(write_file, knobs, monkeypatch):
    """SQLite ends a transaction that held the database ``longest_turn``; here every vendor ends
    each after its first row, with a failing row among them, so the split runs on each."""
    from bulkadmin import vendors, worker

    knobs(record_signals="1")
    monkeypatch.setattr(vendors.for_alias(), "longest_turn", 0.0)
    ended: list[bool] = []

    def turn_is_over() -> bool:
        ended.append(vendors.turn_is_over())
        return ended[-1]

    monkeypatch.setattr(worker, "turn_is_over", turn_is_over)
    lines = ["username"] + [f"u{i:03d}" for i in range(12)]
    lines[6] = "u-boom"
    job = JobRunner(make_job(write_file("f.csv", "\n".join(lines) + "\n")).pk, workers=1, chunk_size=50).run()

    assert ended.count(True) >= 10, "each row should have had a transaction of its own"
    assert (job.status, job.processed, job.succeeded, job.failed) == (
        JobStatus.FINISHED_WITH_ERRORS,
        12,
        11,
        1,
    )
    assert ImportRow.objects.get(job=job).number == 7
    assert sorted(User.objects.values_list("username", flat=True)) == sorted(set(lines[1:]) - {"u-boom"})
    assert SignalRecord.objects.filter(signal="post").count() == 11
    pks = object_pks(job)
    assert len(pks) == 11 and len(set(pks.values())) == 11
    assert ImportChunk.objects.get(job=job).status == ChunkStatus.DONE


def test_in_process_run_is_a_plain_loop(users_csv, knobs):
    from bulkadmin import worker

    knobs(record_signals="1")
    job = JobRunner(make_job(users_csv(50)).pk, workers=1).run()
    assert job.status == JobStatus.SUCCEEDED
    assert job.pk not in worker._importers  # a long-lived task worker keeps no job's caches
    import os

    assert set(SignalRecord.objects.values_list("pid", flat=True)) == {os.getpid()}


def test_threads_per_worker_each_get_a_connection(users_csv):
    job = JobRunner(make_job(users_csv(300)).pk, workers=2, threads=3, chunk_size=30).run()
    assert job.status == JobStatus.SUCCEEDED
    assert User.objects.count() == 300


@pytest.mark.parametrize("workers", [1, 2])
def test_a_slow_row_holds_up_its_own_thread_only(write_file, knobs, workers):
    # The slow row (in the first chunk) waits until every row outside its chunk is saved. When
    # a worker's threads shared one call, its other thread did the second chunk and then waited
    # for the slow one, so with one worker the slow row waited for ever (and failed). The pool's
    # own test shows the same for a worker process.
    path = write_file("r.csv", "name,city\nslow one,Oslo\n" + "".join(f"R{n},Rome\n" for n in range(2, 41)))
    knobs(slow_until=str(40 - 5))
    job = make_job(path, importer_path="tests.testapp.importers.RestaurantImporter")
    job = JobRunner(job.pk, workers=workers, threads=2, chunk_size=5).run()
    assert (job.status, job.succeeded) == (JobStatus.SUCCEEDED, 40)


def test_resume_processes_only_pending_rows(users_csv, knobs):
    knobs(record_signals="1")
    job = make_job(users_csv(100))
    # Half the rows were done by an earlier run that then died.
    first = JobRunner(job.pk, workers=1, chunk_size=10)
    first.claim()
    import_rows(job, range(2, 52))
    ImportJob.objects.filter(pk=job.pk).update(status=JobStatus.CRASHED)

    job = JobRunner(job.pk, workers=2, chunk_size=10).run()
    assert job.status == JobStatus.SUCCEEDED
    assert (job.processed, job.succeeded) == (100, 100)
    assert SignalRecord.objects.filter(signal="post").count() == 100  # none twice
    assert User.objects.count() == 100


def test_a_stale_running_job_can_be_resumed_but_a_live_one_cannot(users_csv, settings):
    job = make_job(users_csv(10))
    from django.utils import timezone

    ImportJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, heartbeat_at=timezone.now(), runner_pid=1
    )
    with pytest.raises(JobNotRunnable, match="running"):
        JobRunner(job.pk, workers=1).run()
    settings.BULKADMIN = {**settings.BULKADMIN, "STALE_AFTER_SECONDS": 0.0}
    assert JobRunner(job.pk, workers=1).run().status == JobStatus.SUCCEEDED


def test_a_finished_job_is_not_run_again(users_csv):
    job = JobRunner(make_job(users_csv(5)).pk, workers=1).run()
    with pytest.raises(JobNotRunnable, match="succeeded"):
        JobRunner(job.pk, workers=1).run()


def test_cancel_stops_dispatch_and_a_resume_finishes_every_row_once(users_csv, knobs):
    knobs(row_delay="0.02", record_signals="1")
    job = make_job(users_csv(400))
    runner = JobRunner(job.pk, workers=2, chunk_size=10)
    result: dict[str, ImportJob] = {}
    thread = threading.Thread(target=lambda: result.setdefault("job", runner.run()))
    thread.start()
    deadline = time.monotonic() + 60
    while ImportJob.objects.get(pk=job.pk).processed < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ImportJob.objects.get(pk=job.pk).request_cancel()
    thread.join(60)
    job = result["job"]
    assert job.status == JobStatus.CANCELLED
    pending = list(row_outcomes(job).values()).count("pending")
    assert 0 < pending < 360
    assert job.processed + pending == 400
    assert User.objects.count() == job.succeeded
    assert job.is_resumable

    knobs(row_delay="0")
    job = JobRunner(job.pk, workers=2, chunk_size=10).run()

    assert job.status == JobStatus.SUCCEEDED
    assert (job.processed, job.succeeded, job.failed) == (400, 400, 0)
    assert User.objects.count() == 400
    posts = SignalRecord.objects.filter(signal="post")
    assert posts.count() == 400 and posts.values("username").distinct().count() == 400
    # once finished, there is nothing left to resume
    with pytest.raises(JobNotRunnable):
        JobRunner(job.pk, workers=1).run()


def test_cancel_before_start_cancels_at_once(users_csv):
    job = make_job(users_csv(5))
    assert job.request_cancel()
    assert ImportJob.objects.get(pk=job.pk).status == JobStatus.CANCELLED


def test_rerun_failed_rows_with_a_correction(write_file):
    path = write_file("r.csv", "username,email\nok1,a@example.com\nboom1,b@example.com\nok2,\n")
    job = JobRunner(make_job(path).pk, workers=1).run()
    assert job.failed == 1
    row = ImportRow.objects.get(job=job)
    row.values = {**row.values, "username": "fixed1"}
    row.save()
    rerun = rerun_failed(job)
    assert rerun is not None
    assert rerun.parent_id == job.pk and rerun.total == 1
    rerun = JobRunner(rerun.pk, workers=1).run()
    assert rerun.status == JobStatus.SUCCEEDED
    assert User.objects.get(username="fixed1").email == "b@example.com"


def test_update_existing(write_file):
    User.objects.create(username="ann", email="old@example.com", first_name="Old")
    path = write_file("u.csv", "username,email\nann,new@example.com\nbea,bea@example.com\n")
    job, report = create_job(path, path.name, options={"update_existing": True})
    assert job is not None and report.invalid == 0
    job = JobRunner(job.pk, workers=1).run()
    assert job.status == JobStatus.SUCCEEDED
    ann = User.objects.get(username="ann")
    assert (ann.email, ann.first_name) == ("new@example.com", "Old")
    assert User.objects.filter(username="bea").exists()


def test_passwords_are_hashed_in_the_worker_and_erased(write_file):
    path = write_file("p.csv", "username,password\nann,Tr0ub4dor&3-horse\nbob,\n")
    job = make_job(path)
    assert "Tr0ub4dor" not in str(list(ImportChunk.objects.filter(job=job).values()))
    job = JobRunner(job.pk, workers=2).run()
    assert User.objects.get(username="ann").check_password("Tr0ub4dor&3-horse")
    assert not User.objects.get(username="bob").has_usable_password()
    assert set(ImportChunk.objects.filter(job=job).values_list("secret", flat=True)) == {""}


def test_real_password_hasher_once(write_file, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    path = write_file("p.csv", "username,password\nann,Tr0ub4dor&3-horse\n")
    JobRunner(make_job(path).pk, workers=1).run()
    assert User.objects.get(username="ann").password.startswith("pbkdf2_sha256$")


def test_custom_importer_with_multi_table_inheritance_and_m2m(write_file):
    Tag.objects.create(name="cosy")
    path = write_file(
        "r.csv",
        "name,city,cuisine,tags\n"
        "Chez Ann,Paris,french,cosy;wine\nBob's,Rome,italian,cosy\nBad,Oslo,poison,\n",
    )
    job, report = create_job(path, path.name, importer_path="tests.testapp.importers.RestaurantImporter")
    assert report.invalid == 1 and job is not None and job.total == 2
    job = JobRunner(job.pk, workers=2).run()
    assert job.status == JobStatus.SUCCEEDED
    chez = Restaurant.objects.get(name="Chez Ann")
    assert chez.slug == "chez-ann" and chez.city == "Paris"
    assert sorted(chez.tags.values_list("name", flat=True)) == ["cosy", "wine"]


def test_update_mode_leaves_blank_cells_alone(write_file):
    User.objects.create(username="ann", email="ann@example.com", first_name="Ann", is_active=False)
    path = write_file("u.csv", "username,email,first_name,is_active\nann,,,\n")
    job, _ = create_job(path, path.name, options={"update_existing": True})
    assert job is not None
    assert JobRunner(job.pk, workers=1).run().status == JobStatus.SUCCEEDED
    ann = User.objects.get(username="ann")
    assert (ann.email, ann.first_name, ann.is_active) == ("ann@example.com", "Ann", False)


def test_source_name_is_display_only_from_any_os(write_file):
    path = write_file("x.csv", "username\nann\n")
    job, _ = create_job(path, "C:\\Users\\me\\Desktop\\staff.csv")
    assert job is not None and job.source_name == "staff.csv"


def test_a_queued_job_whose_runner_never_started_becomes_resumable(users_csv, settings):
    from django.utils import timezone

    job = make_job(users_csv(3))
    ImportJob.objects.filter(pk=job.pk).update(status=JobStatus.QUEUED, heartbeat_at=timezone.now())
    assert not ImportJob.objects.filter(pk=job.pk).stale().exists()
    settings.BULKADMIN = {**settings.BULKADMIN, "STALE_AFTER_SECONDS": 0.0}
    assert ImportJob.objects.filter(pk=job.pk).mark_stale_crashed() == 1
    assert ImportJob.objects.get(pk=job.pk).status == JobStatus.CRASHED


def test_a_chunk_locks_its_record_but_never_the_shared_job_row(users_csv):
    """Locking the job's row would serialize every chunk of every worker (it did, once)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bulkadmin.worker import import_chunk

    job = make_job(users_csv(5))
    JobRunner(job.pk, workers=1).claim()
    chunk = ImportChunk.objects.get(job=job)
    with CaptureQueriesContext(connection) as queries:
        import_chunk(job.pk, chunk.pk)
    locking = [q["sql"] for q in queries if "FOR UPDATE" in q["sql"]]
    if connection.features.has_select_for_update:
        assert locking, "the chunk must lock its record"
        assert all("importchunk" in sql.lower() for sql in locking), locking
    for sql in locking:
        assert "importjob" not in sql.lower(), sql


def test_a_job_smaller_than_a_chunk_per_worker_is_spread_over_the_workers(users_csv, knobs):
    """40 rows were one chunk, so one worker did them all while the other idled: with slow
    rows (passwords hashed) that doubled the job's time. SQLite's 500-row chunks made that
    any job under 1,000 rows."""
    knobs(record_signals="1", row_delay="0.02")
    job = JobRunner(make_job(users_csv(40)).pk, workers=2).run()

    assert (job.status, job.succeeded) == (JobStatus.SUCCEEDED, 40)
    pids = set(SignalRecord.objects.filter(signal="pre").values_list("pid", flat=True))
    assert len(pids) == 2, "both workers should have imported rows"


class RecordImporter(ModelImporter):
    """Rows of a model with no unique field and no receiver of the test app's."""

    model = SignalRecord
    fields = ["username", "signal", "pid"]


RECORD_IMPORTER = f"{__name__}.RecordImporter"


@pytest.fixture
def records(allow_importers, write_file):
    """A job of ``RecordImporter`` rows named ``names``, in chunks of ``chunk_size``."""
    allow_importers(RECORD_IMPORTER)

    def make(names: list[str], chunk_size: int, user: Any = None) -> ImportJob:
        path = write_file("records.csv", "username,signal,pid\n" + "".join(f"{n},pre,1\n" for n in names))
        return make_job(path, importer_path=RECORD_IMPORTER, size=chunk_size, user=user)

    return make


@pytest.fixture
def first_rows_meet():
    """The rows whose names end in ``-first`` wait in ``pre_save`` until two have arrived: a
    receiver that waits before its row writes (a web service), for as long as another row
    keeps the second from getting there, then a broken barrier fails both."""
    from django.db.models.signals import pre_save

    barrier = threading.Barrier(2, timeout=20)

    def wait_for_the_other(sender, instance, **kwargs) -> None:
        if instance.username.endswith("-first"):
            barrier.wait()

    pre_save.connect(wait_for_the_other, sender=SignalRecord, dispatch_uid="test.wait_for_the_other")
    yield
    pre_save.disconnect(sender=SignalRecord, dispatch_uid="test.wait_for_the_other")


def test_rows_that_wait_before_writing_wait_alongside_each_other(records, first_rows_meet):
    """Such a row must not hold SQLite's write turn meanwhile: here the first row of each of two
    threads waits for the other's. When the turn was taken as the transaction began, the other
    thread never got there."""
    job = records(["a-first", "a-second", "b-first", "b-second"], chunk_size=2)
    job = JobRunner(job.pk, workers=1, threads=2).run()

    assert (job.status, job.succeeded, job.failed) == (JobStatus.SUCCEEDED, 4, 0), row_outcomes(job)
    assert SignalRecord.objects.count() == 4


def test_parts_of_one_chunk_run_side_by_side(records, first_rows_meet):
    """Two threads given two halves of one chunk (a runner asked for smaller chunks) run their
    rows at the same time: the chunk's record is locked after the rows, not before. When it was
    locked first, on PostgreSQL and MariaDB the second half waited for the first to commit."""
    job = records(["a-first", "a-second", "b-first", "b-second"], chunk_size=4)
    job = JobRunner(job.pk, workers=1, threads=2, chunk_size=2).run()

    assert (job.status, job.succeeded, job.failed) == (JobStatus.SUCCEEDED, 4, 0), row_outcomes(job)
    assert SignalRecord.objects.count() == 4


def test_a_row_another_worker_finished_meanwhile_is_not_imported_again(records):
    """A worker that read a chunk's rows before another finished them imports none of them:
    where the transaction starts at its first statement (SQLite), the first row is imported
    before the chunk's record is read, then rolled back."""
    from bulkadmin import worker

    job = records(["one", "two", "three"], chunk_size=10)
    chunk = ImportChunk.objects.get(job=job)
    unit = worker.Unit(chunk.pk)
    importer = worker.get_importer(job.pk)
    ready, failures = worker._prepare(job.pk, importer, worker.pending_rows(unit))  # read, not done
    try:
        assert worker.import_units(job.pk, [unit]).succeeded == 3  # another worker does them
        late = worker._commit_all(importer, job.pk, chunk.pk, ready, failures)
    finally:
        worker.forget_job(job.pk)

    assert late.processed == 0
    assert SignalRecord.objects.count() == 3
    job.refresh_from_db()
    assert (job.processed, job.succeeded) == (3, 3)


def test_after_a_race_an_object_whose_text_raises_still_fails_its_row_alone(records):
    """The transaction run again after a race (the first row done meanwhile by another worker)
    had lost the handling of an error outside any row (the history entry's text): it passed for
    an ``on_commit`` callback failing after the commit, and left the row pending."""
    from bulkadmin import worker

    starter = User.objects.create_superuser("boss", "boss@example.com", "x")  # so history is written
    job = records(["alpha", "broken-one"], chunk_size=10, user=starter)
    chunk = ImportChunk.objects.get(job=job)
    unit = worker.Unit(chunk.pk)
    importer = worker.get_importer(job.pk)
    ready, failures = worker._prepare(job.pk, importer, worker.pending_rows(unit))  # read, not done
    try:
        first = chunk.row_numbers()[0]
        assert worker.import_units(job.pk, [worker.Unit(chunk.pk, (first,))]).succeeded == 1
        late = worker._commit_all(importer, job.pk, chunk.pk, ready, failures)
    finally:
        worker.forget_job(job.pk)

    assert (late.succeeded, late.failed) == (0, 1)
    job.refresh_from_db()
    assert (job.processed, job.succeeded, job.failed, job.pending) == (2, 1, 1, 0)
    assert list(SignalRecord.objects.values_list("username", flat=True)) == ["alpha"]
    assert "this record cannot be shown" in ImportRow.objects.get(job=job).error_text
