"""What bulkadmin keeps, and for how long: abandoned uploads, and the secrets of failed rows.

A failed row keeps its secret columns (passwords), sealed, so that a rerun can import it with
them; ``SECRET_RETENTION_SECONDS`` after its job ended they are erased. Both clean-ups run
on every upload, and from ``manage.py cleanbulkadmin`` (a cron job, say).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from bulkadmin import conf, uploads
from bulkadmin.models import ImportJob, ImportRow, Statuses
from bulkadmin.vendors import write_turn

#: Rows whose secrets are erased per transaction: a short write lock each on SQLite.
ERASE_BATCH = 1000


@dataclass(frozen=True)
class Cleaned:
    uploads: int
    secrets: int


def erase_expired_secrets() -> int:
    """Erase the secrets of failed rows whose job ended longer ago than the retention."""
    retention = conf.get("SECRET_RETENTION_SECONDS")
    if retention is None:
        return 0
    cutoff = timezone.now() - timedelta(seconds=float(retention))
    ended = ImportJob.objects.filter(status__in=Statuses.SETTLED, finished_at__lt=cutoff)
    rows = ImportRow.objects.with_secrets().filter(job__in=ended.values("pk"))
    erased = 0
    while True:
        with write_turn(), transaction.atomic():
            ids = list(rows.values_list("pk", flat=True)[:ERASE_BATCH])
            if not ids:
                return erased
            erased += ImportRow.objects.filter(pk__in=ids).update(secret="")


def clean() -> Cleaned:
    return Cleaned(uploads=uploads.cleanup_stale(), secrets=erase_expired_secrets())
