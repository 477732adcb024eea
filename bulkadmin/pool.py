"""A process pool in which every thread of every worker takes the next call on its own.

``ProcessPoolExecutor`` gives a process one call at a time, so a worker's threads had to share a
call and wait for the slowest of its chunks before the process took more work: one slow row
idled the other threads (the barrier). Here each thread of each process reads the shared call
queue itself, so a slow row holds up its own thread only.

A process that dies breaks the pool as ``ProcessPoolExecutor``'s does: every pending call fails
with ``BrokenProcessPool``, and the runner finds the culprit by running the lost calls alone.

Nothing of Django's is imported here at import time: a spawned or forkserver child unpickles
``_serve`` before Django is set up.
"""

from __future__ import annotations

import itertools
import multiprocessing.connection
import multiprocessing.context
import pickle
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.queues import SimpleQueue
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

#: A call: its id, the function and its arguments. ``None`` stops the thread that reads it.
Call = tuple[int, Callable[..., Any], tuple[Any, ...], dict[str, Any]]
#: An outcome: the call's id, whether it returned, its value or exception, the remote traceback.
Outcome = tuple[int, bool, Any, str]


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as its ``__cause__``."""

    def __str__(self) -> str:
        return str(self.args[0])


class WorkerPool(Executor):
    def __init__(
        self,
        *,
        processes: int,
        threads: int,
        context: multiprocessing.context.BaseContext,
        initializer: Callable[..., object],
        initargs: tuple[Any, ...] = (),
    ) -> None:
        self._threads = threads
        self._calls: SimpleQueue[Call | None] = context.SimpleQueue()
        self._outcomes: SimpleQueue[Outcome] = context.SimpleQueue()
        # Set on shutdown(cancel_futures=True): threads then report the calls they read as cancelled.
        self._cancelling = context.Event()
        self._futures: dict[int, Future[Any]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._broken = ""
        self._closed = False
        self._processes = [
            context.Process(  # type: ignore[attr-defined]
                target=_serve,
                args=(self._calls, self._outcomes, self._cancelling, threads, initializer, initargs),
                name=f"bulkadmin-worker-{index}",
                daemon=True,
            )
            for index in range(processes)
        ]
        for process in self._processes:
            process.start()
        self._collector = threading.Thread(target=self._collect, name="bulkadmin-pool-results", daemon=True)
        self._collector.start()

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        with self._lock:
            if self._broken:
                raise BrokenProcessPool(self._broken)
            if self._closed:
                raise RuntimeError("cannot submit calls after shutdown")
            call_id = next(self._ids)
            future: Future[T] = Future()
            self._futures[call_id] = future
        self._calls.put((call_id, fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            broken = bool(self._broken)
        if not broken:
            if cancel_futures:
                self._cancelling.set()
            for _ in range(len(self._processes) * self._threads):
                self._calls.put(None)
        if wait:
            for process in self._processes:
                process.join()
            self._collector.join()

    # ---- the parent's side ---------------------------------------------------------------
    def _collect(self) -> None:
        """Hand outcomes to their futures; break the pool when a process dies before shutdown."""
        reader = self._outcomes._reader  # type: ignore[attr-defined]
        alive = {process.sentinel: process for process in self._processes}
        while alive:
            ready = multiprocessing.connection.wait([reader, *alive])
            if reader in ready:  # outcomes first: a call finished just before its process died
                self._settle(self._outcomes.get())
                continue
            for sentinel in ready:
                process = alive.pop(sentinel)
                if not (self._closed and process.exitcode == 0):
                    self._break(f"A worker process exited unexpectedly (exit code {process.exitcode}).")
                    return
        while reader.poll():  # every process stopped as asked: what they sent last
            self._settle(self._outcomes.get())

    def _settle(self, outcome: Outcome) -> None:
        call_id, returned, value, remote = outcome
        with self._lock:
            future = self._futures.pop(call_id, None)
        if future is None:
            return
        if returned:
            future.set_result(value)
        elif value is None:
            future.cancel()
            future.set_running_or_notify_cancel()
        else:
            value.__cause__ = RemoteTraceback(remote)
            future.set_exception(value)

    def _break(self, reason: str) -> None:
        with self._lock:
            self._broken = reason
            pending, self._futures = list(self._futures.values()), {}
        for process in self._processes:
            if process.is_alive():
                process.kill()
        for future in pending:
            future.set_exception(BrokenProcessPool(reason))


# ---- the worker's side ---------------------------------------------------------------------
def _serve(
    calls: SimpleQueue[Call | None],
    outcomes: SimpleQueue[Outcome],
    cancelling: Any,
    threads: int,
    initializer: Callable[..., object],
    initargs: tuple[Any, ...],
) -> None:
    """A worker process: set up, then ``threads`` threads each taking calls until told to stop."""
    try:
        initializer(*initargs)
    except BaseException:
        traceback.print_exc()
        sys.exit(1)  # the pool sees the process die, and breaks: the runner reports it
    readers = [
        threading.Thread(target=_take_calls, args=(calls, outcomes, cancelling), name=f"bulkadmin-{i}")
        for i in range(threads)
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()


def _take_calls(calls: SimpleQueue[Call | None], outcomes: SimpleQueue[Outcome], cancelling: Any) -> None:
    from django.db import connections

    try:
        while (call := calls.get()) is not None:
            call_id, fn, args, kwargs = call
            if cancelling.is_set():
                outcomes.put((call_id, False, None, ""))
                continue
            try:
                outcome: Outcome = (call_id, True, fn(*args, **kwargs), "")
            except BaseException as exc:
                outcome = (call_id, False, exc, traceback.format_exc())
            outcomes.put(_sendable(outcome))
    finally:
        connections.close_all()  # each thread has its own connection


def _sendable(outcome: Outcome) -> Outcome:
    """The outcome, or an error saying why it cannot cross to the parent (it does not pickle)."""
    try:
        pickle.loads(pickle.dumps(outcome))  # noqa: S301 - the bytes were made just above
    except Exception as exc:
        call_id, returned, value, remote = outcome
        what = "result" if returned else f"exception ({type(value).__name__}: {value})"
        return (call_id, False, RuntimeError(f"The call's {what} cannot be sent back: {exc}"), remote)
    return outcome
