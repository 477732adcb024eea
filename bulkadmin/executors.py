"""Where chunks run: in this process (``workers=1``) or on a local process pool.

The pool's start method is chosen explicitly (``MP_START_METHOD``, forkserver by default) and
each worker prepares Django in its initializer, as Django's own parallel test runner does;
this process's database connections are closed first so no child can share a socket. With
forkserver, the server itself sets Django up once (its preload), so workers start warm.

Either way, with ``threads`` > 1 every thread takes the next call as soon as it is free: no
call waits for another (``pool.WorkerPool``; in this process, the worker's thread gang).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
from collections.abc import Callable
from concurrent.futures import Executor, Future
from functools import partial
from multiprocessing import forkserver
from typing import ParamSpec, TypeVar

from django.db import connections

from bulkadmin import conf, worker
from bulkadmin.bootstrap import initialize_worker
from bulkadmin.pool import WorkerPool

#: Imported by the forkserver before it forks a worker: Django is set up once, not per worker.
PRELOAD = "bulkadmin.preload"

P = ParamSpec("P")
T = TypeVar("T")


class InlineExecutor(Executor):
    """Runs calls in this process: at once (the plain loop, for debugging), or on the worker's
    thread gang when it has several threads, each taking the next call when it is free; the
    first ``active`` of them (all by default) until ``set_threads`` says otherwise."""

    def __init__(self, job_id: int, threads: int, active: int | None = None) -> None:
        worker.configure_threads(threads, active)
        worker.set_only_writer((threads if active is None else active) <= 1)

    def set_threads(self, active: int) -> None:
        """With one thread active, it is the job's only writer: its rows commit together."""
        gang = worker.thread_gang()
        if gang is not None:
            gang.set_active(active)
        worker.set_only_writer(active <= 1)

    def longest_call(self) -> tuple[float, float] | None:
        """The call running longest: seconds so far, and its thread's CPU seconds."""
        gang = worker.thread_gang()
        return gang.longest_call() if gang is not None else None

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        gang = worker.thread_gang()
        if gang is not None:
            return gang.submit(partial(fn, *args, **kwargs))
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        worker.configure_threads(1)
        worker.set_only_writer(False)


def start_method() -> str:
    method = str(conf.get("MP_START_METHOD"))
    return method if method in multiprocessing.get_all_start_methods() else "spawn"


def pool_context() -> multiprocessing.context.BaseContext:
    """The pool's context; with forkserver, a server that sets Django up once before forking."""
    context = multiprocessing.get_context(start_method())
    if isinstance(context, multiprocessing.context.ForkServerContext):
        context.set_forkserver_preload([PRELOAD])
    return context


def warm_up() -> None:
    """Start the forkserver now, so Django is set up in it while this process does other work
    (``bulkimport`` validates the file meanwhile); the pool then starts at once."""
    if isinstance(pool_context(), multiprocessing.context.ForkServerContext):
        connections.close_all()
        forkserver.ensure_running()


def make_executor(
    job_id: int, *, workers: int, threads: int, active: int | None = None
) -> InlineExecutor | WorkerPool:
    """``workers`` processes (this one for 1) of ``threads`` threads, ``active`` of them (all
    by default) taking calls until ``set_threads`` says otherwise."""
    if workers <= 1:
        return InlineExecutor(job_id, threads, active)
    connections.close_all()
    return WorkerPool(
        processes=workers,
        threads=threads,
        context=pool_context(),
        initializer=initialize_worker,
        initargs=(job_id,),
        active=active,
    )
