"""Creating a job from a file, and a rerun from a job's failed rows.

Rows are stored a chunk at a time, each batch in a short transaction of its own: a
million-row file never holds SQLite's write lock for more than a moment, and the rest of the
site goes on writing. ``bulkimport`` stores them before it starts the job (``create_job``),
holding it ``preparing`` meanwhile. The admin's confirm stores nothing: it creates the job
around the upload (``confirm_upload``, once per upload however often it is posted), and the
runner reads the rows in (``prepare_job``), keeping each invalid row as a failed row to correct.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PureWindowsPath
from typing import Any, TypeVar

from django.db import IntegrityError, transaction
from django.db.models import F

from bulkadmin import columns, conf, crypto, fixit, uploads
from bulkadmin.importers.base import ImportContext, Importer
from bulkadmin.importers.registry import get_importer_class
from bulkadmin.keyset import in_batches
from bulkadmin.models import ImportChunk, ImportJob, ImportRow, JobKind, JobStatus, StartedVia
from bulkadmin.parsing import ColumnMap, RawRow
from bulkadmin.validation import Report, validate_file
from bulkadmin.vendors import write_turn

T = TypeVar("T")

#: Rows saved per transaction while a job is created (in whole chunks, at least one).
ROWS_PER_TRANSACTION = 2000


def context_for(job: ImportJob) -> ImportContext:
    """The same context in the worker as in the request that validated the rows."""
    if job.started_via == StartedVia.COMMAND_LINE:
        context = ImportContext.for_command_line(job.options)
    else:
        context = ImportContext.for_person(job.created_by, job.options)
    context.site_url = job.link_base()
    context.job_id = job.pk
    return context


def starter_context(user: Any, options: dict[str, Any]) -> ImportContext:
    """The context of a job about to be started by ``user``, or (None) by the command line."""
    if user is None:
        return ImportContext.for_command_line(options)
    return ImportContext.for_person(user, options)


def importer_for(job: ImportJob) -> Importer:
    """What runs the job's rows: its importer, wrapped by what the job does with it."""
    importer = get_importer_class(job.importer)(context_for(job))
    if job.kind == JobKind.REVERT:
        from bulkadmin.importers.revert import RevertImporter

        return RevertImporter(importer)
    if job.kind == JobKind.CHANGE:
        from bulkadmin.importers.change import ChangeImporter

        return ChangeImporter(importer)
    return importer


def row_columns(job: ImportJob, importer_cls: type[Importer] | None) -> list[str]:
    """The columns a job's rows hold, as its failed rows show them (secrets left out)."""
    if job.kind == JobKind.REVERT:
        from bulkadmin.importers.revert import RevertImporter

        return RevertImporter.column_names()
    if importer_cls is None:
        return []
    if job.kind == JobKind.CHANGE:
        from bulkadmin.importers.change import ChangeImporter

        return ChangeImporter.columns_for(importer_cls)
    secret = importer_cls.secret_columns()
    return [c for c in importer_cls.column_names() if c not in secret]


def display_name(name: str) -> str:
    """The client's file name, for display only: its last component, from any OS."""
    return PureWindowsPath(name).name[:255] or "upload"


