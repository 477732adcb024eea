"""A thread's time on a CPU, and its time ready for one while the cores ran something else.

The thread tuning (``tuning.ThreadTuner``) needs both. A thread's CPU clock alone leaves out
the time it was ready to run but the machine's cores were busy elsewhere (another job, the web
server, the database): with three other busy processes on this 2-core machine, rows spinning
10 ms each measured 62% to 94% waiting, and the tuner gave them 2, 6, then 15 threads. So
whether rows keep the CPU busy is read from both. How many threads to try is read from the time
on the CPU alone: a job's own processes make each other wait for the cores too, and counting
that (4,000 users waiting 20 ms each, PostgreSQL, 4 workers on 2 cores: 73% waiting instead of
85%) made the first trial 3 threads instead of 6, which twice in six runs gained too little to
be kept and left the job on one thread (17 s instead of 5 s).

Linux counts both per thread (``/proc/<pid>/task/<tid>/schedstat``: on the CPU, then runnable,
in ns). Elsewhere the time ready is 0, and the time on the CPU is the thread's CPU clock.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import NamedTuple


class CpuTimes(NamedTuple):
    """Seconds on a CPU, and ready for one."""

    on_cpu: float
    ready: float

    def since(self, start: CpuTimes) -> CpuTimes:
        return CpuTimes(max(0.0, self.on_cpu - start.on_cpu), max(0.0, self.ready - start.ready))


_yours = threading.local()


class ThreadCpu:
    """Made in the thread it measures; read from any thread while that thread lives."""

    @classmethod
    def current(cls) -> ThreadCpu:
        """This thread's, made once: each chunk a thread imports reads its times."""
        native = threading.get_native_id()
        clock: ThreadCpu | None = getattr(_yours, "clock", None)
        if clock is None or clock._native != native:  # a forked child's copy of its parent's
            clock = _yours.clock = cls()
        return clock

    def __init__(self) -> None:
        self._ident, self._native = threading.get_ident(), threading.get_native_id()
        self._schedstat: Path | None = Path(f"/proc/self/task/{self._native}/schedstat")
        self._clock: int | None = None
        if self._read_schedstat() is None:
            self._schedstat = None
            with contextlib.suppress(AttributeError, OSError):  # no clock: only it reads its time
                self._clock = time.pthread_getcpuclockid(self._ident)

    def times(self) -> CpuTimes | None:
        """The thread's times so far; None once it is gone, or when another thread asks and the
        platform gives threads no clock of their own."""
        if self._schedstat is not None:
            return self._read_schedstat()
        if self._clock is None:
            return CpuTimes(time.thread_time(), 0.0) if threading.get_ident() == self._ident else None
        try:
            return CpuTimes(time.clock_gettime(self._clock), 0.0)
        except OSError:
            return None

    def _read_schedstat(self) -> CpuTimes | None:
        if self._schedstat is None:
            return None
        try:
            on_cpu, ready = self._schedstat.read_bytes().split()[:2]
            return CpuTimes(int(on_cpu) / 1e9, int(ready) / 1e9)
        except (OSError, ValueError):
            return None
