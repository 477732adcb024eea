"""``keyset.in_batches``: a large result read with memory flat, on every database.

``QuerySet.iterator()`` holds a query's whole result in memory on MySQL and MariaDB (the
driver fetches it all), so there the failed-row download, a rerun's taking of rows and a
revert's reading of chunks read by key, one bounded query per batch; PostgreSQL and SQLite
stream one query.
"""

from __future__ import annotations

import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bulkadmin import exports, vendors
from bulkadmin.importers.users import UserImporter
from bulkadmin.keyset import in_batches
from bulkadmin.models import ImportJob, ImportRow

pytestmark = pytest.mark.django_db


def failed_rows(job: ImportJob, numbers: list[int]) -> None:
    ImportRow.objects.bulk_create(
        ImportRow(job=job, number=n, values={"username": f"u{n}"}, errors={"__all__": ["no"]})
        for n in numbers
    )


def row_queries(queries: CaptureQueriesContext) -> list[str]:
    table = connection.ops.quote_name(ImportRow._meta.db_table)
    return [q["sql"] for q in queries.captured_queries if table in q["sql"]]


def job_with_rows(count: int) -> tuple[ImportJob, list[int]]:
    job = ImportJob.objects.create(importer="bulkadmin.importers.users.UserImporter")
    other = ImportJob.objects.create(importer="bulkadmin.importers.users.UserImporter")
    numbers = random.Random(count).sample(range(2, 100), count)  # saved out of order
    failed_rows(job, numbers)
    failed_rows(other, [50, 51])
    return job, sorted(numbers)


@pytest.mark.parametrize(("rows", "size", "queries"), [(7, 3, 3), (6, 3, 3), (2, 3, 1), (0, 3, 1)])
def test_by_key_every_row_once_in_order_one_bounded_query_a_batch(rows, size, queries):
    job, numbers = job_with_rows(rows)
    found_rows = ImportRow.objects.filter(job=job).values_list("number", "values")
    with CaptureQueriesContext(connection) as captured:
        found = list(in_batches(found_rows, "number", size, by_key=True))
    assert found == [(n, {"username": f"u{n}"}) for n in numbers]
    sql = row_queries(captured)
    assert len(sql) == queries
    assert all(f"LIMIT {size}" in q for q in sql), sql  # never a whole result at once


def test_streamed_every_row_once_in_order_in_one_query():
    job, numbers = job_with_rows(7)
    found_rows = ImportRow.objects.filter(job=job).values_list("number", "values")
    with CaptureQueriesContext(connection) as captured:
        found = list(in_batches(found_rows, "number", 3, by_key=False))
    assert found == [(n, {"username": f"u{n}"}) for n in numbers]
    assert len(row_queries(captured)) == 1


def test_the_failed_rows_download_never_holds_all_its_rows_on_any_database(monkeypatch):
    """Before, on MariaDB: one query for the whole result per pass, all of it held by the
    driver (100,000 failed rows: 75 MiB at 10,000, 136 MiB at 100,000)."""
    monkeypatch.setattr(exports, "EXPORT_BATCH", 2)
    job = ImportJob.objects.create(importer="bulkadmin.importers.users.UserImporter")
    failed_rows(job, [9, 3, 7, 5, 11])
    with CaptureQueriesContext(connection) as captured:
        lines = b"".join(exports.failed_rows_csv(job, UserImporter())).decode().splitlines()
    assert lines[0] == "row,username,errors,job"
    assert lines[1:] == [f"{n},u{n},no,{job.pk}" for n in (3, 5, 7, 9, 11)]
    sql = row_queries(captured)
    if vendors.for_alias().streams_results:  # a server-side cursor, or SQLite stepping
        assert len(sql) == 2, sql  # one for each of the two passes
    else:
        assert connection.vendor == "mysql"
        assert len(sql) == 6 and all("LIMIT 2" in q for q in sql), sql  # 3 batches, for each pass
