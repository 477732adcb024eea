# Rows become chunks: a job's pending rows are stored 100 to a record; only failed rows keep a
# record of their own. Pending and imported rows of existing jobs are moved into chunks here.

from typing import Any

import django.db.models.deletion
from django.db import migrations, models

CHUNK = 100


def rows_to_chunks(apps: Any, schema_editor: Any) -> None:
    from bulkadmin import crypto

    ImportRow = apps.get_model("bulkadmin", "ImportRow")
    ImportChunk = apps.get_model("bulkadmin", "ImportChunk")
    job_ids = ImportRow.objects.exclude(status="failed").values_list("job_id", flat=True).distinct()
    for job_id in list(job_ids):
        number = 0
        for status in ("succeeded", "pending"):
            rows = ImportRow.objects.filter(job_id=job_id, status=status).order_by("number")
            batch: list[Any] = []
            for row in rows.iterator(chunk_size=1000):
                batch.append(row)
                if len(batch) == CHUNK:
                    number += 1
                    _save_chunk(ImportChunk, crypto, job_id, number, status, batch)
                    batch = []
            if batch:
                number += 1
                _save_chunk(ImportChunk, crypto, job_id, number, status, batch)
            rows.delete()


def _save_chunk(
    ImportChunk: Any, crypto: Any, job_id: int, number: int, status: str, rows: list[Any]
) -> None:
    secrets = {}
    for row in rows:
        try:
            secrets[row.number] = crypto.unseal(row.secret)
        except crypto.SecretUnreadable:
            secrets[row.number] = {crypto.UNREADABLE: "1"}
    done = status == "succeeded"
    ImportChunk.objects.create(
        job_id=job_id,
        number=number,
        size=len(rows),
        rows=[[row.number, row.values] for row in rows],
        secret="" if done else crypto.seal_rows(secrets),
        status="done" if done else "pending",
        object_pks={str(row.number): row.object_pk for row in rows} if done else {},
    )


class Migration(migrations.Migration):
    dependencies = [
        ("bulkadmin", "0003_started_via"),
    ]

    operations = [
        migrations.CreateModel(
            name="ImportChunk",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("number", models.PositiveIntegerField(verbose_name="chunk")),
                ("size", models.PositiveIntegerField(verbose_name="rows")),
                ("rows", models.JSONField(default=list, verbose_name="rows")),
                ("secret", models.TextField(blank=True, editable=False, verbose_name="secret columns")),
                (
                    "status",
                    models.CharField(
                        choices=[("pending", "Pending"), ("done", "Done")],
                        default="pending",
                        max_length=12,
                        verbose_name="status",
                    ),
                ),
                ("done_rows", models.JSONField(blank=True, default=list, verbose_name="rows done")),
                ("object_pks", models.JSONField(blank=True, default=dict, verbose_name="objects")),
                ("heartbeat_at", models.DateTimeField(blank=True, null=True, verbose_name="last heartbeat")),
                (
                    "job",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="chunks",
                        to="bulkadmin.importjob",
                    ),
                ),
            ],
            options={
                "verbose_name": "import chunk",
                "verbose_name_plural": "import chunks",
                "ordering": ["job_id", "number"],
                "indexes": [
                    models.Index(fields=["job", "status", "number"], name="bulkadmin_chunk_by_status")
                ],
                "constraints": [
                    models.UniqueConstraint(fields=("job", "number"), name="bulkadmin_chunk_unique_number")
                ],
            },
        ),
        migrations.RunPython(rows_to_chunks, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name="importrow",
            name="object_pk",
        ),
        migrations.AlterField(
            model_name="importjob",
            name="status",
            field=models.CharField(
                choices=[
                    ("preparing", "Preparing"),
                    ("validated", "Validated"),
                    ("queued", "Queued"),
                    ("running", "Running"),
                    ("cancelling", "Cancelling"),
                    ("cancelled", "Cancelled"),
                    ("succeeded", "Succeeded"),
                    ("finished_with_errors", "Finished with errors"),
                    ("crashed", "Crashed"),
                ],
                default="validated",
                max_length=24,
                verbose_name="status",
            ),
        ),
        migrations.AlterField(
            model_name="importrow",
            name="attempts",
            field=models.PositiveSmallIntegerField(default=1, verbose_name="attempts"),
        ),
        migrations.AlterField(
            model_name="importrow",
            name="status",
            field=models.CharField(
                choices=[("failed", "Failed")], default="failed", max_length=12, verbose_name="status"
            ),
        ),
    ]
