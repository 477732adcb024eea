"""System checks: catch a misconfigured BULKADMIN dict at start-up, not mid-import."""

from __future__ import annotations

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
