"""Test settings: the demo's, on a real SQLite file or (with DATABASE_URL) PostgreSQL or MariaDB.

Subprocesses started by tests (pool workers, ``runbulkjob``) load these settings too; the
conftest exports the test database's name in ``BULKADMIN_TEST_DB_NAME`` so they open the
test database rather than the development one.
"""

from __future__ import annotations

import os
from pathlib import Path

from mysite.settings import *  # noqa: F403
from mysite.settings import BASE_DIR, DATABASES, INSTALLED_APPS

TEST_DB_DIR = Path(BASE_DIR) / "tests" / ".db"
TEST_DB_DIR.mkdir(exist_ok=True)

# One test database per pytest process, so that two runs on one machine never share one.
_default = DATABASES["default"]
if _default["ENGINE"].endswith("sqlite3"):
    _default["TEST"] = {"NAME": str(TEST_DB_DIR / f"test-{os.getpid()}.sqlite3")}
elif _default["ENGINE"].endswith("mysql"):
    _default["TEST"] = {"NAME": f"test_bulkadmin_{os.getpid()}", "CHARSET": "utf8mb4"}
else:
    _default["TEST"] = {"NAME": f"test_bulkadmin_{os.getpid()}"}
if os.environ.get("BULKADMIN_TEST_DB_NAME"):
    _default["NAME"] = os.environ["BULKADMIN_TEST_DB_NAME"]
# The outage tests give a runner a short SQLite busy timeout, so a locked database fails fast.
_sqlite_timeout = os.environ.get("BULKADMIN_TEST_SQLITE_TIMEOUT")
if _sqlite_timeout and _default["ENGINE"].endswith("sqlite3"):
    _default["OPTIONS"] = {**_default["OPTIONS"], "timeout": float(_sqlite_timeout)}

INSTALLED_APPS = [*INSTALLED_APPS, "import_export", "tests.testapp"]

# Celery tests use Redis database 15 and a queue of this pytest process's own (the conftest
# exports the name to the worker processes it starts); a dead worker's chunk comes back fast.
CELERY_BROKER_URL = os.environ.get("BULKADMIN_TEST_BROKER_URL", "redis://127.0.0.1:6379/15")
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("BULKADMIN_TEST_CELERY_QUEUE") or f"bulkadmin-test-{os.getpid()}"
# kombu looks for unacknowledged messages to restore only every interval × throttle seconds
# (100 s by default); once a second here.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("BULKADMIN_TEST_VISIBILITY_TIMEOUT", "6")),
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}

# Fast hashing everywhere but the one test that covers the real hasher.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECRET_KEY = "tests-secret-key-not-for-production-0123456789abcdef"

BULKADMIN = {
    # A test's own directory reaches the runners it starts through the environment.
    "DATA_DIR": os.environ.get("BULKADMIN_TEST_DATA_DIR") or TEST_DB_DIR / "data",
    "IMPORTERS": [
        "bulkadmin.importers.users.UserImporter",
        "tests.testapp.importers.RestaurantImporter",
        "tests.testapp.importers.BookImporter",
        "tests.testapp.importers.RestaurantModelImporter",
        "tests.testapp.importers.BookResourceImporter",
    ],
    # One thread per worker: most tests catch a job mid-way by its slow rows, which picked threads
    # would speed up. The thread tuning's tests unset it (BULKADMIN_TEST_THREADS="" for runners).
    "THREADS": int(os.environ.get("BULKADMIN_TEST_THREADS", "1") or 0) or None,
    "HEARTBEAT_SECONDS": 0.5,
    "STALE_AFTER_SECONDS": 5.0,
    "SITE_URL": "http://testserver",
    "LAUNCHER": os.environ.get("BULKADMIN_LAUNCHER", "subprocess"),
    # Celery tests start their workers with small chunks, so a cancel lands between chunks.
    "CHUNK_SIZE": int(os.environ.get("BULKADMIN_TEST_CHUNK_SIZE", "100")),
    # The outage tests shorten the retries so a runner gives up within the test.
    "DB_RETRY_DELAYS": tuple(
        float(d) for d in os.environ.get("BULKADMIN_TEST_DB_RETRY_DELAYS", "0.5,1,2,4,8,15").split(",")
    ),
}
LOGGING = {"version": 1, "disable_existing_loggers": False}