def split_secret(importer: Importer, values: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """A row's plain values and its secret columns."""
    secret_names = importer.secret_columns() | {crypto.UNREADABLE}
    plain = {k: v for k, v in values.items() if k not in secret_names}
    return plain, {k: v for k, v in values.items() if k in secret_names}


class PreparationFailed(Exception):
    """The job's rows could not be read: the upload is gone or no longer parses."""


class ChunkWriter:
    """Collects rows into chunks of ``size`` and saves them a few chunks per transaction.

    Invalid rows given to ``add_invalid`` are saved with them as failed rows. The job's
    counters grow in the same transactions, so its page shows how far the reading got.
    ``after_save`` runs after each transaction (a runner checks there for a cancel).

    A row from a fix-it file names the failed row it came from: it gets that row's sealed
    secrets back (unless it gives new ones), and that row is marked as taken by this job, in
    the same transaction. Only from jobs of the same importer that this job's starter started
    (any, for a superuser or the command line): a file cannot borrow another person's rows.
    """

    def __init__(
        self,
        job: ImportJob,
        importer: Importer,
        size: int,
        after_save: Callable[[], None] | None = None,
    ) -> None:
        self.job, self.importer, self.size = job, importer, size
        self.after_save = after_save
        self.rows = 0
        self._chunks = 0
        self._open: list[RawRow] = []
        self._ready: list[ImportChunk] = []
        self._invalid: list[RawRow] = []
        self._sources: list[fixit.Source] = []
        self._lenders: dict[int, bool] = {}

    def add(self, batch: Iterable[RawRow]) -> None:
        for row in self._with_secrets(list(batch)):
            self._open.append(row)
            if len(self._open) >= self.size:
                self._close_chunk()
        if sum(chunk.size for chunk in self._ready) >= ROWS_PER_TRANSACTION:
            self._save()

    def add_invalid(self, row: RawRow) -> None:
        self._invalid.append(row)
        self.rows += 1
        if len(self._invalid) >= ROWS_PER_TRANSACTION:
            self._save()

    def finish(self) -> int:
        if self._open:
            self._close_chunk()
        self._save()
        return self.rows

    def _close_chunk(self) -> None:
        rows, secrets = [], {}
        for row in self._open:
            plain, secret = split_secret(self.importer, row.values)
            rows.append([row.number, plain])
            secrets[row.number] = secret
            if row.source is not None:
                self._sources.append(row.source)
        self._chunks += 1
        self.rows += len(rows)
        self._ready.append(
            ImportChunk(
                job=self.job, number=self._chunks, size=len(rows), rows=rows, secret=crypto.seal_rows(secrets)
            )
        )
        self._open = []

    def _failed_row(self, row: RawRow) -> ImportRow:
        plain, secret = split_secret(self.importer, row.values)
        sealed = crypto.seal(secret) if any(secret.values()) and crypto.UNREADABLE not in secret else ""
        if row.source is not None:
            self._sources.append(row.source)
        return ImportRow(job=self.job, number=row.number, values=plain, secret=sealed, errors=row.errors)

    def _save(self) -> None:
        if not self._ready and not self._invalid:
            return
        failed = [self._failed_row(row) for row in self._with_secrets(self._invalid)]
        valid = sum(chunk.size for chunk in self._ready)
        with write_turn(), transaction.atomic():
            ImportChunk.objects.bulk_create(self._ready)
            ImportRow.objects.bulk_create(failed)
            self._take_sources()
            ImportJob.objects.filter(pk=self.job.pk).update(
                total=F("total") + valid + len(failed),
                processed=F("processed") + len(failed),
                failed=F("failed") + len(failed),
            )
        self._ready, self._invalid, self._sources = [], [], []
        if self.after_save is not None:
            self.after_save()

    # ---- rows from a fix-it file ---------------------------------------------------------
    def _may_borrow_from(self, job_id: int) -> bool:
        if job_id not in self._lenders:
            other = ImportJob.objects.filter(pk=job_id).values_list("importer", "created_by_id").first()
            starter = self.job.created_by
            self._lenders[job_id] = (
                other is not None
                and job_id != self.job.pk
                and other[0] == self.job.importer
                and (
                    self.job.started_via == StartedVia.COMMAND_LINE
                    or (starter is not None and (starter.is_superuser or other[1] == starter.pk))
                )
            )
        return self._lenders[job_id]

    def _with_secrets(self, rows: list[RawRow]) -> list[RawRow]:
        """Rows of a fix-it file that give no secret get their failed row's back."""
        secret_names = self.importer.secret_columns()
        wanted: dict[int, set[int]] = {}
        for row in rows:
            if row.source and not any(row.values.get(name) for name in secret_names):
                wanted.setdefault(row.source.job_id, set()).add(row.source.number)
        sealed: dict[fixit.Source, str] = {}
        for job_id, numbers in wanted.items():
            if self._may_borrow_from(job_id):
                found = ImportRow.objects.filter(job_id=job_id, number__in=numbers).values_list(
                    "number", "secret"
                )
                sealed.update({fixit.Source(job_id, number): secret for number, secret in found if secret})
        if not sealed:
            return rows
        carried = []
        for row in rows:
            if row.source in sealed:
                row = row._replace(values={**row.values, **crypto.unseal_for_import(sealed[row.source])})
            carried.append(row)
        return carried

    def _take_sources(self) -> None:
        """The failed rows these rows came from now show this job as where they went."""
        by_job: dict[int, list[int]] = {}
        for source in self._sources:
            by_job.setdefault(source.job_id, []).append(source.number)
        for job_id, numbers in by_job.items():
            if self._may_borrow_from(job_id):
                ImportRow.objects.filter(job_id=job_id, number__in=numbers, rerun__isnull=True).update(
                    rerun=self.job
                )


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
    mapping: ColumnMap | None = None,
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
            column_map=mapping or {},
        )
    writer = ChunkWriter(job, importer, size or conf.chunk_size())
    try:
        report = validate_file(path, name, importer, on_valid=writer.add, mapping=mapping)
        total = writer.finish()
    except BaseException:
        delete_job(job)
        raise
    if report.file_error or total == 0:
        delete_job(job)
        return None, report
    with write_turn():
        ImportJob.objects.filter(pk=job.pk).update(status=JobStatus.VALIDATED)
    job.refresh_from_db()
    return job, report


