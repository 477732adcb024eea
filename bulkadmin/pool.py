"""A process pool in which every thread of every worker takes the next call on its own.

``ProcessPoolExecutor`` gives a process one call at a time, so a worker's threads had to share a
call and wait for the slowest of its chunks before the process took more work: one slow row
idled the other threads (the barrier). Here each thread of each process reads the shared call
queue itself, so a slow row holds up its own thread only.

A process that dies breaks the pool as ``ProcessPoolExecutor``'s does: every pending call fails
with ``BrokenProcessPool``, and the runner finds the culprit by running the lost calls alone.
Nothing the runner does can hang on a dead pool: calls reach the shared pipe through a feeder
thread (a full pipe blocks that thread, not ``submit``), and each process sends its outcomes on
a pipe of its own, so one that dies mid-message is seen as an end of file.

Each process starts all its threads, but only the first ``active`` of them take calls; the
rest wait parked, so the runner can add threads, or take them back, while the job runs (its
thread tuning, ``tuning.ThreadTuner``). The count reaches each process on a control pipe of
its own, read by a thread that wakes the parked ones at once (no polling, which costs a
CPU-bound worker its GIL, and no lock shared between processes, which a killed process could
leave held). A thread closes its database connection as it parks.

Nothing of Django's is imported here at import time: a spawned or forkserver child unpickles
``_serve`` before Django is set up.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing.connection
import multiprocessing.context
import pickle
import queue
import sys
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Executor, Future, InvalidStateError
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import Connection
from multiprocessing.queues import SimpleQueue
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

#: A call: its id, the function and its arguments. ``None`` stops the thread that reads it.
Call = tuple[int, Callable[..., Any], tuple[Any, ...], dict[str, Any]]
#: An outcome: the call's id, whether it returned, its value or exception, the remote traceback.
Outcome = tuple[int, bool, Any, str]
#: Tells the feeder thread to stop.
_FEEDER_EXIT = object()


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
        active: int | None = None,
    ) -> None:
        self._threads = threads
        self._controls: list[Connection] = []  # the write end of each process's control pipe
        self._calls: SimpleQueue[Call | None] = context.SimpleQueue()
        self._to_feed: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # Set on shutdown(cancel_futures=True): threads then report the calls they read as cancelled.
        self._cancelling = context.Event()
        self._futures: dict[int, Future[Any]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._broken = ""
        self._closed = False
        self._processes: list[Any] = []
        self._outcomes: list[Connection] = []  # the read end of each process's pipe
        try:
            for index in range(processes):
                reader, writer = context.Pipe(duplex=False)
                control_reader, control_writer = context.Pipe(duplex=False)
                process = context.Process(  # type: ignore[attr-defined]
                    target=_serve,
                    args=(
                        *(self._calls, writer, self._cancelling, control_reader),
                        threads if active is None else active,
                        *(threads, initializer, initargs),
                    ),
                    name=f"bulkadmin-worker-{index}",
                    daemon=True,
                )
                process.start()
                writer.close()  # the child's copy is the only one: its death reads as an end of file
                control_reader.close()
                self._processes.append(process)
                self._outcomes.append(reader)
                self._controls.append(control_writer)
        except BaseException:
            for process in self._processes:
                process.kill()
            raise
        self._feeder = threading.Thread(target=self._feed, name="bulkadmin-pool-calls", daemon=True)
        self._feeder.start()
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
            self._to_feed.put((call_id, fn, args, kwargs))
        return future

    def set_threads(self, active: int) -> None:
        """How many threads of each process take calls from now on (at most those started)."""
        with self._lock:
            if not (self._closed or self._broken):
                self._tell_active(max(1, min(active, self._threads)))

    def _tell_active(self, active: int) -> None:
        for control in self._controls:
            with contextlib.suppress(OSError):  # a dead process: the collector breaks the pool
                control.send(active)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                if not self._broken:
                    if cancel_futures:
                        self._cancelling.set()
                    self._tell_active(self._threads)  # each thread reads its stop below
                    for _ in range(len(self._processes) * self._threads):
                        self._to_feed.put(None)  # after every call: the lock orders them
                    self._to_feed.put(_FEEDER_EXIT)
        if wait:
            for process in self._processes:
                process.join()
            self._collector.join()
            for control in self._controls:
                control.close()

    # ---- the parent's side ---------------------------------------------------------------
    def _feed(self) -> None:
        """Move calls into the shared pipe; abandoned (blocked on a full pipe) if the pool breaks."""
        while (item := self._to_feed.get()) is not _FEEDER_EXIT:
            try:
                self._calls.put(item)
            except Exception as exc:  # the call's arguments do not pickle
                self._settle((item[0], False, exc, ""))

    def _collect(self) -> None:
        """Hand outcomes to their futures; break the pool when a process dies before shutdown."""
        readers = set(self._outcomes)
        sentinels = {process.sentinel: process for process in self._processes}
        try:
            while readers or sentinels:
                ready = multiprocessing.connection.wait([*readers, *sentinels])
                # Outcomes first: a call that finished just before its process died still counts.
                outcomes = [r for r in ready if r in readers]
                for reader in outcomes:
                    try:
                        self._settle(reader.recv())
                    except (EOFError, OSError):  # gone, maybe mid-message; its sentinel says how
                        readers.discard(reader)
                if outcomes:
                    continue
                for sentinel in ready:
                    process = sentinels.pop(sentinel)
                    process.join()  # reaps it: exitcode may still read None before
                    if not (self._closed and process.exitcode == 0):
                        self._break(f"A worker process exited unexpectedly (exit code {process.exitcode}).")
                        return
        except BaseException as exc:
            self._break(f"The pool's results could not be read ({type(exc).__name__}: {exc}).")

    def _settle(self, outcome: Outcome) -> None:
        call_id, returned, value, remote = outcome
        with self._lock:
            future = self._futures.pop(call_id, None)
        if future is None:
            return
        if future.cancelled() or (not returned and value is None):
            _cancel(future)
            return
        with contextlib.suppress(InvalidStateError):  # cancelled by its caller meanwhile
            if returned:
                future.set_result(value)
            else:
                if remote:  # raised in a worker, not by pickling the call here
                    value.__cause__ = RemoteTraceback(remote)
                future.set_exception(value)

    def _break(self, reason: str) -> None:
        with self._lock:
            self._broken = reason
            pending, self._futures = list(self._futures.values()), {}
            self._to_feed.put(_FEEDER_EXIT)
        for process in self._processes:
            if process.is_alive():
                process.kill()
        for future in pending:
            if future.cancelled():
                _cancel(future)
                continue
            with contextlib.suppress(InvalidStateError):  # cancelled by its caller meanwhile
                future.set_exception(BrokenProcessPool(reason))


def _cancel(future: Future[Any]) -> None:
    """Cancel a call's future and wake whoever waits on it (``concurrent.futures.wait``)."""
    future.cancel()
    with contextlib.suppress(RuntimeError):  # its waiters were woken already
        future.set_running_or_notify_cancel()


