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
from functools import partial

from django.db import InterfaceError, OperationalError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

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
    with _turn(for_alias(alias), connections[alias]):
        yield


@contextlib.contextmanager
def rows_turn(alias: str = "default") -> Iterator[None]:
    """``write_turn`` for a transaction of rows, entered before its ``transaction.atomic()``.

    Where the database has one writer (SQLite), the turn and the write lock are taken at the
    transaction's first statement instead of at its start: what its first row does before it
    touches the database (a receiver waiting on a web service, CPU work) runs alongside other
    writers' turns. ``started_row`` and ``ran_before_writing`` measure that time, so a row that
    needs it can be committed alone (``Vendor.alone_after``).
    """
    vendor, connection = for_alias(alias), connections[alias]
    with vendor.deferred_turn(connection, partial(_turn, vendor, connection), _saw_statement):
        yield


@contextlib.contextmanager
def writes_turn(alias: str = "default") -> Iterator[None]:
    """``write_turn`` for code that may write, or not (an importer's ``setup()``): where the
    database has one writer, the turn is taken at its first statement that may write, and held
    to its end. Before it, reading or waiting (a client warmed over the network) holds up no one.
    """
    vendor, connection = for_alias(alias), connections[alias]
    with vendor.turn_at_first_write(connection, partial(_turn, vendor, connection)):
        yield


@contextlib.contextmanager
def _turn(vendor: Vendor, connection: BaseDatabaseWrapper) -> Iterator[None]:
    started = time.perf_counter()
    with vendor.write_turn(connection):
        now = time.perf_counter()
        _waits.seconds = turn_waits() + now - started
        _waits.until = now + vendor.longest_turn if vendor.longest_turn is not None else None
        try:
            yield
        finally:
            _waits.until = None


def started_row() -> None:
    """A row's import starts now (``ran_before_writing``)."""
    _waits.row_started, _waits.row_wrote = time.perf_counter(), None


def _saw_statement() -> None:
    if getattr(_waits, "row_wrote", 0.0) is None:
        _waits.row_wrote = time.perf_counter()


def ran_before_writing() -> float:
    """Seconds the row begun by ``started_row`` ran before its first statement, in a
    ``rows_turn`` that defers its turn (the whole row so far if it has none yet)."""
    started = getattr(_waits, "row_started", None)
    if started is None:
        return 0.0
    wrote = getattr(_waits, "row_wrote", None)
    return float((wrote if wrote is not None else time.perf_counter()) - started)


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
    "ran_before_writing",
    "rows_turn",
    "runs_jobs",
    "started_row",
    "turn_is_over",
    "turn_waits",
    "write_turn",
    "writes_turn",
]
