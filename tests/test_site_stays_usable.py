"""The rest of the site keeps writing while an import runs, on every database.

A login writes ``last_login``; here another connection, with a two-second lock timeout, does
that over and over while ``runbulkjob`` imports with two workers. None of its writes may fail.
On SQLite the engine's writers used to commit back to back and starve it ("database is
locked" after the timeout); they now leave the database free for a moment every second.
"""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections

from bulkadmin.engine import JobRunner
from bulkadmin.models import ImportJob, JobStatus
from bulkadmin.vendors import write_turn, writes_turn
from bulkadmin.vendors.sqlite import _STAMPS, _file_id, lock_path, others_connected, others_in, runners_path
from tests.conftest import spawn, wait_until
from tests.test_engine import make_job
from tests.test_faults import start_runner
from tests.test_tuning import RESTAURANTS
from tests.testapp.models import Tag

User = get_user_model()
pytestmark = pytest.mark.django_db(transaction=True)

#: How long another writer may wait for the database before its write fails.
LOCK_TIMEOUT = 2.0


def outside_connection():
    """A DB-API connection of its own, as another web process has, with a short lock timeout."""
    params = connection.get_connection_params()
    if connection.vendor == "sqlite":
        params["timeout"] = LOCK_TIMEOUT
        params.pop("transaction_mode", None)
    raw = connection.get_new_connection(params)
    cursor = raw.cursor()
    if connection.vendor == "postgresql":
        cursor.execute(f"SET lock_timeout = '{int(LOCK_TIMEOUT * 1000)}ms'")
    elif connection.vendor == "mysql":
        cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {int(LOCK_TIMEOUT)}")
    return raw


def log_in_repeatedly(job_id: int, user_id: int) -> tuple[list[float], list[BaseException]]:
    """From another connection, write a user's ``last_login`` over and over while the job runs:
    how long each write took, and the errors."""
    waits: list[float] = []
    errors: list[BaseException] = []
    table = connection.ops.quote_name(User._meta.db_table)
    sql = f"UPDATE {table} SET last_login = CURRENT_TIMESTAMP WHERE id = %s"
    if connection.vendor == "sqlite":
        sql = sql.replace("%s", "?")
    raw = outside_connection()
    try:
        while ImportJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).exists() and len(waits) < 200:
            started = time.monotonic()
            try:
                cursor = raw.cursor()
                cursor.execute(sql, [user_id])
                raw.commit()
            except Exception as exc:
                errors.append(exc)
                raw.rollback()
            waits.append(time.monotonic() - started)
            time.sleep(0.05)
    finally:
        raw.close()
        connection.close()
    return waits, errors


def logins_while_importing(rows: int, chunk_size: int, users_csv) -> tuple[list[float], list[BaseException]]:
    """Run ``runbulkjob`` with two workers on ``rows`` users, logging in meanwhile."""
    admin = User.objects.create_user("admin-at-work")
    job = make_job(users_csv(rows))
    runner = start_runner(job.pk, chunk_size=chunk_size)
    wait_until(
        lambda: ImportJob.objects.get(pk=job.pk).status == JobStatus.RUNNING, timeout=60, interval=0.02
    )
    outcome: list[tuple[list[float], list[BaseException]]] = []
    thread = threading.Thread(target=lambda: outcome.append(log_in_repeatedly(job.pk, admin.pk)))
    thread.start()
    output, _ = runner.communicate(timeout=300)
    thread.join(60)
    assert runner.returncode == 0, output
    job.refresh_from_db()
    assert (job.status, job.succeeded) == (JobStatus.SUCCEEDED, rows), output
    return outcome[0]


def test_a_login_is_never_locked_out_while_an_import_runs(users_csv, knobs):
    # Rows of 2 ms each: the import lasts seconds however fast the machine, so the logins below
    # run while it does (3,000 plain rows took under a second on a fast hour).
    knobs(row_delay="0.002")
    waits, errors = logins_while_importing(3000, 100, users_csv)
    assert len(waits) >= 5, "the logins should have run while the import did"
    assert not errors, f"{len(errors)} of {len(waits)} logins failed, e.g. {errors[0]}"