# ---- the worker's side ---------------------------------------------------------------------
def _serve(
    calls: SimpleQueue[Call | None],
    outcomes: Connection,
    cancelling: Any,
    control: Connection,
    active: int,
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
    sending = threading.Lock()
    gate = Gate(active)
    threading.Thread(target=gate.follow, args=(control,), name="bulkadmin-control", daemon=True).start()
    readers = [
        threading.Thread(
            target=_take_calls,
            args=(i, calls, outcomes, sending, cancelling, gate),
            name=f"bulkadmin-{i}",
        )
        for i in range(threads)
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()


class Gate:
    """How many of this process's threads take calls; the others sleep until there are more.
    (Also the in-process thread gang's, ``worker.ThreadGang``.)"""

    def __init__(self, active: int) -> None:
        self.active = active
        self._changed = threading.Condition()

    def wait_turn(self, index: int) -> None:
        """If thread ``index`` is parked, close its connections (one left open would idle all
        the while) and sleep until it is active again."""
        if index < self.active:
            return
        from django.db import connections

        connections.close_all()
        with self._changed:
            while index >= self.active:
                self._changed.wait()

    def set(self, active: int) -> None:
        with self._changed:
            self.active = active
            self._changed.notify_all()

    def follow(self, control: Connection) -> None:
        """Take each new count from the parent until it closes the pipe (or dies: the orphan
        watch ends this process then)."""
        with contextlib.suppress(EOFError, OSError):
            while True:
                self.set(control.recv())


def _take_calls(
    index: int,
    calls: SimpleQueue[Call | None],
    outcomes: Connection,
    sending: threading.Lock,
    cancelling: Any,
    gate: Gate,
) -> None:
    from django.db import connections

    try:
        while True:
            gate.wait_turn(index)
            if (call := calls.get()) is None:
                break
            call_id, fn, args, kwargs = call
            if cancelling.is_set():
                outcome: Outcome = (call_id, False, None, "")
            else:
                try:
                    outcome = (call_id, True, fn(*args, **kwargs), "")
                except BaseException as exc:
                    outcome = (call_id, False, exc, traceback.format_exc())
            message = _sendable(outcome)
            with sending:
                outcomes.send_bytes(message)
    finally:
        connections.close_all()  # each thread has its own connection


def _sendable(outcome: Outcome) -> bytes:
    """The outcome pickled, or an error saying why it cannot cross to the parent."""
    try:
        message = pickle.dumps(outcome)
        pickle.loads(message)  # noqa: S301 - the bytes were made just above
        return message
    except Exception as exc:
        call_id, returned, value, remote = outcome
        what = "result" if returned else f"exception ({type(value).__name__})"
        error = RuntimeError(f"The call's {what} cannot be sent back ({type(exc).__name__}).")
        return pickle.dumps((call_id, False, error, remote))
