"""What ``bulkimport`` and ``runbulkjob`` share: options, the tqdm bar, the summary."""

from __future__ import annotations

import sys
import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from bulkadmin.bootstrap import freeze_what_lives_on
from bulkadmin.engine import JobNotRunnable, JobRunner
from bulkadmin.models import ImportJob, JobStatus
from bulkadmin.tuning import Step
from bulkadmin.vendors import CONNECTION_ERRORS

FAILED_ROWS_SHOWN = 20
FOLLOW_POLL_SECONDS = 0.5


class JobCommand(BaseCommand):
    """A command that runs a job. From the command line, it freezes what Django's setup made
    (``bootstrap.freeze_what_lives_on``): besides the job's full collections, the interpreter's
    teardown after a 10,000-row ``bulkimport`` then took 15 ms instead of 116 ms (strace, from
    restoring SIGINT to ``exit_group``). ``call_command`` (tests, scripts) freezes nothing."""

    def run_from_argv(self, argv: list[str]) -> None:
        freeze_what_lives_on()  # Django is set up: what it made lives as long as the command
        super().run_from_argv(argv)


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


def add_run_arguments(parser: ArgumentParser) -> None:
    parser.add_argument(
        "--workers", type=positive_int, help="Worker processes (default: one per core; 1 runs in-process)."
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        help=(
            "Threads per worker, for rows that wait on I/O (default: picked from the first chunks; "
            "rows that keep the CPU busy get 1 either way)."
        ),
    )
    parser.add_argument("--chunk-size", type=positive_int, help="Rows per chunk (one transaction each).")


def progress_bar(job: ImportJob, enabled: bool) -> tqdm[Any]:
    """The tqdm bar on stderr, so stdout keeps only the summary for scripts."""
    return tqdm(
        total=job.total,
        initial=job.processed,
        unit="row",
        desc=f"Job {job.pk}",
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
    )


def run_job(command: BaseCommand, job_id: int, options: dict[str, Any], *, progress: bool) -> ImportJob:
    """Run the job in the foreground and print its summary."""
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is None:
        raise CommandError(f"There is no import job {job_id}.", returncode=2)
    bar = progress_bar(job, progress)
    started = time.monotonic()
    runner = JobRunner(
        job_id,
        workers=options.get("workers"),
        threads=options.get("threads"),
        chunk_size=options.get("chunk_size"),
        on_progress=lambda result: _advance(bar, result.processed),
        on_threads_picked=lambda step: _say_threads(command, step),
        handle_signals=True,
    )
    try:
        job = runner.run()
    except JobNotRunnable as exc:
        raise CommandError(str(exc), returncode=2) from exc
    except CONNECTION_ERRORS as exc:
        raise CommandError(
            f"Lost the database ({exc}). Job {job_id} shows as crashed once its heartbeat is stale; "
            f"resume it with `manage.py runbulkjob {job_id}` when the database is back.",
            returncode=3,
        ) from exc
    finally:
        bar.close()
    summarize(command, job, time.monotonic() - started)
    return job


def summarize(command: BaseCommand, job: ImportJob, elapsed: float) -> None:
    rate = (job.processed / elapsed) if elapsed else 0.0
    command.stdout.write(
        f"Job {job.pk} {job.get_status_display().lower()}: {job.succeeded:,} succeeded, "
        f"{job.failed:,} failed, {job.pending:,} pending of {job.total:,} rows "
        f"in {elapsed:.1f}s ({rate:,.0f} rows/s)."
    )
    if job.failed:
        for row in job.rows.failed().order_by("number")[:FAILED_ROWS_SHOWN]:
            command.stderr.write(f"  Row {row.number}: {row.error_text}")
        if job.failed > FAILED_ROWS_SHOWN:
            command.stderr.write(f"  … and {job.failed - FAILED_ROWS_SHOWN:,} more failed rows.")
    if job.error:
        command.stderr.write(job.error)


def _advance(bar: tqdm[Any], rows: int) -> None:
    bar.update(rows)


def _say_threads(command: BaseCommand, step: Step) -> None:
    with tqdm.external_write_mode(file=sys.stderr):  # above the bar, not through it
        command.stderr.write(f"Threads per worker: {step.threads} ({step.reason}).")


def follow_job(command: BaseCommand, job_id: int, *, progress: bool) -> ImportJob:
    """Show a job that workers elsewhere (Celery) run, until it ends."""
    job = ImportJob.objects.get(pk=job_id)
    bar = progress_bar(job, progress)
    started = time.monotonic()
    try:
        while not job.is_final and job.status != JobStatus.CRASHED:
            time.sleep(FOLLOW_POLL_SECONDS)
            job.refresh_from_db()
            job.settle_if_stale()
            bar.update(job.processed - bar.n)
    finally:
        bar.close()
    summarize(command, job, time.monotonic() - started)
    return job


def run_or_follow(command: BaseCommand, job: ImportJob, options: dict[str, Any], *, progress: bool) -> int:
    """Run a saved job in the foreground, or (Celery, Tasks) enqueue it and follow it; the
    command's exit code."""
    from bulkadmin.launch import get_launcher, launch_job, runs_in_foreground

    if runs_in_foreground(get_launcher()):
        job = run_job(command, job.pk, options, progress=progress)
    else:  # the job is committed: workers elsewhere may take it
        launch_job(job)
        job = follow_job(command, job.pk, progress=progress)
    return exit_code(job)


def exit_code(job: ImportJob) -> int:
    if job.status == JobStatus.SUCCEEDED:
        return 0
    if job.status == JobStatus.FINISHED_WITH_ERRORS:
        return 1
    return 3
