"""The database goes away during a job: rows are neither lost nor done twice.

On PostgreSQL and MariaDB the test restarts (or stops) the local server; on SQLite another program holds
the database's write lock, and the runner has a short busy timeout, so its writes fail the way
they would against a database that is away. A short outage is waited out; a long one stops the
job, which turns crashed and is resumed.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator

import pytest
from django.db import connection, connections

from bulkadmin.jobs import create_job
from bulkadmin.models import ImportJob, JobStatus
from bulkadmin.vendors import CONNECTION_ERRORS, write_turn
from tests import test_faults as faults
from tests.conftest import wait_until
from tests.test_faults import assert_exactly_once

pytestmark = pytest.mark.django_db(transaction=True)

ROWS = 300
#: The runner's environment: a busy SQLite database fails within half a second.
RUNNER_ENV = {"BULKADMIN_TEST_SQLITE_TIMEOUT": "0.5"}


def pg_ctl(action: str) -> None:
    """Restart, stop or start the local PostgreSQL cluster (CI's and this machine's)."""
    command = os.environ.get("BULKADMIN_TEST_PG_CTL")
    if command:
        args = [*command.split(), action]
    else:
        versions = sorted(os.listdir("/etc/postgresql"))
        args = ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", action]
    subprocess.run(args, check=True, capture_output=True, timeout=60)


MARIADB = "/usr/sbin/mariadbd"


def mariadb_ctl(action: str) -> None:
    """Stop and start the local MariaDB server the way this machine starts it."""
    if action in ("stop", "restart"):
        stop = ["start-stop-daemon", "--stop", "--oknodo", "--retry", "TERM/60/KILL/5", "--exec", MARIADB]
        subprocess.run(stop, check=True, capture_output=True, timeout=90)
    if action in ("start", "restart"):
        start = ["start-stop-daemon", "--start", "--oknodo", "--background", "--exec", MARIADB]
        subprocess.run(start, check=True, capture_output=True, timeout=60)


def server_ctl(action: str) -> None:
    """Restart, stop or start the database server the tests run on."""
    if connection.vendor == "postgresql":
        pg_ctl(action)
    else:
        mariadb_ctl(action)


def reconnect(timeout: float = 60) -> None:
    """Wait until this process can query the database again (its own connection died too)."""
    deadline = time.monotonic() + timeout
    while True:
        connections.close_all()
        try:
            connection.ensure_connection()
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return
        except CONNECTION_ERRORS:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class SqliteWriteLock:
    """Another program holding the SQLite database's write lock.

    It takes its turn through bulkadmin's gate first, or the runner's back-to-back commits
    would starve it; then it holds SQLite's own lock, which the runner's writers cannot get.
    """

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)

    def take(self) -> None:
        with write_turn():
            self.db.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        self.db.execute("ROLLBACK")
        self.db.close()


@contextlib.contextmanager
def database_away() -> Iterator[None]:
    """The database refuses the runner's writes inside the block; it is back after it."""
    if connection.vendor != "sqlite":
        server_ctl("stop")
        try:
            yield
        finally:
            server_ctl("start")
            reconnect()
    else:
        lock = SqliteWriteLock(str(connection.settings_dict["NAME"]))
        lock.take()
        try:
            yield
        finally:
            lock.release()


def blip(seconds: float) -> None:
    """A short outage: a server restart, or the SQLite lock held for ``seconds``."""
    if connection.vendor != "sqlite":
        server_ctl("restart")
        reconnect()
    else:
        with database_away():
            time.sleep(seconds)


def start_runner(job_id: int, **env: str) -> subprocess.Popen[str]:
    return faults.start_runner(job_id, chunk_size=10, **RUNNER_ENV, **env)


def processed(job_id: int) -> int:
    return ImportJob.objects.values_list("processed", flat=True).get(pk=job_id)


def wait_until_processed(job_id: int, count: int) -> None:
    wait_until(lambda: processed(job_id) >= count)


@pytest.fixture
def slow_job(users_csv, knobs):
    """A job slow enough (10 ms a row, inside each chunk's transaction) to be mid-way at the outage."""
    knobs(record_signals="1", row_delay="0.01")
    job, _ = create_job(users_csv(ROWS), "users.csv")
    assert job is not None
    return job


def test_a_short_outage_mid_job_is_waited_out(slow_job):
    runner = start_runner(slow_job.pk)
    wait_until_processed(slow_job.pk, 40)

    blip(seconds=3)
    assert processed(slow_job.pk) < ROWS, "the outage should land mid-job"

    output, _ = runner.communicate(timeout=120)
    assert runner.returncode == 0, output
    assert "database error" in output and "retrying" in output, output
    assert_exactly_once(slow_job, ROWS)


def test_a_long_outage_stops_the_job_resumable_and_resume_finishes_it(slow_job):
    # Retries of a quarter and half a second: the runner gives up while the database is away.
    runner = start_runner(slow_job.pk, BULKADMIN_TEST_DB_RETRY_DELAYS="0.25,0.5")
    wait_until_processed(slow_job.pk, 40)

    with database_away():
        output, _ = runner.communicate(timeout=120)
    assert runner.returncode == 3, output
    assert "Lost the database" in output and f"runbulkjob {slow_job.pk}" in output, output
    assert "Traceback" not in output, output

    job = ImportJob.objects.get(pk=slow_job.pk)
    assert job.processed < ROWS
    if job.status == JobStatus.RUNNING:  # the runner could not record its end: the heartbeat goes stale
        deadline = time.monotonic() + 30
        while not ImportJob.objects.filter(pk=job.pk).stale().exists():
            assert time.monotonic() < deadline
            time.sleep(0.2)
        ImportJob.objects.filter(pk=job.pk).mark_stale_crashed()
    job.refresh_from_db()
    assert job.status == JobStatus.CRASHED, job.status

    resumed = start_runner(job.pk)
    output, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, output
    assert_exactly_once(job, ROWS)
