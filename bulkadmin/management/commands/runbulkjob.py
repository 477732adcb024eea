"""``manage.py runbulkjob JOB_ID``: run or resume a job's pending rows (what the admin launches)."""

from __future__ import annotations

import logging
import sys
from argparse import ArgumentParser
from typing import Any

from bulkadmin.management.commands._running import JobCommand, add_run_arguments, exit_code, run_job


class Command(JobCommand):
    help = "Run or resume an import job's pending rows. Exits 0 when all succeeded, 1 when some failed."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("job_id", type=int)
        add_run_arguments(parser)
        parser.add_argument("--progress", action="store_true", help="Show a progress bar on stderr.")

    def handle(self, *args: Any, **options: Any) -> None:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
        )
        job = run_job(self, options["job_id"], options, progress=options["progress"])
        code = exit_code(job)
        if code:
            sys.exit(code)
