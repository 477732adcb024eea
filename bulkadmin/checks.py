"""System checks: catch a misconfigured BULKADMIN dict at start-up, not mid-import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import checks

from bulkadmin import conf


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
    for key in ("CHUNK_SIZE", "THREADS", "MAX_ROWS", "MAX_UPLOAD_BYTES"):
        value = configured.get(key, conf.DEFAULTS[key])
        if not isinstance(value, int) or value < 1:
            errors.append(
                checks.Error(f"BULKADMIN[{key!r}] must be a positive integer.", id="bulkadmin.E003")
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
