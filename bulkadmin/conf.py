"""The ``BULKADMIN`` settings dict, read at call time so ``override_settings`` works."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

#: Every key a project may set in ``settings.BULKADMIN``, with its default.
DEFAULTS: dict[str, Any] = {
    # Dotted paths of the importers offered; the first is the default.
    "IMPORTERS": ["bulkadmin.importers.users.UserImporter"],
    # Dotted path of a callable run once per worker process, after the importer's setup().
    "SETUP_HOOK": None,
    # Worker processes; None means one per core.
    "WORKERS": None,
    # The most worker processes staff may ask for on the upload page; None means one per core.
    # (The command line is not limited: whoever runs it owns the machine.)
    "MAX_WORKERS": None,
    # Threads per worker process, each with its own database connection; they help rows that
    # wait on I/O (email, HTTP), not CPU-bound ones. None: the runner picks, from the first
    # chunks' timings, between 1 and MAX_AUTO_THREADS (Celery workers then run 1). A number is
    # kept unless those timings show rows that keep the CPU busy: 1 thread runs them then.
    "THREADS": None,
    "MAX_AUTO_THREADS": 16,
    # Rows handed to a worker at a time; one transaction each (SQLite may split a slow one).
    # None: the database's own, 500 on SQLite (one writer), 100 elsewhere.
    "CHUNK_SIZE": None,
    # True when every process that opens the SQLite database runs in this container (PID
    # namespace): bulkadmin's writers may then skip their pauses for other writers when none has
    # it open, as they do outside containers. Processes in other containers are invisible here.
    "SQLITE_ONE_CONTAINER": False,
    # Chunks in flight per worker thread: bounds the runner's memory however large the job.
    "MAX_IN_FLIGHT_PER_WORKER": 2,
    # multiprocessing start method for the pool; "fork" is never the default (see STYLE.md).
    "MP_START_METHOD": "forkserver",
    # Seconds between heartbeats of a running job, and the age after which it counts as crashed.
    "HEARTBEAT_SECONDS": 2.0,
    "STALE_AFTER_SECONDS": 30.0,
    # Seconds to wait before each retry when the database connection fails mid-job (a server
    # restart, a failover). Once they are used up the job stops, crashed and resumable.
    "DB_RETRY_DELAYS": (0.5, 1, 2, 4, 8, 15),
    # Limits on an uploaded file.
    "MAX_UPLOAD_BYTES": 50 * 1024 * 1024,
    "MAX_ROWS": 1_000_000,
    "MAX_COLUMNS": 50,
    "MAX_FIELD_LENGTH": 1000,
    # XLSX is a zip: refuse one that unpacks to more than this.
    "MAX_UNCOMPRESSED_BYTES": 200 * 1024 * 1024,
    # Where uploads awaiting confirmation and job logs live. Never under a served directory.
    "DATA_DIR": None,
    # Key material for encrypting secret columns (passwords) at rest; None derives one from SECRET_KEY.
    "SECRET_KEY": None,
    # Base URL of the site, for links in emails sent by workers, when no request gave one (a job
    # started from the command line); a job started in the admin uses the host it was started on.
    "SITE_URL": "http://127.0.0.1:8000",
    # Email the person who started a job when it ends (counts, duration, a link); never for the
    # command line, and only to a starter with an email address.
    "NOTIFY_STARTER": True,
    # How a confirmed job is started: "subprocess" (detached runbulkjob), "celery" (chunks as
    # Celery tasks) or "tasks" (the runner as a task of Django's Tasks framework).
    "LAUNCHER": "subprocess",
    # The Python that runs a detached runbulkjob; None means this interpreter (sys.executable),
    # which under uWSGI is not Python: set it there (manage.py check says so).
    "PYTHON": None,
    # Seconds a signed upload token (between the report and the confirm click) stays valid.
    "UPLOAD_TOKEN_MAX_AGE": 6 * 60 * 60,
    # Uploads older than this many seconds are deleted opportunistically (abandoned reports).
    "STALE_UPLOAD_SECONDS": 24 * 60 * 60,
    # Uploads one user may have waiting for confirmation (reports neither confirmed, cancelled
    # nor expired); the next one is refused until one is. None means no cap.
    "MAX_PENDING_UPLOADS_PER_USER": 5,
    # Failed rows shown per page on the job page.
    "FAILED_ROWS_PER_PAGE": 25,
    # Seconds after a job ends that its failed rows keep their secret columns (passwords,
    # sealed) for a rerun; then they are erased. None keeps them as long as the job.
    "SECRET_RETENTION_SECONDS": 7 * 24 * 60 * 60,
}


def get(name: str) -> Any:
    """Return one setting, the project's value when given, else the default."""
    if name not in DEFAULTS:
        raise KeyError(f"Unknown BULKADMIN setting {name!r}")
    configured: dict[str, Any] = getattr(settings, "BULKADMIN", {}) or {}
    return configured.get(name, DEFAULTS[name])


def fixed_threads() -> int:
    """``THREADS``, or 1 where nothing picks them while the job runs (Celery's workers)."""
    return max(1, int(get("THREADS") or 1))


def chunk_size() -> int:
    """``CHUNK_SIZE``, else the default database's (``Vendor.chunk_size``)."""
    from bulkadmin import vendors  # it imports Django's database layer

    return max(1, int(get("CHUNK_SIZE") or vendors.for_alias().chunk_size))


def max_workers() -> int:
    return int(get("MAX_WORKERS") or os.cpu_count() or 1)


def data_dir_path() -> Path:
    """Where the private directory is, or will be; nothing is made or vetted (system checks look
    before the first upload does)."""
    configured = get("DATA_DIR")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "bulkadmin"


def data_dir() -> Path:
    """The private directory for uploads and job logs, created on first use.

    The default, ``bulkadmin`` in the shared temp directory, is refused when someone else
    created it first (another user could read uploads, or plant links there) or when it is a
    symlink; a directory of ours is kept owner-only.
    """
    path = data_dir_path()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
        raise ImproperlyConfigured(
            f"BULKADMIN['DATA_DIR'] {path} is a symlink or belongs to another user; "
            "set DATA_DIR to a private directory of this site's."
        )
    if info.st_mode & 0o077:
        path.chmod(0o700)
    return path
