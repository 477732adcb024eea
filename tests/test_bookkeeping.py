"""The bookkeeping statements a transaction of rows runs, written as SQL once, on every database."""

from __future__ import annotations

import pytest
from django.db import transaction

from bulkadmin.bookkeeping import ChunkState, add_progress, read_chunk, write_chunk
from bulkadmin.jobs import create_job
from bulkadmin.models import ChunkStatus, ImportChunk, ImportJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def chunk(write_file) -> ImportChunk:
    path = write_file("u.csv", "username,email\nann,ann@example.com\nbob,bob@example.com\n")
    job, report = create_job(path, path.name, size=10)
    assert job is not None, report.errors
    return ImportChunk.objects.get(job=job)


def test_what_is_written_reads_back_as_the_orm_reads_it(chunk):
    undo = {"2": {"before": {"email": None, "first_name": "Ann"}, "after": {"email": "a@b.c"}}}
    with transaction.atomic():
        assert read_chunk(chunk.pk) == ChunkState(2, [], {}, {})
        write_chunk(chunk.pk, status=ChunkStatus.PENDING, done_rows=[2], object_pks={"2": "7"}, undo=undo)
        assert read_chunk(chunk.pk) == ChunkState(2, [2], {"2": "7"}, undo)
    chunk.refresh_from_db()
    assert (chunk.done_rows, chunk.object_pks, chunk.undo, chunk.status) == ([2], {"2": "7"}, undo, "pending")
    assert [number for number, _values in chunk.rows] == [2, 3]  # fields not written are left alone


def test_a_finished_chunk_is_not_read_again(chunk):
    with transaction.atomic():
        write_chunk(chunk.pk, status=ChunkStatus.DONE, done_rows=[], secret="")
        assert read_chunk(chunk.pk) is None
    chunk.refresh_from_db()
    assert (chunk.status, chunk.secret) == (ChunkStatus.DONE, "")


def test_progress_adds_to_the_counters_and_beats_the_heartbeat(chunk):
    ImportJob.objects.filter(pk=chunk.job_id).update(processed=1, succeeded=1, failed=0, heartbeat_at=None)
    with transaction.atomic():
        add_progress(chunk.job_id, 3, 2, 1)
    job = ImportJob.objects.get(pk=chunk.job_id)
    assert (job.processed, job.succeeded, job.failed) == (4, 3, 1)
    assert job.heartbeat_at is not None
