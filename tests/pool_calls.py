"""Calls for ``test_pool.py``: module-level, so a pool's worker processes can import them."""

from __future__ import annotations

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


def refuse(message: str) -> None:
    raise ValueError(message)


def unsendable() -> threading.Lock:
    return threading.Lock()


def die() -> None:
    os._exit(3)
