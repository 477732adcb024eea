"""The demo's settings plus the workload app; the database comes from ``DATABASE_URL``.

``bench/run.py`` points ``DATABASE_URL`` at a benchmark-only database (a fresh SQLite file per
run, or the ``bulkadmin_bench`` database on PostgreSQL or MariaDB/MySQL) and sets
``BENCH_WORKLOAD`` before each contender's process starts, so pool workers and forkservers
inherit both.
"""

from __future__ import annotations

import os
from pathlib import Path

from mysite.settings import *  # noqa: F403
from mysite.settings import BASE_DIR, BULKADMIN, INSTALLED_APPS

DEBUG = False  # DEBUG keeps every query in memory: no production site runs like that.
INSTALLED_APPS = [*INSTALLED_APPS, "bench.benchapp"]
BULKADMIN = {
    **BULKADMIN,
    "DATA_DIR": Path(os.environ.get("BENCH_WORK_DIR", str(Path(BASE_DIR) / "bench" / ".work"))) / "data",
    # The million-row confirm's file is 67 MB, over the 50 MB default: a site importing such
    # files raises the limit as this does.
    "MAX_UPLOAD_BYTES": 200 * 2**20,
    "MAX_ROWS": 2_000_000,
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"bulkadmin": {"handlers": ["console"], "level": "WARNING"}},
}

# The ``celery-<N>w`` contenders: their own Redis database (flushed before each run) and queue, so
# neither the demo's nor the test suite's workers (Redis DB 15) ever see the benchmark's tasks.
CELERY_BROKER_URL = os.environ.get("BENCH_CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")
CELERY_TASK_DEFAULT_QUEUE = "bulkadmin-bench"
