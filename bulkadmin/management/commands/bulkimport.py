"""``manage.py bulkimport FILE``: validate, then import in the foreground with a progress bar."""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

from bulkadmin import columns
from bulkadmin.executors import warm_up
from bulkadmin.importers.registry import get_importer_class
from bulkadmin.jobs import create_job, delete_job
from bulkadmin.launch import get_launcher, runs_in_foreground
from bulkadmin.management.commands._running import JobCommand, add_run_arguments, run_or_follow
from bulkadmin.validation import Report

ERRORS_SHOWN = 200


class Command(JobCommand):
    help = (
        "Import a CSV, TSV, XLSX or JSON file. Every row is validated first; with any invalid "
        "row nothing is imported (exit 2) unless --skip-invalid. Exits 0 when every row "
        "succeeded, 1 when some failed."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("file", type=Path)
        add_run_arguments(parser)
        parser.add_argument("--importer", help="Dotted path of an importer from BULKADMIN['IMPORTERS'].")
        parser.add_argument(
            "--update-existing",
            action="store_true",
            help="Update objects that already exist instead of rejecting their rows.",
        )
        parser.add_argument(
            "--skip-invalid", action="store_true", help="Import the valid rows even if some are invalid."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="'FILE COLUMN=column'",
            help="Read a column of the file as one of the importer's (repeatable).",
        )
        parser.add_argument(
            "--ignore", action="append", default=[], metavar="COLUMN", help="Skip a column of the file."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"No such file: {path}", returncode=2)
        try:
            importer_cls = get_importer_class(options["importer"])
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc), returncode=2) from exc
        job_options = {"update_existing": options["update_existing"]}
        try:
            mapping = columns.from_command_line(options["map"], options["ignore"])
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        launcher = get_launcher()
        if runs_in_foreground(launcher) and (options["workers"] or 2) > 1:
            warm_up()  # the pool's forkserver sets Django up while the file is validated

        # One pass: the file is validated while its valid rows are saved; a job with invalid
        # rows is deleted again unless --skip-invalid, so a bad file leaves nothing behind.
        job, report = create_job(
            path,
            path.name,
            importer_path=importer_cls.dotted_path(),
            options=job_options,
            workers=options["workers"],
            threads=options["threads"],
            size=options["chunk_size"],
            mapping=mapping or None,
        )
        self._print_report(report)
        if report.header_mismatch:
            known = ", ".join(importer_cls.column_names())
            self.stderr.write(
                "Map the file's columns to the importer's with --map 'FILE COLUMN=column', or skip "
                f"them with --ignore COLUMN. The importer's columns: {known}."
            )
        if job is None:
            raise CommandError("Nothing imported.", returncode=2)
        if report.invalid and not options["skip_invalid"]:
            delete_job(job)
            raise CommandError(
                f"{report.invalid:,} of {report.total:,} rows are invalid; nothing imported. "
                "Fix them, or pass --skip-invalid to import the valid rows.",
                returncode=2,
            )
        self.stdout.write(f"Job {job.pk}: {job.total:,} rows to import.")
        progress = not options["no_progress"] and options.get("verbosity", 1) > 0
        code = run_or_follow(self, job, options, progress=progress)
        if code:
            sys.exit(code)

    def _print_report(self, report: Report) -> None:
        if report.file_error:
            self.stderr.write(f"{report.file_error}")
            return
        if report.encoding:
            self.stderr.write(f"The file is not UTF-8: it was read as {report.encoding}.")
        for error in report.errors[:ERRORS_SHOWN]:
            self.stderr.write(str(error))
        if report.error_count > ERRORS_SHOWN:
            self.stderr.write(f"… and {report.error_count - ERRORS_SHOWN:,} more errors.")
        self.stdout.write(f"{report.total:,} rows read: {report.valid:,} valid, {report.invalid:,} invalid.")
