"""The pool's initializer, in a module that imports nothing of Django's at import time.

A spawned or forkserver child unpickles the initializer before Django is set up, so the
initializer cannot live beside the models.
"""

from __future__ import annotations


def initialize_worker(job_id: int, threads: int) -> None:
    import django

    django.setup()
    from bulkadmin import worker

    worker.configure_threads(threads)
    worker.get_importer(job_id)