def confirm_upload(pending: uploads.PendingUpload, user: Any, site_url: str = "") -> tuple[ImportJob, bool]:
    """The job for a confirmed upload, created at most once: ``(job, created)``.

    Nothing is read here, so a million-row confirm answers at once: the job takes the file,
    and its runner reads the rows (``prepare_job``). A second confirm of the same upload, a
    double click or a replayed form, gets the first one's job. Raises ``UploadExpired`` when
    the file is gone and no job holds it.
    """
    existing = ImportJob.objects.filter(upload_id=pending.upload_id).first()
    if existing is not None:
        return existing, False
    try:
        with write_turn(), transaction.atomic():
            job = ImportJob.objects.create(
                importer=pending.importer,
                source_name=display_name(pending.name),
                options=dict(pending.options),
                created_by=user,
                started_via=StartedVia.PERSON,
                workers=pending.workers,
                upload_id=pending.upload_id,
                prepared=False,
                column_map=pending.mapping or {},
                reported_invalid=pending.invalid,
                site_url=site_url[:255],
            )
            if pending.mapping:  # its keys are the file's columns, in order
                columns.remember(job.importer, list(pending.mapping), pending.mapping, user)
            uploads.take(pending.upload_id, pending.owner)  # last: rolled back if the file is gone
    except IntegrityError:  # a concurrent confirm of the same upload won
        return ImportJob.objects.get(upload_id=pending.upload_id), False
    return job, True


def prepare_job(
    job: ImportJob, *, size: int | None = None, after_save: Callable[[], None] | None = None
) -> Report:
    """Read a confirmed upload into the job: valid rows into chunks, invalid ones into failed rows.

    Validated again, as the database may have changed since staff read the report; a row that
    turned invalid is kept as a failed row, to be seen, corrected and rerun. Run by the runner
    that claimed the job; an earlier runner that died part way left nothing imported, so the
    job starts over. The upload is deleted once the rows are in.
    """
    _clear_rows(job)
    path = uploads.confirmed_path(job.upload_id or "")
    if not job.upload_id or not path.is_file():
        raise PreparationFailed("The uploaded file is gone; upload it again.")
    importer = importer_for(job)
    writer = ChunkWriter(job, importer, size or conf.chunk_size(), after_save=after_save)
    report = validate_file(
        path,
        job.source_name,
        importer,
        on_valid=writer.add,
        on_invalid=writer.add_invalid,
        mapping=job.column_map or None,
    )
    if report.file_error:
        raise PreparationFailed(report.file_error)
    writer.finish()
    with write_turn():
        ImportJob.objects.filter(pk=job.pk).update(prepared=True, read_invalid=report.invalid)
    uploads.discard_confirmed(job.upload_id)
    return report


def _clear_rows(job: ImportJob) -> None:
    _delete_rows(job)
    with write_turn():
        ImportJob.objects.filter(pk=job.pk).update(total=0, processed=0, succeeded=0, failed=0)


