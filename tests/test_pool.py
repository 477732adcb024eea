"""The worker pool, on real processes: every thread takes calls on its own; a death breaks it."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from concurrent.futures import CancelledError, Future
from concurrent.futures.process import BrokenProcessPool

import pytest

from bulkadmin.executors import pool_context
from bulkadmin.pool import RemoteTraceback, WorkerPool
from tests import pool_calls

DEADLINE = 30


@pytest.fixture
def make_pool():
    pools: list[WorkerPool] = []

    def make(processes: int = 1, threads: int = 2, method: str = "", active: int | None = None) -> WorkerPool:
        context = multiprocessing.get_context(method) if method else pool_context()
        pool = WorkerPool(
            processes=processes,
            threads=threads,
            context=context,
            initializer=pool_calls.set_up,
            active=active,
        )
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


def test_a_blocked_call_holds_up_its_own_thread_only(make_pool, tmp_path):
    # One process of two threads: with one call per process (ProcessPoolExecutor), every call
    # behind the blocked one would wait for it.
    pool = make_pool(processes=1, threads=2)
    flag = tmp_path / "go"
    blocked = pool.submit(pool_calls.wait_for, str(flag))
    squares = [pool.submit(pool_calls.square, n) for n in range(20)]
    assert [f.result(timeout=DEADLINE) for f in squares] == [n * n for n in range(20)]
    assert not blocked.done()
    flag.touch()
    assert blocked.result(timeout=DEADLINE) > 0


def test_parked_threads_take_no_calls_until_the_pool_wakes_them(make_pool, tmp_path):
    pool = make_pool(processes=1, threads=3, active=1)
    names = {pool.submit(pool_calls.thread_name).result(timeout=DEADLINE) for _ in range(30)}
    assert names == {"bulkadmin-0"}
    pool.set_threads(3)
    flag = tmp_path / "go"
    blocked = pool.submit(pool_calls.wait_for, str(flag))
    squares = [pool.submit(pool_calls.square, n) for n in range(20)]  # taken by the woken threads
    assert [f.result(timeout=DEADLINE) for f in squares] == [n * n for n in range(20)]
    assert not blocked.done()
    flag.touch()
    assert blocked.result(timeout=DEADLINE) > 0


def test_parked_threads_stop_with_the_pool(make_pool):
    pool = make_pool(processes=2, threads=4, active=1)
    assert pool.submit(pool_calls.square, 5).result(timeout=DEADLINE) == 25
    pool.shutdown(wait=True)  # hangs if a parked thread never reads its stop
    pool_calls.wait_for_exit(pool, 2)


def test_an_exception_comes_back_with_the_workers_traceback(make_pool):
    pool = make_pool()
    with pytest.raises(ValueError, match="no thanks") as raised:
        pool.submit(pool_calls.refuse, "no thanks").result(timeout=DEADLINE)
    assert isinstance(raised.value.__cause__, RemoteTraceback)
    assert "pool_calls.py" in str(raised.value.__cause__)
    assert pool.submit(pool_calls.square, 3).result(timeout=DEADLINE) == 9  # the pool goes on


def test_a_result_that_cannot_be_sent_back_fails_its_call_only(make_pool):
    pool = make_pool()
    with pytest.raises(RuntimeError, match="cannot be sent back"):
        pool.submit(pool_calls.unsendable).result(timeout=DEADLINE)
    assert pool.submit(pool_calls.square, 4).result(timeout=DEADLINE) == 16


def test_a_dying_process_breaks_the_pool_and_fails_every_pending_call(make_pool, tmp_path):
    pool = make_pool(processes=2, threads=2)
    waiting = pool.submit(pool_calls.wait_for, str(tmp_path / "never"))
    with pytest.raises(BrokenProcessPool):
        pool.submit(pool_calls.die).result(timeout=DEADLINE)
    with pytest.raises(BrokenProcessPool):
        waiting.result(timeout=DEADLINE)
    with pytest.raises(BrokenProcessPool):
        pool.submit(pool_calls.square, 2)


def test_a_worker_that_cannot_start_breaks_the_pool():
    pool = WorkerPool(processes=1, threads=2, context=pool_context(), initializer=pool_calls.die)
    try:
        with pytest.raises(BrokenProcessPool):
            pool.submit(pool_calls.square, 2).result(timeout=DEADLINE)
    finally:
        pool.shutdown(wait=True)


def test_shutdown_cancelling_futures_cancels_the_calls_not_started(make_pool, tmp_path):
    pool = make_pool(processes=1, threads=1)
    flag, started = tmp_path / "go", tmp_path / "started"
    running = pool.submit(pool_calls.wait_for, str(flag), str(started))
    queued = [pool.submit(pool_calls.square, n) for n in range(5)]
    pool_calls.wait_for(str(started))
    pool.shutdown(wait=False, cancel_futures=True)
    flag.touch()
    assert running.result(timeout=DEADLINE) > 0  # a call already running finishes
    for future in queued:
        with pytest.raises(CancelledError):
            future.result(timeout=DEADLINE)
    pool.shutdown(wait=True)  # a second call is a no-op


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_workers_stopping_at_shutdown_break_nothing(make_pool, tmp_path, method):
    # Under spawn a stopped worker's sentinel fires before its exit code can be read: that
    # once read as a death, and the pool killed the call still running in the other worker.
    pool = make_pool(processes=2, threads=1, method=method)
    flag, started = tmp_path / "go", tmp_path / "started"
    running = pool.submit(pool_calls.wait_for, str(flag), str(started))
    pool_calls.wait_for(str(started))
    pool.shutdown(wait=False)  # the idle worker stops now
    pool_calls.wait_for_exit(pool, count=1)
    flag.touch()
    assert running.result(timeout=DEADLINE) > 0
    pool.shutdown(wait=True)


def test_a_full_call_pipe_never_blocks_submit_and_a_death_still_breaks_the_pool(make_pool, tmp_path):
    pool = make_pool(processes=1, threads=1)
    pid = pool.submit(os.getpid).result(timeout=DEADLINE)
    blocked = pool.submit(pool_calls.wait_for, str(tmp_path / "never"))
    payload = "x" * 200_000  # a few of these fill the pipe's 64 KiB many times over
    queued: list[Future[object]] = []
    submitting = threading.Thread(
        target=lambda: queued.extend(pool.submit(pool_calls.echo, payload) for _ in range(20))
    )
    submitting.start()
    submitting.join(timeout=DEADLINE)
    assert not submitting.is_alive(), "submit blocked on a full pipe"
    os.kill(pid, signal.SIGKILL)
    for future in [blocked, *queued]:
        with pytest.raises(BrokenProcessPool):
            future.result(timeout=DEADLINE)


def test_a_call_cancelled_by_its_caller_leaves_the_pool_working(make_pool, tmp_path):
    pool = make_pool(processes=1, threads=1)
    flag = tmp_path / "go"
    pool.submit(pool_calls.wait_for, str(flag))
    dropped = pool.submit(pool_calls.square, 2)
    assert dropped.cancel()  # not started: the pool runs it, and must drop its result
    flag.touch()
    assert pool.submit(pool_calls.square, 3).result(timeout=DEADLINE) == 9
