"""Creating a job from a validated file: the job and its rows in one transaction."""

from __future__ import annotations

from pathlib import Path, PureWindowsPath
from typing import Any

from django.db import transaction

from bulkadmin import crypto
from bulkadmin.importers.base import ImportContext, Importer
from bulkadmin.importers.registry import get_importer_class
from bulkadmin.models import ImportJob, ImportRow, JobStatus, StartedVia
from bulkadmin.validation import Report, validate_file

INSERT_BATCH = 1000


def context_for(job: ImportJob) -> ImportContext:
    """The same context in the worker as in the request that validated the rows."""
    if job.started_via == StartedVia.COMMAND_LINE:
        return ImportContext.for_command_line(job.options)
    return ImportContext.for_person(job.created_by, job.options)


def starter_context(user: Any, options: dict[str, Any]) -> ImportContext:
    """The context of a job about to be started by ``user``, or (None) by the command line."""
    if user is None:
        return ImportContext.for_command_line(options)
    return ImportContext.for_person(user, options)


def importer_for(job: ImportJob) -> Importer:
    return get_importer_class(job.importer)(context_for(job))


def display_name(name: str) -> str:
    """The client's file name, for display only: its last component, from any OS."""
    return PureWindowsPath(name).name[:255] or "upload"


def split_secret(importer: Importer, values: dict[str, str]) -> tuple[dict[str, str], str]:
    """A row's plain values and its sealed secret columns."""
    secret_names = importer.secret_columns()
    plain = {k: v for k, v in values.items() if k not in secret_names}
    sealed = crypto.seal({k: v for k, v in values.items() if k in secret_names})
    return plain, sealed


def create_job(
    path: Path,
    name: str,
    *,
    importer_path: str | None = None,
    user: Any = None,
    options: dict[str, Any] | None = None,
    workers: int | None = None,
    threads: int | None = None,
) -> tuple[ImportJob | None, Report]:
    """Validate the file again and save a job holding its valid rows.

    ``user`` is the person starting it; None means the command line, with all rights.

    Validation runs again because the database may have changed since staff read the report;
    rows that turned invalid are left out, exactly as the report would now say. No job is
    saved (``None``) when the file is unreadable or has no valid row.
    """
    options = dict(options or {})
    importer_cls = get_importer_class(importer_path)
    importer = importer_cls(starter_context(user, options))
    with transaction.atomic():
        job = ImportJob.objects.create(
            importer=importer_cls.dotted_path(),
            source_name=display_name(name),
            options=options,
            created_by=user if getattr(user, "pk", None) else None,
            started_via=StartedVia.COMMAND_LINE if user is None else StartedVia.PERSON,
            workers=workers,
            threads=threads,
            status=JobStatus.VALIDATED,
        )

        def save_rows(batch: list[tuple[int, dict[str, str]]]) -> None:
            objs = []
            for number, values in batch:
                plain, sealed = split_secret(importer, values)
                objs.append(ImportRow(job=job, number=number, values=plain, secret=sealed))
            ImportRow.objects.bulk_create(objs, batch_size=INSERT_BATCH)

        report = validate_file(path, name, importer, on_valid=save_rows)
        if report.file_error or report.valid == 0:
            transaction.set_rollback(True)
            return None, report
        job.total = report.valid
        job.save(update_fields=["total"])
    return job, report


def rerun_failed(job: ImportJob, *, user: Any = None) -> ImportJob:
    """A new job, linked to ``job``, holding copies of its failed rows as corrected.

    A person's rerun runs with that person's rights; one from the command line (no ``user``)
    keeps the rights of whoever started ``job``.
    """
    with transaction.atomic():
        rerun = ImportJob.objects.create(
            importer=job.importer,
            source_name=job.source_name,
            options=dict(job.options),
            created_by=user if user is not None else job.created_by,
            started_via=StartedVia.PERSON if user is not None else job.started_via,
            parent=job,
            workers=job.workers,
            threads=job.threads,
            status=JobStatus.VALIDATED,
        )
        total = 0
        batch: list[ImportRow] = []
        for row in job.rows.failed().order_by("number").iterator(chunk_size=INSERT_BATCH):
            batch.append(ImportRow(job=rerun, number=row.number, values=row.values, secret=row.secret))
            if len(batch) >= INSERT_BATCH:
                total += len(ImportRow.objects.bulk_create(batch))
                batch = []
        total += len(ImportRow.objects.bulk_create(batch))
        rerun.total = total
        rerun.save(update_fields=["total"])
    return rerun
