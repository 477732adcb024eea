"""The measurements beside the table: memory of a large job, validation speed, the admin's
confirm, and the failed-row downloads."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

INSERT_BATCH = 5000


def phase(name: str) -> None:
    """Tell the parent a new phase starts: it keeps a peak of memory per phase."""
    sys.stdout.write(f"BENCH-PHASE {name}\n")
    sys.stdout.flush()


def run_memory(rows: int, workers: int) -> dict[str, Any]:
    """A job of ``rows`` rows saved directly in chunks (no validation), then only the runner, timed."""
    from bench.contenders import reset_database
    from bulkadmin.conf import chunk_size
    from bulkadmin.engine import JobRunner
    from bulkadmin.importers.users import UserImporter
    from bulkadmin.jobs import ChunkWriter
    from bulkadmin.models import ImportJob, JobStatus
    from bulkadmin.parsing import RawRow
    from mysite.sampledata import user_rows

    reset_database()
    started = time.perf_counter()
    job = ImportJob.objects.create(
        importer=UserImporter.dotted_path(), source_name=f"memory-{rows}.csv", status=JobStatus.PREPARING
    )
    writer = ChunkWriter(job, UserImporter(), chunk_size())
    batch: list[RawRow] = []
    for number, values in enumerate(user_rows(rows, prefix="mem"), start=2):
        batch.append(RawRow(number, {k: v for k, v in values.items() if k != "password"}, {}))
        if len(batch) >= INSERT_BATCH:
            writer.add(batch)
            batch = []
    writer.add(batch)
    ImportJob.objects.filter(pk=job.pk).update(total=writer.finish(), status=JobStatus.VALIDATED)
    inserted = time.perf_counter()
    phase("run")
    job = JobRunner(job.pk, workers=workers).run()
    finished = time.perf_counter()
    if job.succeeded != rows:
        raise RuntimeError(f"memory job: {job.succeeded} of {rows} succeeded; {job.error}")
    return {"timings": {"insert": inserted - started, "run": finished - inserted}}


def run_validation(path: Path) -> dict[str, Any]:
    from bench.contenders import reset_database
    from bulkadmin.importers.base import ImportContext
    from bulkadmin.importers.users import UserImporter
    from bulkadmin.validation import validate_file

    reset_database()
    importer = UserImporter(ImportContext.for_command_line({}))
    phase("run")
    started = time.perf_counter()
    report = validate_file(path, path.name, importer)
    elapsed = time.perf_counter() - started
    if report.file_error or report.invalid:
        raise RuntimeError(f"validation: {report.file_error or report.errors[:3]}")
    return {"timings": {"run": elapsed}, "valid": report.valid}


def run_confirm(path: Path) -> dict[str, Any]:
    """The admin's confirm (``confirm_upload``), then its runner reading the rows in
    (``prepare_job``), while another connection keeps writing.

    Reports each one's time and the longest any of those outside writes waited: on SQLite, how
    long they held the write lock at a time.
    """
    import shutil
    import threading

    from django.contrib.auth import get_user_model
    from django.db import connection

    from bench.contenders import reset_database
    from bulkadmin import uploads
    from bulkadmin.jobs import confirm_upload, prepare_job

    reset_database()
    user_model = get_user_model()
    outsider = user_model.objects.create_user("outside-writer")
    staff = user_model.objects.create_superuser("staff")
    table = connection.ops.quote_name(user_model._meta.db_table)
    placeholder = "?" if connection.vendor == "sqlite" else "%s"
    sql = f"UPDATE {table} SET last_login = CURRENT_TIMESTAMP WHERE id = {placeholder}"
    waits: list[float] = []
    done = threading.Event()

    def write_repeatedly() -> None:
        params = connection.get_connection_params()  # this thread's connection wrapper
        if connection.vendor == "sqlite":
            params["timeout"] = 120
            params.pop("transaction_mode", None)
        raw = connection.get_new_connection(params)
        try:
            while not done.is_set():
                started = time.perf_counter()
                raw.cursor().execute(sql, [outsider.pk])
                raw.commit()
                waits.append(time.perf_counter() - started)
                time.sleep(0.02)
        finally:
            raw.close()
            connection.close()

    upload_id = uploads.save_chunks([], owner=staff.pk)
    shutil.copyfile(path, uploads.path_for(upload_id, staff.pk))  # what the upload request left
    pending = uploads.PendingUpload(
        upload_id=upload_id, name=path.name, importer=_users_importer(), owner=str(staff.pk)
    )
    writer = threading.Thread(target=write_repeatedly)
    writer.start()
    phase("run")
    started = time.perf_counter()
    job, _created = confirm_upload(pending, staff)
    confirmed = time.perf_counter() - started
    report = prepare_job(job)
    elapsed = time.perf_counter() - started
    done.set()
    writer.join()
    job.refresh_from_db()
    if report.file_error or report.invalid:
        raise RuntimeError(f"confirm: {report.file_error or report.errors[:3]}")
    return {
        "timings": {"run": elapsed, "confirm": confirmed, "reading": elapsed - confirmed},
        "rows": job.total,
        "longest_outside_wait": max(waits, default=0.0),
    }


def run_export(rows: int) -> dict[str, Any]:
    """A finished job whose ``rows`` rows all failed, then its failed-row downloads as a
    superuser's browser asks for them (the admin's view through the test client), CSV and then
    XLSX, each read to its last byte. Each is its own phase, for its peak memory."""
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from bench.contenders import reset_database
    from bulkadmin.importers.users import UserImporter
    from bulkadmin.models import ImportJob, ImportRow, JobStatus
    from mysite.sampledata import user_rows

    reset_database()
    staff = get_user_model().objects.create_superuser("export-staff")
    job = ImportJob.objects.create(
        importer=UserImporter.dotted_path(),
        source_name=f"export-{rows}.csv",
        status=JobStatus.SUCCEEDED,
        created_by=staff,
        total=rows,
        processed=rows,
        failed=rows,
        finished_at=timezone.now(),
    )
    errors = {"email": ["Enter a valid email address. Found “x”."]}
    batch: list[ImportRow] = []
    for number, values in enumerate(user_rows(rows, prefix="exp"), start=2):
        values = {k: v for k, v in values.items() if k != "password"}
        batch.append(ImportRow(job=job, number=number, values=values, errors=errors))
        if len(batch) >= INSERT_BATCH:
            ImportRow.objects.bulk_create(batch)
            batch = []
    ImportRow.objects.bulk_create(batch)
    client = Client()
    client.force_login(staff)
    timings: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for file_format in ("csv", "xlsx"):
        phase(file_format)
        started = time.perf_counter()
        response = client.get(reverse("admin:bulkadmin_importjob_download", args=(job.pk, file_format)))
        parts: Iterable[bytes] = getattr(response, "streaming_content")  # noqa: B009 - untyped
        size = 0
        for part in parts:  # read as a browser does, never held whole
            size += len(part)
        response.close()
        timings[file_format] = time.perf_counter() - started
        if response.status_code != 200 or size == 0:
            raise RuntimeError(f"export {file_format}: status {response.status_code}, {size} bytes")
        sizes[file_format] = size
    return {"timings": timings, "bytes": sizes}


def _users_importer() -> str:
    from bulkadmin.importers.users import UserImporter

    return UserImporter.dotted_path()
