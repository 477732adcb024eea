"""Calls for ``test_pool.py``: module-level, so a pool's worker processes can import them."""

from __future__ import annotations

import multiprocessing.connection
import os
import threading
import time
from pathlib import Path

DEADLINE = 30.0


def set_up() -> None:
    import django

    django.setup()


def wait_for(path: str, started: str = "") -> int:
    """Block until ``path`` exists (first creating ``started``); fail loudly after the deadline."""
    if started:
        Path(started).touch()
    deadline = time.monotonic() + DEADLINE
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.01)
    return os.getpid()


def square(x: int) -> int:
    return x * x


def thread_name() -> str:
    return threading.current_thread().name


def refuse(message: str) -> None:
    raise ValueError(message)


def unsendable() -> threading.Lock:
    return threading.Lock()


def die() -> None:
    os._exit(3)


def echo(value: object) -> object:
    return value


def wait_for_exit(pool: object, count: int) -> None:
    """Block until ``count`` of the pool's processes have ended (their sentinels ready, not reaped:
    reaping would set the exit code the pool reads); fail loudly after the deadline."""
    sentinels = [p.sentinel for p in pool._processes]  # type: ignore[attr-defined]
    deadline = time.monotonic() + DEADLINE
    while len(multiprocessing.connection.wait(sentinels, timeout=0.01)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError("the pool's processes did not stop")
