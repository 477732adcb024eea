"""How a job's pending rows are cut into units for the workers, on real jobs' chunks."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from bulkadmin.jobs import create_job
from bulkadmin.models import ImportChunk, ImportJob
from bulkadmin.units import TAIL_SECONDS, Units, unit_size
from bulkadmin.worker import ChunkResult, Unit

pytestmark = pytest.mark.django_db


@pytest.fixture
def job_of(write_file):
    def make(rows: int, chunk_size: int) -> ImportJob:
        body = "".join(f"u{n},u{n}@example.com\n" for n in range(rows))
        path = write_file("u.csv", "username,email\n" + body)
        job, report = create_job(path, path.name, size=chunk_size)
        assert job is not None, report.errors
        return job

    return make


def cut(job: ImportJob, units: Iterable[Unit]) -> list[tuple[int, int]]:
    """Each unit as (chunk number, rows)."""
    numbers = dict(ImportChunk.objects.filter(job=job).values_list("pk", "number"))
    sizes = dict(ImportChunk.objects.filter(job=job).values_list("pk", "size"))
    return [(numbers[u.chunk_id], sizes[u.chunk_id] if u.only is None else len(u.only)) for u in units]


@pytest.mark.parametrize(
    ("chunk_size", "pending", "slots", "expected"),
    [
        (100, 10_000, 2, 100),
        (500, 10_000, 2, 500),
        (100, 200, 2, 100),
        (100, 150, 2, 38),
        (500, 40, 2, 10),
        (100, 1, 4, 1),
        (100, 4_000, 64, 32),  # 4 workers x 16 threads: two units each
    ],
)
def test_unit_size(chunk_size, pending, slots, expected):
    assert unit_size(chunk_size, pending, slots) == expected


def test_whole_chunks_when_they_fit_and_parts_side_by_side_when_they_do_not(job_of):
    job = job_of(40, chunk_size=20)
    assert cut(job, Units(job.pk, 20)) == [(1, 20), (2, 20)]
    units = list(Units(job.pk, 8))
    assert cut(job, units) == [(1, 8), (2, 8), (1, 8), (2, 8), (1, 4), (2, 4)]
    rows = [n for u in units for n in (u.only or ())]
    assert sorted(rows) == sorted(n for c in ImportChunk.objects.filter(job=job) for n in c.row_numbers())


def test_the_probe_grows_by_doubling_until_resized(job_of):
    job = job_of(200, chunk_size=100)
    units = Units(job.pk, 100, probe=10, probe_every=2)
    first = [next(units) for _ in range(5)]
    assert cut(job, first) == [(1, 10), (2, 10), (1, 20), (2, 20), (1, 40)]
    units.resize(5)  # threads were added: smaller units for all that is left
    assert cut(job, [next(units) for _ in range(3)]) == [(2, 5), (1, 5), (2, 5)]
    units.resize(100)
    rest = list(units)
    assert cut(job, rest) == [(1, 25), (2, 60)]


def test_the_probe_ends_at_the_full_size(job_of):
    job = job_of(100, chunk_size=50)
    assert cut(job, Units(job.pk, 30, probe=10, probe_every=1)) == [
        (1, 10),
        (2, 20),
        (1, 30),
        (2, 30),
        (1, 10),
    ]


def test_units_stay_whole_until_the_rows_pace_is_known(job_of):
    job = job_of(200, chunk_size=100)
    assert cut(job, Units(job.pk, 100, pending=200, slots=2)) == [(1, 100), (2, 100)]


def test_the_last_units_taper_down_to_a_quarter_second_of_rows(job_of):
    """Each unit is at most a thread's share of the rows not handed out yet, so the threads run
    out of work together; never below TAIL_SECONDS of rows (a unit has its own cost)."""
    job = job_of(200, chunk_size=100)
    units = Units(job.pk, 100, pending=200, slots=2)
    units.finished(ChunkResult(processed=4, seconds=TAIL_SECONDS))  # 4 rows make the smallest unit
    assert cut(job, units) == [(1, 100), (2, 50), (2, 25), (2, 13), (2, 6), (2, 4), (2, 2)]
    assert units.pending == 0


def test_fast_rows_are_not_cut_smaller_than_the_chunk_size(job_of):
    job = job_of(200, chunk_size=100)
    units = Units(job.pk, 100, pending=200, slots=2)
    units.finished(ChunkResult(processed=1000, seconds=TAIL_SECONDS))
    assert cut(job, units) == [(1, 100), (2, 100)]
