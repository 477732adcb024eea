"""Creating a job from a validated file, and a rerun from a job's failed rows.

Rows are stored a chunk at a time, each batch in a short transaction of its own: a
million-row confirm never holds SQLite's write lock for more than a moment, and the rest of
the site goes on writing. The job stays ``preparing`` (nothing can start it) until every
chunk is in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path, PureWindowsPath
from typing import Any

from django.db import transaction

from bulkadmin import conf, crypto
from bulkadmin.importers.base import ImportContext, Importer
from bulkadmin.importers.registry import get_importer_class
from bulkadmin.models import ImportChunk, ImportJob, JobStatus, StartedVia
from bulkadmin.validation import Report, validate_file
from bulkadmin.vendors import write_turn

#: Chunks saved per transaction while a job is created.
CHUNKS_PER_TRANSACTION = 20

RawRow = tuple[int, dict[str, str]]


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


def split_secret(importer: Importer, values: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """A row's plain values and its secret columns."""
    secret_names = importer.secret_columns() | {crypto.UNREADABLE}
    plain = {k: v for k, v in values.items() if k not in secret_names}
    return plain, {k: v for k, v in values.items() if k in secret_names}


class ChunkWriter:
    """Collects rows into chunks of ``size`` and saves them a few chunks per transaction."""

    def __init__(self, job: ImportJob, importer: Importer, size: int) -> None:
        self.job, self.importer, self.size = job, importer, size
        self.rows = 0
        self._chunks = 0
        self._open: list[RawRow] = []
        self._ready: list[ImportChunk] = []

    def add(self, batch: Iterable[RawRow]) -> None:
        for number, values in batch:
            self._open.append((number, values))
            if len(self._open) >= self.size:
                self._close_chunk()
        if len(self._ready) >= CHUNKS_PER_TRANSACTION:
            self._save()

    def finish(self) -> int:
        if self._open:
            self._close_chunk()
        self._save()
        return self.rows

    def _close_chunk(self) -> None:
        rows, secrets = [], {}
        for number, values in self._open:
            plain, secret = split_secret(self.importer, values)
            rows.append([number, plain])
            secrets[number] = secret
        self._chunks += 1
        self.rows += len(rows)
        self._ready.append(
            ImportChunk(
                job=self.job, number=self._chunks, size=len(rows), rows=rows, secret=crypto.seal_rows(secrets)
            )
        )
        self._open = []

    def _save(self) -> None:
        if self._ready:
            with write_turn(), transaction.atomic():
                ImportChunk.objects.bulk_create(self._ready)
            self._ready = []


def chunk_size() -> int:
    return max(1, int(conf.get("CHUNK_SIZE")))


def create_job(
    path: Path,
    name: str,
    *,
    importer_path: str | None = None,
    user: Any = None,
    options: dict[str, Any] | None = None,
    workers: int | None = None,
    threads: int | None = None,
    size: int | None = None,
) -> tuple[ImportJob | None, Report]:
    """Validate the file again and save a job holding its valid rows, in chunks of ``size``.

    ``user`` is the person starting it; None means the command line, with all rights.
    Validation runs again because the database may have changed since staff read the report;
    rows that turned invalid are left out, exactly as the report would now say. No job is
    kept (``None``) when the file is unreadable or has no valid row.
    """
    options = dict(options or {})
    importer_cls = get_importer_class(importer_path)
    importer = importer_cls(starter_context(user, options))
    with write_turn():
        job = ImportJob.objects.create(
            importer=importer_cls.dotted_path(),
            source_name=display_name(name),
            options=options,
            created_by=user if getattr(user, "pk", None) else None,
            started_via=StartedVia.COMMAND_LINE if user is None else StartedVia.PERSON,
            workers=workers,
            threads=threads,
            status=JobStatus.PREPARING,
        )
    writer = ChunkWriter(job, importer, size or chunk_size())
    try:
        report = validate_file(path, name, importer, on_valid=writer.add)
        total = writer.finish()
    except BaseException:
        delete_job(job)
        raise
    if report.file_error or total == 0:
        delete_job(job)
        return None, report
    with write_turn():
        ImportJob.objects.filter(pk=job.pk).update(total=total, status=JobStatus.VALIDATED)
    job.refresh_from_db()
    return job, report


def rerun_failed(job: ImportJob, *, user: Any = None) -> ImportJob:
    """A new job, linked to ``job``, holding copies of its failed rows as corrected.

    A person's rerun runs with that person's rights; one from the command line (no ``user``)
    keeps the rights of whoever started ``job``.
    """
    with write_turn():
        rerun = ImportJob.objects.create(
            importer=job.importer,
            source_name=job.source_name,
            options=dict(job.options),
            created_by=user if user is not None else job.created_by,
            started_via=StartedVia.PERSON if user is not None else job.started_via,
            parent=job,
            workers=job.workers,
            threads=job.threads,
            status=JobStatus.PREPARING,
        )
    writer = ChunkWriter(rerun, get_importer_class(job.importer)(), chunk_size())
    writer.add(_failed_rows(job))
    total = writer.finish()
    with write_turn():
        ImportJob.objects.filter(pk=rerun.pk).update(total=total, status=JobStatus.VALIDATED)
    rerun.refresh_from_db()
    return rerun


def _failed_rows(job: ImportJob) -> Iterator[RawRow]:
    # Plain tuples: model instances from a related manager's iterator() with only() reload
    # their job_id, one query per row.
    rows = job.rows.failed().order_by("number").values_list("number", "values", "secret")
    for number, values, secret in rows.iterator(chunk_size=CHUNKS_PER_TRANSACTION * 100):
        try:
            secrets = crypto.unseal(secret)
        except crypto.SecretUnreadable:
            secrets = {crypto.UNREADABLE: "1"}  # the rerun's worker fails the row, saying why
        yield number, {**values, **secrets}


def delete_job(job: ImportJob) -> None:
    """Delete a job in short transactions: its chunks and rows in batches, then the job.

    A million-row job's chunks are never loaded, and on SQLite the write lock is never held
    long, so the site goes on while it is deleted.
    """
    for model in (ImportChunk, job.rows.model):
        while True:
            with write_turn(), transaction.atomic():
                ids = list(model.objects.filter(job=job).values_list("pk", flat=True)[:1000])
                if not ids:
                    break
                model.objects.filter(pk__in=ids).delete()
    with write_turn():
        ImportJob.objects.filter(pk=job.pk).delete()
