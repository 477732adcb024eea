"""The rest of the site keeps writing while an import runs, on every database.

A login writes ``last_login``; here another connection, with a two-second lock timeout, does
that over and over while ``runbulkjob`` imports with two workers. None of its writes may fail.
On SQLite the engine's writers used to commit back to back and starve it ("database is
locked" after the timeout); they now leave the database free for a moment every second.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from bulkadmin.models import ImportJob, JobStatus
from tests.conftest import wait_until
from tests.test_engine import make_job
from tests.test_faults import start_runner

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


def test_a_login_is_never_locked_out_while_an_import_runs(users_csv, knobs):
    # Rows of 2 ms each: the import lasts seconds however fast the machine, so the logins below
    # run while it does (3,000 plain rows took under a second on a fast hour).
    knobs(row_delay="0.002")
    admin = User.objects.create_user("admin-at-work")
    job = make_job(users_csv(3000))
    runner = start_runner(job.pk, chunk_size=100)
    wait_until(lambda: ImportJob.objects.get(pk=job.pk).processed > 0, timeout=60, interval=0.02)

    waits: list[float] = []
    errors: list[BaseException] = []
    table = connection.ops.quote_name(User._meta.db_table)
    sql = f"UPDATE {table} SET last_login = CURRENT_TIMESTAMP WHERE id = %s"
    if connection.vendor == "sqlite":
        sql = sql.replace("%s", "?")

    def log_in_repeatedly() -> None:
        raw = outside_connection()
        try:
            while ImportJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).exists() and len(waits) < 200:
                started = time.monotonic()
                try:
                    cursor = raw.cursor()
                    cursor.execute(sql, [admin.pk])
                    raw.commit()
                except Exception as exc:
                    errors.append(exc)
                    raw.rollback()
                waits.append(time.monotonic() - started)
                time.sleep(0.05)
        finally:
            raw.close()
            connection.close()

    thread = threading.Thread(target=log_in_repeatedly)
    thread.start()
    output, _ = runner.communicate(timeout=300)
    thread.join(60)

    assert runner.returncode == 0, output
    assert len(waits) >= 5, "the logins should have run while the import did"
    assert not errors, f"{len(errors)} of {len(waits)} logins failed, e.g. {errors[0]}"
