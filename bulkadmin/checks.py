"""System checks: catch a misconfigured BULKADMIN dict at start-up, not mid-import."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import checks

from bulkadmin import conf, uploads

#: What None means for the settings that may be None, in check E003's message.
NONE_MEANS = {"THREADS": "to have them picked", "CHUNK_SIZE": "for the database's default"}


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    configured = getattr(settings, "BULKADMIN", {}) or {}
    if not isinstance(configured, dict):
        return [checks.Error("BULKADMIN must be a dict.", id="bulkadmin.E001")]
    for key in configured:
        if key not in conf.DEFAULTS:
            errors.append(
                checks.Error(
                    f"Unknown BULKADMIN setting {key!r}.",
                    hint=f"Known settings: {', '.join(sorted(conf.DEFAULTS))}.",
                    id="bulkadmin.E002",
                )
            )
    # Positive integers; those in the second group may also be None (``NONE_MEANS``).
    for key, may_be_none in (
        *((key, False) for key in ("MAX_AUTO_THREADS", "MAX_ROWS", "MAX_UPLOAD_BYTES")),
        ("THREADS", True),
        ("CHUNK_SIZE", True),
        ("MAX_PENDING_UPLOADS_PER_USER", True),
    ):
        value = configured.get(key, conf.DEFAULTS[key])
        if value is None and may_be_none:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            meaning = NONE_MEANS.get(key, "for no limit")
            also = f", or None {meaning}" if may_be_none else ""
            errors.append(
                checks.Error(f"BULKADMIN[{key!r}] must be a positive integer{also}.", id="bulkadmin.E003")
            )
    delays = configured.get("DB_RETRY_DELAYS", conf.DEFAULTS["DB_RETRY_DELAYS"])
    if not isinstance(delays, list | tuple) or not all(
        isinstance(d, int | float) and not isinstance(d, bool) and d >= 0 for d in delays
    ):
        errors.append(
            checks.Error(
                "BULKADMIN['DB_RETRY_DELAYS'] must be a list of seconds (numbers, 0 or more).",
                id="bulkadmin.E004",
            )
        )
    errors += _check_data_dir_is_not_served(configured.get("DATA_DIR"))
    errors += _check_launcher(configured)
    for alias, db in settings.DATABASES.items():
        if (
            db.get("ENGINE", "").endswith("sqlite3")
            and (db.get("OPTIONS") or {}).get("transaction_mode") != "IMMEDIATE"
        ):
            errors.append(
                checks.Warning(
                    f"Database {alias!r} is SQLite without transaction_mode IMMEDIATE.",
                    hint="Parallel workers then fail with 'database is locked'; set "
                    "OPTIONS={'transaction_mode': 'IMMEDIATE', 'timeout': 30}.",
                    id="bulkadmin.W001",
                )
            )
    return errors


def _check_data_dir_is_not_served(data_dir: Any) -> list[checks.CheckMessage]:
    """Uploads and job logs hold personal data; a web server must never hand them out."""
    if not data_dir:
        return []
    private = Path(data_dir).resolve()
    served = [settings.STATIC_ROOT, settings.MEDIA_ROOT, *getattr(settings, "STATICFILES_DIRS", ())]
    for directory in served:
        if isinstance(directory, tuple | list):  # STATICFILES_DIRS entries may be (prefix, path)
            directory = directory[-1]
        if not directory:
            continue
        root = Path(directory).resolve()
        if private == root or root in private.parents:
            return [
                checks.Error(
                    f"BULKADMIN['DATA_DIR'] ({private}) is inside {root}, which the web server serves.",
                    hint="Put uploads and job logs in a private directory outside STATIC_ROOT, "
                    "MEDIA_ROOT and STATICFILES_DIRS.",
                    id="bulkadmin.E005",
                )
            ]
    return []


#: What a Python interpreter's file is called (python3, python3.12, pypy3, python.exe).
PYTHON_NAME = re.compile(r"^(python|pypy)[\d.]*(\.exe)?$", re.IGNORECASE)


def _check_launcher(configured: dict[str, Any]) -> list[checks.CheckMessage]:
    launcher = configured.get("LAUNCHER", conf.DEFAULTS["LAUNCHER"])
    if launcher == "subprocess" or launcher == "tasks":
        problems = _check_python(configured.get("PYTHON"))
    else:
        problems = []
    if launcher == "tasks":
        problems += _check_task_backend()
    return problems


def _check_python(python: Any) -> list[checks.CheckMessage]:
    """The detached runner needs a Python; under uWSGI ``sys.executable`` is uWSGI itself."""
    path = Path(str(python or sys.executable or ""))
    if python and not (path.is_file() and os.access(path, os.X_OK)):
        return [
            checks.Error(
                f"BULKADMIN['PYTHON'] ({path}) is not an executable file.",
                hint="Point it at the Python of this project's virtualenv, e.g. /srv/app/.venv/bin/python.",
                id="bulkadmin.E006",
            )
        ]
    if not python and not PYTHON_NAME.match(path.name):
        return [
            checks.Error(
                f"This process runs as {path.name or 'an unknown program'} ({path}), not Python, so "
                "the detached runner cannot be started with it.",
                hint="Set BULKADMIN['PYTHON'] to the Python of this project's virtualenv "
                "(web servers such as uWSGI embed Python).",
                id="bulkadmin.E006",
            )
        ]
    return []


def _check_task_backend() -> list[checks.CheckMessage]:
    try:
        from bulkadmin.jobtasks import backend_runs_inline

        inline = backend_runs_inline()
    except Exception as exc:  # no tasks framework installed, or TASKS misconfigured
        return [
            checks.Error(
                f"BULKADMIN['LAUNCHER'] is 'tasks' but Django's Tasks framework is not usable ({exc}).",
                hint="Install django-tasks-db (and django-tasks on Django 5.2) and set TASKS.",
                id="bulkadmin.E007",
            )
        ]
    if inline:
        return [
            checks.Warning(
                "BULKADMIN['LAUNCHER'] is 'tasks' but the default task backend runs tasks in the caller "
                "(or never): an import would run inside the web request.",
                hint="Jobs start as detached subprocesses instead. Use a backend with real workers, "
                "such as django_tasks_db.DatabaseBackend with `manage.py db_worker`.",
                id="bulkadmin.W002",
            )
        ]
    return []


@checks.register(deploy=True)  # `check --deploy`: not in every command's output (runbulkjob's log)
def check_abandoned_uploads(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Uploads are cleaned up by the next upload; where uploads are rare, abandoned ones (with the
    personal data in them) stay on disk until then unless cron runs ``cleanbulkadmin``.

    One listing of the uploads directory and of each user's in it; nothing is created, so a site
    that has not had an upload yet (no DATA_DIR) passes.
    """
    try:
        count = sum(1 for _ in uploads.abandoned(root=uploads.uploads_dir(create=False)))
    except (OSError, ValueError, TypeError):  # unreadable, or a misconfiguration other checks report
        return []
    if not count:
        return []
    return [
        checks.Warning(
            f"{count:,} abandoned upload{'' if count == 1 else 's'} (older than "
            f"BULKADMIN['STALE_UPLOAD_SECONDS']) {'is' if count == 1 else 'are'} still on disk in "
            f"{uploads.uploads_dir(create=False)}.",
            hint="Run `python manage.py cleanbulkadmin` regularly (from cron, say) to delete them; "
            "otherwise only the next upload does.",
            id="bulkadmin.W003",
        )
    ]
