"""The two measurements beside the table: memory of a large job, and validation speed."""

from __future__ import annotations

import sys
import time
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
    from bulkadmin.engine import JobRunner
    from bulkadmin.importers.users import UserImporter
    from bulkadmin.jobs import ChunkWriter, chunk_size
    from bulkadmin.models import ImportJob, JobStatus
    from mysite.sampledata import user_rows

    reset_database()
    started = time.perf_counter()
    job = ImportJob.objects.create(
        importer=UserImporter.dotted_path(), source_name=f"memory-{rows}.csv", status=JobStatus.PREPARING
    )
    writer = ChunkWriter(job, UserImporter(), chunk_size())
    batch: list[tuple[int, dict[str, str]]] = []
    for number, values in enumerate(user_rows(rows, prefix="mem"), start=2):
        batch.append((number, {k: v for k, v in values.items() if k != "password"}))
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
    """``create_job`` on a file (the admin's confirm) while another connection keeps writing.

    Reports the confirm's time and the longest any of those outside writes waited: on SQLite,
    how long the confirm held the write lock at a time.
    """
    import threading

    from django.contrib.auth import get_user_model
    from django.db import connection

    from bench.contenders import reset_database
    from bulkadmin.jobs import create_job

    reset_database()
    user_model = get_user_model()
    outsider = user_model.objects.create_user("outside-writer")
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

    writer = threading.Thread(target=write_repeatedly)
    writer.start()
    phase("run")
    started = time.perf_counter()
    job, report = create_job(path, path.name)
    elapsed = time.perf_counter() - started
    done.set()
    writer.join()
    if job is None or report.invalid:
        raise RuntimeError(f"confirm: {report.file_error or report.errors[:3]}")
    return {"timings": {"run": elapsed}, "rows": job.total, "longest_outside_wait": max(waits, default=0.0)}
