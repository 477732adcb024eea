"""A job's pending rows, cut into units: what one thread of a worker takes as one task.

Chunks are stored at the size chosen when the job was created. A runner hands out whole
chunks, or parts of them when it wants smaller units: a job with fewer chunks than threads to
feed, or the first units of a job whose threads are still to be picked. A chunk's record keeps
each row exactly once either way.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator

from bulkadmin.models import ImportChunk
from bulkadmin.worker import ChunkResult, Unit

#: Rows in the first units while threads are picked: enough to measure, few enough that rows
#: which wait 20 ms each give the tuner its first figures in a fraction of a second.
PROBE_ROWS = 10
#: Seconds of rows in the smallest unit a tapering job's last units shrink to (``Units.finished``):
#: the most one thread may go on alone after the others ran out of work, while a unit's own
#: cost (reading its chunk, its record, a commit: 3 to 4 ms here) stays about 1% of its rows'.
TAIL_SECONDS = 0.25

Fetch = Callable[[int, int], list[ImportChunk]]


def unit_size(chunk_size: int, pending: int, slots: int) -> int:
    """Rows per unit for ``slots`` threads in all: the chunk size, unless the job has fewer
    chunks than that; then as many as give each thread two units. A small job of slow rows
    (passwords hashed outside the transaction, 0.24 s a row here) would otherwise run on one
    thread while the others idle: SQLite's 500-row chunks made that any job under 1,000 rows."""
    if pending >= chunk_size * slots:
        return chunk_size
    return max(1, min(chunk_size, -(-pending // (slots * 2))))


def pending_chunks(job_id: int, after: int, page: int = 64) -> list[ImportChunk]:
    """The next pending chunks of a job, in order, without their rows."""
    return list(
        ImportChunk.objects.pending()
        .filter(job_id=job_id, number__gt=after)
        .order_by("number")
        .only("pk", "number", "size")[:page]
    )


class _Cursor:
    """The rows of one chunk not handed out yet."""

    def __init__(self, chunk: ImportChunk) -> None:
        self.chunk = chunk
        self.numbers: list[int] | None = None  # read when the chunk is first cut

    def take(self, size: int) -> Unit:
        if self.numbers is None:
            if self.chunk.size <= size:
                self.numbers = []
                return Unit(self.chunk.pk)
            self.numbers = self.chunk.row_numbers()
        part, self.numbers = self.numbers[:size], self.numbers[size:]
        return Unit(self.chunk.pk, tuple(part))

    @property
    def empty(self) -> bool:
        return self.numbers == []


class Units(Iterator[Unit]):
    """A job's pending chunks in order, in units of at most ``size`` rows, cut as they are
    handed out, so ``resize`` applies to all that is not handed out yet.

    ``probe``: the units begin at that many rows, doubling after every ``probe_every`` units
    until they reach ``size`` (or a ``resize``): the runner picks threads from the first units'
    timings, and learns sooner from small ones; fast rows soon reach full units.

    Once the rows' pace is known (``finished``), the last units taper: each is at most the
    ``pending`` rows not handed out yet shared among the ``slots`` threads, down to
    ``TAIL_SECONDS`` of rows. Threads then run out of work together. With whole units to the
    end, 4 workers x 8 threads of rows waiting 20 ms each spent their last 2 seconds of 6 with
    most threads idle, while a few finished a last 100-row unit.

    Parts of one chunk lock the same record at their commit, so they are handed out side by
    side with parts of the next chunks, not one after another.
    """

    def __init__(
        self,
        job_id: int,
        size: int,
        *,
        fetch: Fetch | None = None,
        probe: int = 0,
        probe_every: int = 1,
        pending: int = 0,
        slots: int = 1,
    ) -> None:
        self.job_id, self.size = job_id, size
        self.pending, self.slots = pending, slots
        self._least = size  # no tapering until the rows' pace is known
        self._done = ChunkResult()  # every finished unit's rows: their pace
        self._fetch = fetch or pending_chunks
        self._growing = 0 < probe < size
        self._step, self._every, self._given = probe, max(1, probe_every), 0
        self._after = 0
        self._page: deque[_Cursor] = deque()

    def resize(self, size: int, slots: int | None = None) -> None:
        """Cut the units not handed out yet at ``size`` rows, for ``slots`` threads; ends the probe."""
        self.size, self._growing = size, False
        self.slots = slots or self.slots

    def finished(self, result: ChunkResult) -> None:
        """A unit's rows are done: their pace so far sets the last units' ``TAIL_SECONDS``."""
        self._done += result
        if self._done.processed and self._done.seconds > 0:
            self._least = max(1, math.ceil(TAIL_SECONDS * self._done.processed / self._done.seconds))

    def __next__(self) -> Unit:
        if not self._page:
            page = self._fetch(self.job_id, self._after)
            if not page:
                raise StopIteration
            self._after = page[-1].number
            self._page.extend(_Cursor(chunk) for chunk in page)
        cursor = self._page.popleft()
        unit = cursor.take(self._next_size())
        if not cursor.empty:
            self._page.append(cursor)
        self.pending -= cursor.chunk.size if unit.only is None else len(unit.only)
        return unit

    def _next_size(self) -> int:
        if not self._growing:
            if self.pending <= 0:  # not known: whole units
                return self.size
            share = -(-self.pending // self.slots)
            return max(min(self._least, self.size), min(self.size, share))
        size = self._step
        self._given += 1
        if self._given % self._every == 0:
            self._step *= 2
            self._growing = self._step < self.size
        return size


def iter_units(job_id: int, size: int) -> Iterator[Unit]:
    """All of a job's pending work, in units of at most ``size`` rows (a task queue's)."""
    return Units(job_id, size)
