"""Threads per worker picked while a job runs: the tuner's rules, then real jobs on real pools."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from bulkadmin import worker
from bulkadmin.cpuclock import ThreadCpu
from bulkadmin.engine import JobRunner, most_threads
from bulkadmin.jobs import create_job
from bulkadmin.models import ImportJob, JobStatus
from bulkadmin.tuning import GAIN, MIN_WINDOW, Step, ThreadTuner
from bulkadmin.worker import ChunkResult


def unit(
    rows: int = 10, seconds: float = 0.1, cpu: float = 0.1, waited: float = 0.0, ready: float = 0.0
) -> ChunkResult:
    return ChunkResult(rows, rows, 0, seconds=seconds, cpu=cpu, waited=waited, ready=ready)


def feed(tuner: ThreadTuner, results: list[ChunkResult], start: float, step: float) -> list[Step]:
    steps = []
    for index, result in enumerate(results, 1):
        if (found := tuner.observe(result, start + index * step)) is not None:
            steps.append(found)
    return steps


def test_rows_that_keep_the_cpu_busy_stay_on_one_thread_without_a_trial():
    tuner = ThreadTuner(workers=2, most=16)
    # A unit per worker and MIN_WINDOW of their time: five units of 0.1 s.
    steps = feed(tuner, [unit(cpu=0.09)] * 5, start=0.0, step=0.05)
    assert steps == [Step(1, "the rows kept their thread on the CPU 90% of the time")]
    assert tuner.done and tuner.threads == 1
    assert feed(tuner, [unit(cpu=0.01)] * 10, start=1.0, step=0.2) == []  # the pick is final


def test_rows_that_clearly_keep_the_cpu_busy_settle_at_the_first_unit_of_each_worker():
    # The first units are small (units.PROBE_ROWS): 0.02 s of CPU-bound rows says enough.
    tuner = ThreadTuner(workers=2, most=16)
    assert tuner.observe(unit(seconds=0.02, cpu=0.019), 0.1) is None  # one worker's
    assert tuner.observe(unit(seconds=0.02, cpu=0.019), 0.1) == Step(
        1, "the rows kept their thread on the CPU 95% of the time"
    )
    # Rows half on the CPU could be a start's waits: they wait for MIN_WINDOW.
    tuner = ThreadTuner(workers=2, most=16)
    assert feed(tuner, [unit(seconds=0.02, cpu=0.01)] * 2, start=0.0, step=0.01) == []


def test_time_ready_for_a_busy_cpu_keeps_rows_on_one_thread_but_does_not_lower_the_first_trial():
    # Ready for the CPU 70% of the time while other processes had the cores: busy rows.
    tuner = ThreadTuner(workers=2, most=16)
    steps = feed(tuner, [unit(cpu=0.015, ready=0.07)] * 5, start=0.0, step=0.05)
    assert steps == [Step(1, "the rows kept their thread on the CPU 85% of the time")]
    # 15% on the CPU and 12% ready (a job's own workers make each other wait for the cores):
    # the first trial is read from the time on the CPU (6 fill it: 12 are tried), not from both
    # (3 would fill them). With 3, PostgreSQL W2 twice in six runs gained too little to keep
    # them and stayed on one thread (17 s against 5 s).
    tuner = ThreadTuner(workers=2, most=16)
    assert feed(tuner, [unit(cpu=0.015, ready=0.012)] * 5, start=0.0, step=0.05) == [Step(12)]


def test_rows_that_wait_get_twice_the_threads_that_fill_the_cpu_then_twice_more_while_faster():
    tuner = ThreadTuner(workers=2, most=16)
    # A quarter of the time on the CPU: four threads would fill it, and one thread's share
    # guesses low, so 8 are tried first. One thread per worker did 2 workers x 50 rows / 0.5 s =
    # 200 rows a second.
    assert feed(tuner, [unit(cpu=0.025)] * 5, start=0.0, step=0.05) == [Step(8)]
    assert not tuner.done
    clock = 1.0

    def finish(units: int, per_second: float) -> list[Step]:
        """Units of 10 rows, finishing at ``per_second`` rows a second from the clock on."""
        nonlocal clock
        steps = feed(tuner, [unit(cpu=0.025)] * units, start=clock, step=10 / per_second)
        clock += units * 10 / per_second
        return steps

    # Each trial, on the clock from its first unit back: 8 threads 6x as fast, so 16 are tried;
    # 16 are hardly faster than 8, which are kept.
    assert finish(70, 1200) == [Step(16)]
    steps = finish(70, 1250)
    assert steps == [Step(8, steps[0].reason)] and steps[0].final
    assert (
        "waited 75%" in steps[0].reason and "8 threads did 6.0x the rows of 1, 16 only 1.0" in steps[0].reason
    )


def test_a_trial_at_the_most_threads_that_gains_ends_the_climb():
    tuner = ThreadTuner(workers=2, most=4)
    assert feed(tuner, [unit(cpu=0.025)] * 5, start=0.0, step=0.05) == [Step(4)]
    steps = feed(tuner, [unit(cpu=0.025)] * 32, start=1.0, step=1 / 60)
    assert steps == [Step(4, steps[0].reason)] and "4 threads did 3.0x" in steps[0].reason


def test_more_threads_that_are_not_faster_are_given_back():
    tuner = ThreadTuner(workers=1, most=8)
    assert feed(tuner, [unit(cpu=0.01)] * 5, start=0.0, step=0.1) == [Step(8)]  # 100 rows/s
    # The trial needs half of the 8 threads' first units and MIN_WINDOW: 105 rows/s is not enough.
    steps = feed(tuner, [unit(cpu=0.01)] * 8, start=1.0, step=10 / ((GAIN - 0.05) * 100))
    assert steps == [Step(1, steps[0].reason)] and "only 1.05x" in steps[0].reason
    assert tuner.threads == 1


def test_threads_the_user_chose_are_kept_without_a_trial_unless_the_rows_keep_the_cpu_busy():
    tuner = ThreadTuner(workers=2, most=6, asked=True)
    assert feed(tuner, [unit(cpu=0.5 * 0.1)] * 5, start=0.0, step=0.05) == [
        Step(6, "as asked: the rows waited 50% of the time")
    ]
    tuner = ThreadTuner(workers=2, most=6, asked=True)
    steps = feed(tuner, [unit(cpu=0.09)] * 5, start=0.0, step=0.05)
    assert steps == [
        Step(
            1, "the rows kept their thread on the CPU 90% of the time: 6 threads would only take turns at it"
        )
    ]


def test_a_unit_still_running_shows_rows_that_wait_but_leaves_the_cpu_bound_to_finish():
    asked = ThreadTuner(workers=1, most=4, asked=True)
    assert asked.observe_running(MIN_WINDOW / 2, 0.0) is None  # too early to tell
    assert asked.observe_running(MIN_WINDOW, MIN_WINDOW * 0.9) is None  # on the CPU: let it end
    assert asked.observe_running(MIN_WINDOW, MIN_WINDOW * 0.1) == Step(
        4, "as asked: the rows waited 90% of the time"
    )
    assert asked.done and asked.observe_running(MIN_WINDOW, 0.0) is None
    assert ThreadTuner(workers=1, most=4).observe_running(MIN_WINDOW, 0.0) is None  # a trial needs units


def test_a_job_that_ends_during_the_trial_says_what_it_ran_with():
    tuner = ThreadTuner(workers=2, most=16)
    assert tuner.conclude() is None  # too short to measure: nothing to say
    assert feed(tuner, [unit(cpu=0.0)] * 5, start=0.0, step=0.05) == [Step(16)]
    step = tuner.conclude()
    assert step is not None and step.threads == 16 and "ended before 16 threads" in step.reason
    assert tuner.conclude() is None  # said once


def test_waiting_for_a_write_turn_is_not_time_a_thread_could_use():
    # SQLite's single writer: a worker that waits for the other's turn is not waiting on I/O.
    tuner = ThreadTuner(workers=2, most=16)
    steps = feed(tuner, [unit(seconds=0.2, cpu=0.09, waited=0.1)] * 3, start=0.0, step=0.1)
    assert steps == [Step(1, "the rows kept their thread on the CPU 90% of the time")]


def test_a_restarted_window_forgets_the_units_before():
    # The runner waited out the database: the units before the wait do not count.
    tuner = ThreadTuner(workers=1, most=8)
    assert feed(tuner, [unit(cpu=0.05)] * 3, start=0.0, step=0.1) == []  # 0.3 s of 0.5
    tuner.restart_window()
    assert feed(tuner, [unit(cpu=0.0)] * 4, start=10.0, step=0.1) == []  # else decided here
    assert tuner.observe(unit(cpu=0.0), 10.5) == Step(8)


def test_the_first_window_needs_a_unit_from_each_worker_and_only_units_with_rows_count():
    tuner = ThreadTuner(workers=2, most=16)
    assert tuner.observe(unit(seconds=1.0, cpu=0.0), 1.0) is None  # one worker's, however long
    assert tuner.observe(unit(rows=0, cpu=0.0), 1.1) is None  # nothing left to do in it
    assert tuner.observe(unit(cpu=0.0), 1.2) == Step(16)


# ---- real jobs -----------------------------------------------------------------------------
RESTAURANTS = "tests.testapp.importers.RestaurantImporter"


@pytest.fixture
def auto_threads(settings):
    """The default: threads picked while the job runs (the test settings pin 1)."""
    settings.BULKADMIN = {**settings.BULKADMIN, "THREADS": None}


@pytest.fixture
def restaurants_job(write_file, auto_threads):
    def make(count: int):
        body = "".join(f"R{n},Rome\n" for n in range(count))
        job, report = create_job(
            write_file("r.csv", "name,city\n" + body), "r.csv", importer_path=RESTAURANTS
        )
        assert job is not None, report.errors
        return job

    return make


def run_picking(job: ImportJob, **options: Any) -> tuple[ImportJob, list[Step]]:
    """Run a job on a pool of 2 workers (chunks of 5); with the steps it reported as picks."""
    picked: list[Step] = []
    options = {"workers": 2, "chunk_size": 5, **options}
    return JobRunner(job.pk, on_threads_picked=picked.append, **options).run(), picked


@pytest.mark.django_db(transaction=True)
def test_a_job_whose_rows_wait_picks_more_threads_and_says_so(restaurants_job, knobs, settings):
    settings.BULKADMIN = {**settings.BULKADMIN, "MAX_AUTO_THREADS": 4}
    knobs(row_wait="0.02")  # outside the transaction: threads overlap it on SQLite too
    job, picked = run_picking(restaurants_job(600))
    assert (job.status, job.succeeded) == (JobStatus.SUCCEEDED, 600)
    assert [step.threads for step in picked] == [4], picked
    assert "threads did" in picked[0].reason
    assert job.threads == 4  # shown on the job page; a resume keeps it


@pytest.mark.django_db(transaction=True)
def test_the_last_units_of_slow_rows_are_smaller_so_the_threads_finish_together(restaurants_job, knobs):
    """Before, each thread took whole 20-row units to the end: with 4 workers x 8 threads of rows
    waiting 20 ms, a few threads ran a last 100-row unit for 2 s while the others idled."""
    knobs(row_wait="0.025")
    finished: list[ChunkResult] = []
    job = JobRunner(
        restaurants_job(120).pk, workers=2, threads=1, chunk_size=20, on_progress=finished.append
    ).run()
    assert (job.status, job.succeeded) == (JobStatus.SUCCEEDED, 120)
    sizes = [result.processed for result in finished]
    assert sum(sizes) == 120 and sizes[0] == 20, sizes
    assert min(sizes) < 20, sizes


@pytest.mark.django_db(transaction=True)
def test_a_job_whose_rows_keep_the_cpu_busy_stays_on_one_thread(restaurants_job, knobs):
    knobs(row_spin="0.01")
    job, picked = run_picking(restaurants_job(200))
    assert (job.status, job.succeeded) == (JobStatus.SUCCEEDED, 200)
    assert [step.threads for step in picked] == [1], picked
    assert "on the CPU" in picked[0].reason
    assert job.threads == 1


@pytest.mark.django_db(transaction=True)
def test_rows_that_keep_the_cpu_busy_stay_on_one_thread_while_the_machine_is_busy_too(
    restaurants_job, knobs, busy_machine
):
    """Before, the time the rows' threads were ready but other processes had the cores read as
    the rows waiting: 2, 6 and 15 threads were given to rows that spin."""
    knobs(row_spin="0.01")
    job, picked = run_picking(restaurants_job(120))
    assert (job.status, job.succeeded) == (JobStatus.SUCCEEDED, 120)
    assert [step.threads for step in picked] == [1], picked
    assert "on the CPU" in picked[0].reason


def test_a_threads_time_ready_for_a_busy_cpu_is_counted_apart_and_its_sleep_is_not(busy_machine):
    clock = ThreadCpu()
    started, begun = time.perf_counter(), clock.times()
    spin_until = time.thread_time() + 0.3
    while time.thread_time() < spin_until:
        pass
    spun = time.perf_counter() - started
    time.sleep(0.2)
    now = clock.times()
    assert begun is not None and now is not None
    spent = now.since(begun)
    assert spun > 0.4, "the other processes did not take their share of the cores"  # 0.3 s of CPU
    assert 0.29 <= spent.on_cpu <= 0.35
    assert 0.9 * spun <= spent.on_cpu + spent.ready <= spun + 0.05


def test_each_thread_has_one_clock_and_a_forked_child_gets_its_own():
    mine = ThreadCpu.current()
    assert ThreadCpu.current() is mine
    theirs: list[ThreadCpu] = []
    other = threading.Thread(target=lambda: theirs.append(ThreadCpu.current()))
    other.start()
    other.join()
    assert theirs[0] is not mine
    # A forked child's thread has another id, where its parent's clock reads nothing. Forked
    # from a process of one thread, as a pool's forkserver is: this one may have several.
    forks = (
        "import os; from bulkadmin.cpuclock import ThreadCpu; mine = ThreadCpu.current()\n"
        "if (child := os.fork()) == 0:\n"
        "    clock = ThreadCpu.current()\n"
        "    os._exit(0 if clock is not mine and clock.times() is not None else 1)\n"
        "raise SystemExit(os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]))\n"
    )
    assert subprocess.run([sys.executable, "-c", forks], timeout=60).returncode == 0


@pytest.mark.django_db(transaction=True)
def test_threads_chosen_by_the_user_are_kept_for_rows_that_wait(restaurants_job, knobs):
    knobs(row_wait="0.02")
    job, picked = run_picking(restaurants_job(200), threads=3)
    assert (job.status, job.threads) == (JobStatus.SUCCEEDED, 3)
    assert [step.threads for step in picked] == [3] and "as asked" in picked[0].reason


@pytest.mark.django_db(transaction=True)
def test_threads_chosen_by_the_user_are_not_given_to_rows_that_keep_the_cpu_busy(restaurants_job, knobs):
    knobs(row_spin="0.01")
    job, picked = run_picking(restaurants_job(200), threads=4)
    assert (job.status, job.succeeded, job.threads) == (JobStatus.SUCCEEDED, 200, 1)
    assert [step.threads for step in picked] == [1]
    assert "4 threads would only take turns" in picked[0].reason


@pytest.mark.django_db(transaction=True)
def test_one_worker_runs_rows_that_keep_the_cpu_busy_on_one_thread_whatever_was_asked(restaurants_job, knobs):
    # In-process, 4 threads took 1.36x as long as 1 on 5 ms CPU-bound rows (SQLite, 1,000 users).
    knobs(row_spin="0.01")
    job, picked = run_picking(restaurants_job(60), workers=1, threads=4)
    assert (job.status, job.succeeded, job.threads) == (JobStatus.SUCCEEDED, 60, 1)
    assert [step.threads for step in picked] == [1]
    assert "4 threads would only take turns" in picked[0].reason


@pytest.mark.django_db(transaction=True)
def test_one_worker_runs_rows_that_wait_on_the_threads_asked_for(restaurants_job, knobs, monkeypatch):
    threads_seen: set[str] = set()
    import_unit = worker._import_unit

    def recording(*args: Any) -> Any:
        threads_seen.add(threading.current_thread().name)
        return import_unit(*args)

    monkeypatch.setattr(worker, "_import_unit", recording)
    knobs(row_wait="0.02")
    job, picked = run_picking(restaurants_job(200), workers=1, threads=3)
    assert (job.status, job.succeeded, job.threads) == (JobStatus.SUCCEEDED, 200, 3)
    assert [step.threads for step in picked] == [3] and "as asked" in picked[0].reason
    assert {f"bulkadmin-{i}" for i in range(3)} <= threads_seen


@pytest.mark.django_db
def test_one_worker_stays_a_plain_loop_in_the_callers_thread(restaurants_job):
    # In the test's own transaction, which another thread's connection cannot see: ``--workers
    # 1`` runs in this thread, as documented, with no threads to pick (a debugger's pause would
    # look like rows waiting on I/O).
    job, picked = run_picking(restaurants_job(30), workers=1)
    assert (job.status, job.succeeded, job.threads, picked) == (JobStatus.SUCCEEDED, 30, 1, [])


@pytest.mark.django_db
def test_the_threads_tried_stay_within_half_the_databases_connections(settings):
    from django.db import connection

    settings.BULKADMIN = {**settings.BULKADMIN, "MAX_AUTO_THREADS": 100_000}
    if connection.vendor == "sqlite":
        assert most_threads(2) == 100_000  # no server, no connection limit
        return
    with connection.cursor() as cursor:
        query = "SHOW max_connections" if connection.vendor == "postgresql" else "SELECT @@max_connections"
        cursor.execute(query)
        limit = int(cursor.fetchone()[0])
    assert most_threads(2) == limit // 4 and most_threads(limit) == 1
    settings.BULKADMIN = {**settings.BULKADMIN, "MAX_AUTO_THREADS": 3}
    assert most_threads(2) == 3