def test_slow_rows_do_not_hold_the_database_for_their_whole_chunk(users_csv, knobs):
    # 100 rows of 30 ms: a chunk in one transaction held SQLite for 3 s, past the logins' 2 s
    # timeout. Its rows now commit in turns of at most ``vendors.sqlite.LONGEST_TURN``.
    knobs(row_delay="0.03")
    waits, errors = logins_while_importing(200, 100, users_csv)
    assert len(waits) >= 5, "the logins should have run while the import did"
    assert not errors, f"{len(errors)} of {len(waits)} logins failed, e.g. {errors[0]}"


def pauses_in(caplog, job: ImportJob) -> int:
    """Run the job in this process and count the pauses its writers made for other processes."""
    with caplog.at_level(logging.DEBUG, logger="bulkadmin"):
        finished = JobRunner(job.pk, workers=1, chunk_size=20).run()
    assert finished.status == JobStatus.SUCCEEDED
    return sum("free for other writers" in record.getMessage() for record in caplog.records)


def test_writers_pause_for_another_process_with_the_database_open(users_csv, knobs, caplog):
    # 300 rows of 5 ms: 1.5 s of turns, past YIELD_EVERY, so a pause falls due.
    knobs(row_delay="0.005")
    job = make_job(users_csv(300))
    with hold_database_open():  # until its stdin closes, as the block ends
        pauses = pauses_in(caplog, job)
    assert pauses >= (1 if connection.vendor == "sqlite" else 0)
    if connection.vendor != "sqlite":
        assert pauses == 0, "servers with row locks need no pauses"


def test_writers_do_not_pause_when_no_other_process_has_the_database_open(users_csv, knobs, caplog):
    # Nobody else could be waiting: a pause would only cost the job its time (13% of it).
    knobs(row_delay="0.005")
    job = make_job(users_csv(300))
    assert pauses_in(caplog, job) == 0


def hold_database_open() -> subprocess.Popen[str]:
    """Another process with a connection to the database, open until its stdin closes."""
    code = (
        "import django, sys; django.setup(); from django.db import connection; "
        "connection.ensure_connection(); connection.cursor().execute('SELECT 1'); "
        "print('open', flush=True); sys.stdin.read()"
    )
    process = spawn([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "open"
    return process


def test_a_pool_of_workers_makes_no_pause_when_nobody_else_has_the_database_open(users_csv, knobs):
    """Workers see the runner and each other as the job's own processes (``runs_jobs``)."""
    knobs(row_delay="0.005")
    job = make_job(users_csv(400))
    gate = lock_path(connection) if connection.vendor == "sqlite" else None
    before = read_stamps(gate)

    finished = JobRunner(job.pk, workers=2, chunk_size=20).run()

    assert finished.status == JobStatus.SUCCEEDED
    if gate is not None:
        paused, looked = read_stamps(gate)
        assert looked > before[1], "the writers should have looked for other processes"
        assert paused == before[0], "no pause: only the job's processes had the database open"


def test_a_worker_slow_to_set_up_makes_no_pause_for_the_others(write_file, knobs, tmp_path):
    """A worker has the database open from its importer's setup on, so it counts as the job's
    from before then: it used to count as another process while it set up. Its setup's writes
    take a turn; its wait holds up no one."""
    marker = tmp_path / "slow-setup"
    marker.touch()
    knobs(setup_wait_file=str(marker), setup_wait="2", setup_writes="1", row_wait="0.01")
    body = "".join(f"R{n},Rome\n" for n in range(200))
    job = make_job(write_file("r.csv", "name,city\n" + body), importer_path=RESTAURANTS)
    gate = lock_path(connection) if connection.vendor == "sqlite" else None
    before = read_stamps(gate)

    finished = JobRunner(job.pk, workers=2, threads=1, chunk_size=5).run()

    assert finished.status == JobStatus.SUCCEEDED
    assert not marker.exists(), "one worker should have set up slowly"
    assert Tag.objects.filter(name__startswith="setup-").count() == 2  # written in turns
    if gate is not None:
        paused, looked = read_stamps(gate)
        assert looked > before[1], "the writers should have looked for other processes"
        assert paused == before[0], "no pause: only the job's processes had the database open"


def test_code_that_may_write_waits_for_a_turn_only_at_its_first_write():
    """``writes_turn``, as an importer's ``setup()`` runs: what reads overlaps the job's turns;
    its first write waits for one (where the database has a single writer)."""
    holding, release, read, wrote = (threading.Event() for _ in range(4))

    def hold_a_turn() -> None:
        try:
            with write_turn():
                holding.set()
                assert release.wait(60)
        finally:
            connections.close_all()

    def set_up() -> None:
        try:
            with writes_turn():
                Tag.objects.count()
                read.set()
                Tag.objects.create(name="written in setup")
            wrote.set()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=hold_a_turn), threading.Thread(target=set_up)]
    threads[0].start()
    try:
        wait_until(holding.is_set, 30, what="a turn held")
        threads[1].start()
        wait_until(read.is_set, 30, what="the read, while another thread holds the turn")
        if connection.vendor == "sqlite":
            path = lock_path(connection)
            assert path is not None
            gate = _file_id(path)
            wait_until(lambda: waits_for(gate), 30, what="the write waiting for the turn")
            assert not wrote.is_set()
        else:  # row locks: no turns
            wait_until(wrote.is_set, 30, what="the write")
    finally:
        release.set()
        for thread in threads:
            thread.join(60)
    assert wrote.is_set() and Tag.objects.filter(name="written in setup").exists()