def rerun_failed(
    job: ImportJob,
    *,
    user: Any = None,
    corrected_only: bool = False,
    options: dict[str, Any] | None = None,
    site_url: str = "",
) -> ImportJob | None:
    """A new job, linked to ``job``, holding copies of its open failed rows (or only the corrected).

    The rows it takes leave their job's offer (``ImportRow.rerun``), so a second click or a
    second rerun never imports a row twice; None when there was nothing left to take. A
    person's rerun runs with that person's rights; one from the command line (no ``user``)
    keeps the rights of whoever started ``job``. ``options`` override the job's (a rerun may
    switch on updating existing objects).
    """
    with write_turn():
        rerun = ImportJob.objects.create(
            importer=job.importer,
            kind=job.kind,
            reverts=job.reverts,
            records_undo=job.records_undo,
            source_name=job.source_name,
            options={**job.options, **(options or {})},
            created_by=user if user is not None else job.created_by,
            started_via=StartedVia.PERSON if user is not None else job.started_via,
            parent=job,
            workers=job.workers,
            threads=job.threads,
            status=JobStatus.PREPARING,
            site_url=site_url[:255] or job.site_url,
        )
    offered = job.rows.corrected() if corrected_only else job.rows.open()
    while True:  # in batches: a short write lock each on SQLite
        with write_turn(), transaction.atomic():
            ids = list(offered.order_by("number").values_list("pk", flat=True)[:TAKE_BATCH])
            if not ids:
                break
            ImportRow.objects.filter(pk__in=ids, rerun__isnull=True).update(rerun=rerun)
    return fill_job(rerun, get_importer_class(job.importer)(), batched(_taken_rows(rerun)))


def fill_job(
    job: ImportJob, importer: Importer, batches: Iterable[Iterable[RawRow]], size: int | None = None
) -> ImportJob | None:
    """Save rows, a batch at a time, into a job created ``preparing`` (a rerun, a bulk change,
    a revert), then let it start; with no rows at all the job is deleted (None)."""
    writer = ChunkWriter(job, importer, size or conf.chunk_size())
    try:
        for batch in batches:
            writer.add(batch)
        total = writer.finish()
    except BaseException:
        delete_job(job)
        raise
    if not total:
        delete_job(job)
        return None
    with write_turn():
        ImportJob.objects.filter(pk=job.pk).update(status=JobStatus.VALIDATED)
    job.refresh_from_db()
    return job


#: Rows handed to a ``ChunkWriter`` at a time: memory stays flat however many there are.
BATCH = 2000


def batched(items: Iterable[T], size: int = BATCH) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


#: Failed rows a rerun takes per transaction.
TAKE_BATCH = 2000


def _taken_rows(rerun: ImportJob) -> Iterator[RawRow]:
    # Plain tuples: model instances from a related manager's iterator() with only() reload
    # their job_id, one query per row. By the job they failed in too: its rows' numbers are
    # unique, and indexed for reading them by key.
    rows = ImportRow.objects.filter(job=rerun.parent_id, rerun=rerun).values_list(
        "number", "values", "secret"
    )
    for number, values, secret in in_batches(rows, "number", ROWS_PER_TRANSACTION):
        yield RawRow(number, {**values, **crypto.unseal_for_import(secret)}, {})


def delete_job(job: ImportJob) -> None:
    """Delete a job in short transactions: its chunks and rows in batches, then the job.

    A million-row job's chunks are never loaded, and on SQLite the write lock is never held
    long, so the site goes on while it is deleted.
    """
    _delete_rows(job)
    with write_turn():
        ImportJob.objects.filter(pk=job.pk).delete()
    if job.upload_id:
        uploads.discard_confirmed(job.upload_id)


def _delete_rows(job: ImportJob) -> None:
    for model in (ImportChunk, ImportRow):
        while True:
            with write_turn(), transaction.atomic():
                ids = list(model.objects.filter(job=job).values_list("pk", flat=True)[:1000])
                if not ids:
                    break
                model.objects.filter(pk__in=ids).delete()
