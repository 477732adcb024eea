"""No plaintext password at rest: after an import through the real detached runner, read every
place one could surface (database, job log, job page, failed-row page, downloads) and find none.
"""

from __future__ import annotations

import time

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection

from bulkadmin import launch
from bulkadmin.jobs import create_job
from bulkadmin.models import ImportJob, ImportRow
from tests.test_admin_support import *  # noqa: F403  (the shared fixtures)
from tests.test_admin_support import url

pytestmark = pytest.mark.django_db(transaction=True)

SECRETS = ["Plain-Text-Pass-Alpha-1", "Plain-Text-Pass-Bravo-2", "Plain-Text-Pass-Boom-3"]


def all_database_text() -> str:
    """Every text value of every table the project writes, as one string."""
    chunks: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def test_no_plaintext_password_anywhere_after_an_import(write_file, staff_client, importer_user):
    path = write_file(
        "p.csv",
        "username,password\n"
        f"alpha,{SECRETS[0]}\n"
        f"bravo,{SECRETS[1]}\n"
        f"boom,{SECRETS[2]}\n",  # rejected at save time by the test receiver: a failed row
    )
    job, _ = create_job(path, path.name, user=importer_user)
    assert job is not None
    assert launch.launch_job(job)  # the real detached runner, with its log file
    deadline = time.monotonic() + 60
    while not ImportJob.objects.get(pk=job.pk).is_final and time.monotonic() < deadline:
        time.sleep(0.1)
    job.refresh_from_db()
    assert (job.succeeded, job.failed) == (2, 1), job.error

    failed = ImportRow.objects.get(job=job, status="failed")

    def page(name, *args):
        response = staff_client.get(url(name, *args))
        assert response.status_code == 200, (name, args)
        return response.getvalue().decode(errors="replace")

    places = {
        "database": all_database_text(),
        "job log": launch.log_path(job).read_text(errors="replace"),
        "job page": page("change", job.pk),
        "failed row page": page("row", job.pk, failed.pk),
        "CSV download": page("download", job.pk, "csv"),
        "XLSX download": page("download", job.pk, "xlsx"),
        "admin log": repr(list(LogEntry.objects.values_list("change_message", flat=True))),
    }
    for where, text in places.items():
        for secret in SECRETS:
            assert secret not in text, f"a plaintext password is readable in the {where}"
    # and the failed row still holds its password, encrypted, for a rerun
    assert failed.secret and SECRETS[2] not in failed.secret