def waits_for(file: str) -> bool:
    """Whether a lock request on the file is blocked (``->`` in ``/proc/locks``)."""
    return any("->" in line and file in line.split() for line in Path("/proc/locks").read_text().splitlines())


def read_stamps(gate: Path | None) -> tuple[float, float]:
    """The gate file's times of the last pause and the last look (zeros before any)."""
    data = gate.read_bytes() if gate is not None and gate.exists() else b""
    return _STAMPS.unpack(data) if len(data) == _STAMPS.size else (0.0, 0.0)


SHM, RUNNERS = "fe:00:100", "fe:00:200"


@pytest.mark.parametrize(
    ("listing", "others"),
    [
        (f"1: POSIX  ADVISORY  READ 10 {SHM} 128 128\n", False),
        (f"1: POSIX  ADVISORY  READ 10 {SHM} 128 128\n2: POSIX  ADVISORY  READ 11 {SHM} 128 128\n", True),
        (
            f"1: POSIX  ADVISORY  READ 10 {SHM} 128 128\n2: POSIX  ADVISORY  READ 11 {SHM} 128 128\n"
            f"3: FLOCK  ADVISORY  READ 11 {RUNNERS} 0 EOF\n",
            False,
        ),
        (f"1: POSIX  ADVISORY  READ 10 {SHM} 128 128\n1: -> POSIX  ADVISORY  WRITE 12 {SHM} 120 120\n", True),
        (f"1: POSIX  ADVISORY  READ 11 {SHM} 128 128\n", True),  # our own lock not listed: unsure
        (f"1: POSIX  ADVISORY  READ 10 {SHM} 128 128\n2: POSIX  ADVISORY  READ 13 fe:00:101 0 EOF\n", False),
        (f"1: POSIX  ADVISORY  READ 10 {SHM} 128 128\n2: OFDLCK ADVISORY  READ -1 {SHM} 0 0\n", True),
    ],
    ids=["alone", "another", "another-running-a-job", "a-blocked-writer", "self-unseen", "other-file", "ofd"],
)
def test_who_else_has_the_database_open_is_read_from_the_lock_list(listing, others):
    assert others_in(listing, shm=SHM, runners=RUNNERS, me="10") is others


@pytest.mark.django_db(transaction=False)
def test_a_database_no_job_has_run_on_is_known_to_have_no_one_else_on_it(tmp_path, settings):
    """Before, a missing runners file read as "cannot tell": validating a big file paused for
    other writers every ``YIELD_EVERY`` (0.12 s of each 0.8 s) with nobody else there."""
    settings.BULKADMIN = {**settings.BULKADMIN, "SQLITE_ONE_CONTAINER": True}
    database = tmp_path / "fresh.sqlite3"
    alone = sqlite3.connect(database)
    try:
        alone.execute("PRAGMA journal_mode=WAL")
        alone.execute("CREATE TABLE t (x)")  # the -shm file, and this process's lock on it
        assert not runners_path(database).exists()
        assert others_connected(database) is False
        other = sqlite3.connect(database)  # another connection of this process: still no one else
        other.execute("SELECT * FROM t").fetchall()
        other.close()
        assert others_connected(database) is False
    finally:
        alone.close()
