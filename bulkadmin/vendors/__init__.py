"""What differs between databases, in one module per vendor; the rest of bulkadmin is plain ORM.

``for_alias()`` gives the vendor of a connection. Callers ask it how to lock rows, how to write a
batch of outcomes in one statement, whether an error is the database's rather than a row's, and
how to take a fair turn at writing (SQLite's single write lock).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from django.db import InterfaceError, OperationalError, connections

from bulkadmin.vendors.base import Vendor
from bulkadmin.vendors.mysql import MySQL
from bulkadmin.vendors.postgresql import PostgreSQL
from bulkadmin.vendors.sqlite import SQLite

#: Errors that are the database's, not the row's: the chunk is retried later, no row fails.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)


class DatabaseFault(OperationalError):
    """Another database error that is not the row's fault; raised as a connection error."""


_VENDORS: dict[str, Vendor] = {v.name: v for v in (SQLite(), PostgreSQL(), MySQL())}


def for_alias(alias: str = "default") -> Vendor:
    """The vendor behind a connection; an unknown one gets the portable defaults."""
    return _VENDORS.get(connections[alias].vendor, Vendor())


def is_database_fault(exc: BaseException, alias: str = "default") -> bool:
    """Whether ``exc`` says the database, not the row, failed: never fail a row for it."""
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    return for_alias(alias).is_database_fault(exc, connections[alias])


_waits = threading.local()


@contextlib.contextmanager
def write_turn(alias: str = "default") -> Iterator[None]:
    """Hold this around a writing transaction: a fair turn where the database has one writer.

    ``turn_is_over()`` says, within it, when the transaction has kept others waiting long enough.
    """
    started = time.perf_counter()
    vendor = for_alias(alias)
    with vendor.write_turn(connections[alias]):
        now = time.perf_counter()
        _waits.seconds = turn_waits() + now - started
        _waits.until = now + vendor.longest_turn if vendor.longest_turn is not None else None
        try:
            yield
        finally:
            _waits.until = None


def runs_jobs(alias: str = "default") -> contextlib.AbstractContextManager[None]:
    """Hold this while the process runs a job (a runner dispatching, a pool worker): all its
    writes take turns, so other turn takers need not pause for it (``Vendor.runs_jobs``)."""
    return for_alias(alias).runs_jobs(connections[alias])


def turn_waits() -> float:
    """Seconds this thread has waited for write turns: time no added thread could have used."""
    return float(getattr(_waits, "seconds", 0.0))


def turn_is_over() -> bool:
    """Whether this thread's write turn has lasted its vendor's ``longest_turn``: commit what
    is done, and take another turn for the rest."""
    until = getattr(_waits, "until", None)
    return until is not None and time.perf_counter() >= until


__all__ = [
    "CONNECTION_ERRORS",
    "DatabaseFault",
    "Vendor",
    "for_alias",
    "is_database_fault",
    "runs_jobs",
    "turn_is_over",
    "turn_waits",
    "write_turn",
]
