"""The pool's initializer, in a module that imports nothing of Django's at import time.

A spawned or forkserver child unpickles the initializer before Django is set up, so the
initializer cannot live beside the models.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading

#: What a worker holds for as long as it lives.
_held = contextlib.ExitStack()


def initialize_worker(job_id: int) -> None:
    # Ctrl-C reaches the whole process group; the runner handles it (finishing the chunks in
    # flight), so a worker must not die of it mid-chunk.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_when_orphaned()
    import django

    django.setup()
    from bulkadmin import vendors, worker

    # Before this process opens the database (the importer's setup): others in the job's
    # turns look for processes that are not theirs, and would pause for this one.
    _held.enter_context(vendors.runs_jobs())
    worker.get_importer(job_id)
    freeze_what_lives_on()


def freeze_what_lives_on() -> None:
    """Leave what a process holds once set up (Django's modules, models and settings, the
    importer's caches: ~77,000 objects) out of the garbage collector's reach (``gc.freeze``):
    it lives as long as the process, yet every full collection a job's rows set off walked it
    all again. 10,000 users on SQLite, whole default ``bulkimport``, 3 runs each: 3.45 to 3.48 s
    before, 3.35 to 3.41 s with the pool's processes frozen; the validation before the import
    ended 0.04 s sooner with the command's own process frozen too. In the forkserver, before it
    forks, it also spares the children's copies of those pages (Python's ``gc.freeze`` notes)."""
    gc.freeze()


def _exit_when_orphaned() -> None:
    """Die with the runner: a pool worker blocks forever on its queue once the runner is killed.

    Its open transaction is rolled back, so the rows it held stay pending for the resume.
    """
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        multiprocessing.connection.wait([sentinel])
        os._exit(70)

    threading.Thread(target=watch, name="bulkadmin-orphan-watch", daemon=True).start()


def worker_ready() -> int:
    """A no-op the runner sends to a new pool: it fails at once if workers cannot start."""
    return os.getpid()
