"""Where chunks run: in this process (``workers=1``) or on a local process pool.

The pool's start method is chosen explicitly (``MP_START_METHOD``, forkserver by default) and
each worker prepares Django in its initializer, as Django's own parallel test runner does;
this process's database connections are closed first so no child can share a socket.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import ParamSpec, TypeVar

from django.db import connections

from bulkadmin import conf, worker
from bulkadmin.bootstrap import initialize_worker

P = ParamSpec("P")
T = TypeVar("T")


class InlineExecutor(Executor):
    """Runs each call at once in the calling process: the plain loop, for debugging."""

    def __init__(self, job_id: int, threads: int) -> None:
        worker.configure_threads(threads)
        self._threads = threads

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        worker.configure_threads(1)


def make_executor(job_id: int, *, workers: int, threads: int) -> Executor:
    if workers <= 1:
        return InlineExecutor(job_id, threads)
    connections.close_all()
    method = str(conf.get("MP_START_METHOD"))
    if method not in multiprocessing.get_all_start_methods():
        method = "spawn"
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context(method),
        initializer=initialize_worker,
        initargs=(job_id, threads),
    )
