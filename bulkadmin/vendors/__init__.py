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
    """Hold this around a writing transaction: a fair turn where the database has one writer."""
    started = time.perf_counter()
    with for_alias(alias).write_turn(connections[alias]):
        _waits.seconds = turn_waits() + time.perf_counter() - started
        yield


def turn_waits() -> float:
    """Seconds this thread has waited for write turns: time no added thread could have used."""
    return float(getattr(_waits, "seconds", 0.0))


__all__ = [
    "CONNECTION_ERRORS",
    "DatabaseFault",
    "Vendor",
    "for_alias",
    "is_database_fault",
    "turn_waits",
    "write_turn",
]
