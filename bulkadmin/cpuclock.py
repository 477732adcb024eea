"""A thread's demand for the CPU: its time on one, and its time ready for one while the machine
ran other work.

The thread tuning (``tuning.ThreadTuner``) reads a unit's wall time less this as the rows'
waiting, which more threads would overlap. A thread's CPU clock alone leaves out the time it
was ready to run but the machine's cores were busy elsewhere (another job, the web server, the
database): with three other busy processes on this 2-core machine, rows spinning 10 ms each
measured 62% to 94% waiting, and the tuner gave them 2, 6, then 15 threads. Linux counts that
time per thread (``/proc/<pid>/task/<tid>/schedstat``: on the CPU, then runnable, in ns).
Elsewhere this is the thread's CPU clock alone.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path


class ThreadCpu:
    """Made in the thread it measures; read from any thread while that thread lives."""

    def __init__(self) -> None:
        self._ident = threading.get_ident()
        self._schedstat: Path | None = Path(f"/proc/self/task/{threading.get_native_id()}/schedstat")
        self._clock: int | None = None
        if self._read_schedstat() is None:
            self._schedstat = None
            with contextlib.suppress(AttributeError, OSError):  # no clock: only it reads its time
                self._clock = time.pthread_getcpuclockid(self._ident)

    def wanted(self) -> float | None:
        """Seconds the thread has been on a CPU or ready for one; None once it is gone, or
        when another thread asks and the platform gives threads no clock of their own."""
        if self._schedstat is not None:
            return self._read_schedstat()
        if self._clock is None:
            return time.thread_time() if threading.get_ident() == self._ident else None
        try:
            return time.clock_gettime(self._clock)
        except OSError:
            return None

    def _read_schedstat(self) -> float | None:
        if self._schedstat is None:
            return None
        try:
            on_cpu, runnable = self._schedstat.read_bytes().split()[:2]
            return (int(on_cpu) + int(runnable)) / 1e9
        except (OSError, ValueError):
            return None
