"""``manage.py revertjob JOB_ID``: undo a finished job, in the foreground with a progress bar."""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import CommandError

from bulkadmin.management.commands._running import JobCommand, add_run_arguments, exit_code, run_or_follow
from bulkadmin.models import ImportJob
from bulkadmin.reverts import NotRevertible, plan, start_revert


class Command(JobCommand):
    help = (
        "Revert a finished import or bulk change: delete the objects it created (through "
        "delete()) and give the objects it changed their earlier values (through save()), "
        "leaving any changed since. Exits 0 when everything was reverted, 1 when some objects "
        "could not be, 2 when the job cannot be reverted."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("job_id", type=int)
        add_run_arguments(parser)
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        job = ImportJob.objects.filter(pk=options["job_id"]).first()
        if job is None:
            raise CommandError(f"There is no import job {options['job_id']}.", returncode=2)
        what = plan(job) if job.records_undo else None
        try:
            revert, created = start_revert(job)
        except NotRevertible as exc:
            raise CommandError(f"Job {job.pk}: {exc}", returncode=2) from exc
        if not created and revert.is_final:
            self.stdout.write(f"Job {job.pk} was reverted already, by job {revert.pk}.")
            code = exit_code(revert)
        else:
            if what is not None and created:
                self.stdout.write(
                    f"Job {revert.pk} reverts job {job.pk}: {what.deletes:,} objects to delete, "
                    f"{what.restores:,} to restore."
                )
                if what.unrecorded:
                    self.stderr.write(f"{what.unrecorded:,} changes were not recorded and stay as they are.")
            else:
                self.stdout.write(f"Resuming job {revert.pk}, which reverts job {job.pk}.")
            progress = not options["no_progress"] and options.get("verbosity", 1) > 0
            code = run_or_follow(self, revert, options, progress=progress)
        if code:
            sys.exit(code)
