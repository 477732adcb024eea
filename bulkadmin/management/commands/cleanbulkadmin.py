"""``manage.py cleanbulkadmin``: delete abandoned uploads and erase expired secrets of failed rows."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from bulkadmin import retention


class Command(BaseCommand):
    help = (
        "Delete uploads nobody confirmed (STALE_UPLOAD_SECONDS) and erase the sealed secrets "
        "(passwords) of failed rows whose job ended more than SECRET_RETENTION_SECONDS ago. "
        "Each upload does this too; run it from cron where uploads are rare."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        done = retention.clean()
        self.stdout.write(
            f"Deleted {done.uploads:,} abandoned uploads; erased the secrets of {done.secrets:,} failed rows."
        )
