from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import DatabaseError, connection

from mysite.sampledata import write_users

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _export_test_database(django_db_setup, django_db_blocker):
    """Subprocesses (pool workers, runbulkjob) read the test database's name from here."""
    with django_db_blocker.unblock():
        os.environ["BULKADMIN_TEST_DB_NAME"] = str(connection.settings_dict["NAME"])
    from django.conf import settings

    os.environ["BULKADMIN_TEST_CELERY_QUEUE"] = settings.CELERY_TASK_DEFAULT_QUEUE
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    yield
    os.environ.pop("BULKADMIN_TEST_DB_NAME", None)
    with django_db_blocker.unblock():
        _disconnect_others()


def _disconnect_others() -> None:
    """Close what a live server thread or a runner left open, so the test database can be dropped."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        elif connection.vendor == "mysql":
            cursor.execute(
                "SELECT id FROM information_schema.processlist "
                "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
            )
            for (thread_id,) in cursor.fetchall():
                with contextlib.suppress(DatabaseError):  # ended meanwhile
                    cursor.execute(f"KILL {int(thread_id)}")


@pytest.fixture
def knobs():
    """Set switches the test receivers read in every process (see tests/testapp/receivers.py)."""
    from tests.testapp.models import Knob

    def setter(**values: str) -> None:
        for key, value in values.items():
            Knob.objects.update_or_create(name=key, defaults={"value": value})

    return setter


@pytest.fixture
def allow_importers(settings):
    """Add importers (dotted paths) to ``BULKADMIN["IMPORTERS"]`` for one test."""

    def allow(*paths: str) -> None:
        settings.BULKADMIN = {**settings.BULKADMIN, "IMPORTERS": [*settings.BULKADMIN["IMPORTERS"], *paths]}

    return allow


@pytest.fixture
def users_csv(tmp_path):
    def make(count: int, *, bad: int = 0, prefix: str = "user", name: str = "users.csv", **kwargs) -> Path:
        path: Path = write_users(tmp_path / name, count, bad=bad, prefix=prefix, **kwargs)
        return path

    return make


@pytest.fixture
def write_file(tmp_path):
    def make(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_bytes(content)
        return Path(path)

    return make


@pytest.fixture
def busy_machine():
    """More processes keeping a CPU busy than the machine has cores, for the test's length: the
    machine's other work (another job, the web server) while ours runs."""
    hogs = [
        subprocess.Popen(
            [sys.executable, "-c", "print('busy', flush=True)\nwhile True: pass"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range((os.cpu_count() or 2) + 1)
    ]
    try:
        for hog in hogs:
            assert hog.stdout is not None and hog.stdout.readline() == "busy\n"
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.communicate()


def wait_until(predicate: Any, timeout: float = 60, interval: float = 0.05, what: str = "a condition") -> Any:
    """Poll ``predicate`` until it returns something true; fail loudly at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def in_threads(target: Any, count: int, timeout: float = 60) -> list[BaseException]:
    """Run ``target`` in ``count`` threads at once, all started before any is waited for;
    fail loudly if one is still running at the deadline. Returns what they raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), f"threads still running after {timeout:g} s"
    return errors


def spawn(args: list[str], *, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen[Any]:
    """A long-lived subprocess of ours (runner, Celery worker) in its own session, on the test database."""
    return subprocess.Popen(
        args,
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **(env or {})},
        start_new_session=True,
        **kwargs,
    )


def manage(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``manage.py`` as a user would, in a real subprocess, against the test database."""
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **(env or {})},
        check=False,
    )


# ---- what became of a job's rows -----------------------------------------------------------
def row_outcomes(job) -> dict[int, str]:
    """Each row's outcome by its number: succeeded, failed or pending.

    A row found invalid as the upload was read in is failed without ever being in a chunk.
    """
    from bulkadmin.models import ImportChunk, ImportRow

    failed = set(ImportRow.objects.filter(job=job).failed().values_list("number", flat=True))
    outcomes: dict[int, str] = dict.fromkeys(failed, "failed")
    for chunk in ImportChunk.objects.filter(job=job):
        done = set(chunk.done_rows) if chunk.status == "pending" else set(chunk.row_numbers())
        for number in chunk.row_numbers():
            if number in failed:
                outcomes[number] = "failed"
            elif number in done:
                outcomes[number] = "succeeded"
            else:
                outcomes[number] = "pending"
    return outcomes


def object_pks(job) -> dict[int, str]:
    """The object each imported row created or updated, by row number."""
    from bulkadmin.models import ImportChunk

    pks: dict[int, str] = {}
    for chunk_pks in ImportChunk.objects.filter(job=job).values_list("object_pks", flat=True):
        pks.update({int(number): pk for number, pk in chunk_pks.items()})
    return pks


def import_rows(job, numbers) -> None:
    """Have a worker import these rows of the job now, in this process (what a chunk task does)."""
    from bulkadmin.models import ImportChunk
    from bulkadmin.worker import import_chunk

    wanted = set(numbers)
    for chunk in ImportChunk.objects.filter(job=job).order_by("number"):
        mine = [number for number in chunk.row_numbers() if number in wanted]
        if mine:
            import_chunk(job.pk, chunk.pk, mine)
