"""Threads per worker, picked from the first chunks' timings when nobody chose a number.

Threads help rows that wait (an email, an HTTP call, a database on another host): a process
runs one thread's Python at a time, so for rows that keep the CPU busy extra threads only add
switching (2 workers x 4 threads ran CPU-bound rows at 0.87x of 1 thread each). So each worker
starts with one active thread, and the tuner:

1. reads, over the first unit of each worker and at least ``MIN_WINDOW`` of their time, the
   share of their threads' time spent on the CPU, leaving out the waits for a write turn
   (SQLite's single writer: no thread could use those), and their pace: one thread per
   worker does ``workers`` x rows / seconds. No wall clock: a unit of slow rows takes seconds,
   and waiting for a second round of them would keep the job on one thread that much longer
   (the runner's first units are small for this: ``units.PROBE_ROWS``). Rows that kept the
   CPU ``BUSY`` settle it at once: a start only adds waits (connecting), never CPU. Whether
   rows keep the CPU busy counts the time they were ready for it while the cores ran other
   work (another job, the web server: ``cpuclock``), which no added thread would overlap;
2. if that leaves room, tries twice the threads that the share on the CPU alone would fill
   (30% on it: 3, so 6). The share is one thread's alone: with many, rows also wait for their
   process's turn at the CPU and the database's, so filling it guesses low. 4,000 rows waiting
   20 ms each (PostgreSQL, 4 workers) measured 85% waiting: 6 threads fill that. Tried first,
   then 12, whole commands took 5.0 to 5.2 s; with 12 tried first, 3.7 to 3.8 s;
3. keeps them only if the rows per second, on the wall clock from the trial's first unit back
   (the units begun before it are at the old pace), rose by at least ``GAIN``; otherwise goes
   back to 1;
4. while a trial gains, tries twice its threads (up to the most allowed), and keeps the last
   that gained.

A job whose rows are all handed out during a trial keeps the trial's threads, and says so:
from then on its threads run out of work, whatever their number. The pick is final for the run.

Threads chosen by the user (``asked``) are checked the same way, without a trial, on a pool
or in-process (``--workers 1 --threads 4`` ran 5 ms CPU-bound rows at 0.74x of 1 thread): rows
that keep the CPU busy run on one thread (on SQLite, 2 workers x 4 threads took 1.6x as long as 1
thread each on 5 ms CPU-bound rows: each process's turn at the write lock waited for the GIL),
others on the threads asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bulkadmin.worker import ChunkResult

#: The least a window lasts, in seconds: shorter ones measure the start, not the rows.
MIN_WINDOW = 0.5
#: The speed-up more threads must show to be kept.
GAIN = 1.1
#: A share of the time on the CPU that no start could inflate: one thread, without ``MIN_WINDOW``.
BUSY = 0.8


@dataclass(frozen=True)
class Step:
    """Threads per worker from now on; with a reason (for the command line and the job's log)
    when that is the final pick, without one while a trial runs."""

    threads: int
    reason: str = ""

    @property
    def final(self) -> bool:
        return bool(self.reason)


@dataclass
class _Window:
    started: float | None = None
    results: int = 0
    total: ChunkResult = field(default_factory=ChunkResult)

    def add(self, result: ChunkResult) -> None:
        self.results += 1
        self.total += result

    def elapsed(self, now: float) -> float:
        return 0.0 if self.started is None else now - self.started

    def rate(self, now: float) -> float:
        return self.total.processed / max(self.elapsed(now), 1e-9)

    def cpu_share(self) -> float:
        """The share of the threads' time on the CPU, write-turn waits left out."""
        return self._share(self.total.cpu)

    def busy_share(self) -> float:
        """The share on the CPU or ready for it: what no added thread would overlap."""
        return self._share(self.total.cpu + self.total.ready)

    def _share(self, seconds: float) -> float:
        working = self.total.seconds - self.total.waited
        return min(1.0, seconds / working) if working > 0 else 1.0


@dataclass
class ThreadTuner:
    workers: int
    most: int
    #: ``most`` is the user's number: kept unless the rows keep the CPU busy.
    asked: bool = False
    threads: int = 1
    done: bool = False
    _window: _Window = field(default_factory=_Window, init=False)
    _single_rate: float = field(default=0.0, init=False)
    #: The last threads that gained (1 before a trial), and their rows per second.
    _kept: int = field(default=1, init=False)
    _kept_rate: float = field(default=0.0, init=False)
    _cpu_share: float = field(default=1.0, init=False)

    def observe(self, result: ChunkResult, now: float) -> Step | None:
        """Count a finished unit; a step when the threads change or the pick is final."""
        if self.done or result.processed == 0:
            return None
        window = self._window
        if self.threads == 1:
            window.add(result)
            if window.results < self.workers:
                return None
            if window.total.seconds < MIN_WINDOW and window.busy_share() < BUSY:
                return None
            return self._after_single(window)
        if window.started is None:  # its rows began before the trial did
            window.started = now
            return None
        window.add(result)
        # Half the threads' first units, and MIN_WINDOW on the clock.
        if window.elapsed(now) < MIN_WINDOW or window.results < self.workers * self.threads // 2:
            return None
        return self._after_trial(window, now)

    def observe_running(self, seconds: float, cpu: float) -> Step | None:
        """A unit still running on the one thread (in-process, ``longest_call``): rows that have
        waited for ``MIN_WINDOW`` get the threads asked for without it ending, since what they
        wait for may be rows of another unit. Rows on the CPU are left to finish it."""
        if self.done or not self.asked or self.threads != 1 or seconds < MIN_WINDOW:
            return None
        share = min(1.0, max(0.0, cpu) / seconds)
        if self._filling(share) <= 1:
            return None
        return self._settle(self.most, f"as asked: the rows waited {1 - share:.0%} of the time")

    def _filling(self, share: float) -> int:
        """The threads that rows on the CPU ``share`` of their time would fill it with."""
        return self.most if share <= 1 / self.most else min(self.most, int(1 / share))

    def conclude(self) -> Step | None:
        """The rows ran out during a trial: its threads are the pick, unproven (None if no
        trial ran: a job too short to measure says nothing)."""
        if self.done or self.threads == 1:
            return None
        return self._settle(
            self.threads,
            f"the rows waited {1 - self._cpu_share:.0%} of the time; "
            f"the job ended before {self.threads} threads could be compared with {self._kept}",
        )

    def restart_window(self) -> None:
        """Measure afresh: the runner waited out the database, or ran suspects one by one."""
        self._window = _Window()

    def _after_single(self, window: _Window) -> Step:
        share, busy = window.cpu_share(), window.busy_share()
        if self._filling(busy) <= 1:
            reason = f"the rows kept their thread on the CPU {busy:.0%} of the time"
            if self.asked:
                reason += f": {self.most} threads would only take turns at it"
            return self._settle(1, reason)
        if self.asked:
            return self._settle(self.most, f"as asked: the rows waited {1 - share:.0%} of the time")
        guess = min(self.most, 2 * self._filling(share))  # more than 1: share <= busy
        pace = self.workers * window.total.processed / window.total.seconds
        self._single_rate, self._cpu_share = pace, share
        self._kept_rate = pace
        return self._try(guess)

    def _try(self, threads: int) -> Step:
        self.threads = threads
        self._window = _Window()
        return Step(threads)

    def _after_trial(self, window: _Window, now: float) -> Step:
        rate, trial, kept = window.rate(now), self.threads, self._kept
        waited = f"the rows waited {1 - self._cpu_share:.0%} of the time"
        if rate >= GAIN * self._kept_rate:
            self._kept, self._kept_rate = trial, rate
            if trial < self.most:
                return self._try(min(self.most, 2 * trial))
            return self._settle(
                trial,
                f"{waited}; {trial} threads did {self._kept_rate / self._single_rate:.1f}x the rows of 1",
            )
        if kept == 1:
            return self._settle(
                1, f"{waited}, but {trial} threads did only {rate / self._single_rate:.2f}x the rows of 1"
            )
        return self._settle(
            kept,
            f"{waited}; {kept} threads did {self._kept_rate / self._single_rate:.1f}x the rows of 1, "
            f"{trial} only {rate / self._kept_rate:.2f}x the rows of {kept}",
        )

    def _settle(self, threads: int, reason: str) -> Step:
        self.threads, self.done = threads, True
        return Step(threads, reason)
