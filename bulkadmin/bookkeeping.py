"""The statements each transaction of rows runs for its bookkeeping, their SQL written once.

A transaction of rows reads its chunk's record, locked; then it writes the chunk's outcome and
adds to the job's counters. Built by the ORM each time, those three statements took 1.9 ms of
the 3.9 ms that a one-row transaction held SQLite's write lock here (rows that wait commit one
by one), of which running them was 0.2 ms. So their SQL is written once per connection, from the
models' own table and column names (nothing else goes into the text: S608 below), with
Django's own lock clause; the values are adapted by the fields, and the JSON read back
decoded by them, as the ORM does.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from bulkadmin.models import ChunkStatus, ImportChunk, ImportJob


class ChunkState(NamedTuple):
    """A pending chunk's record, as a transaction of its rows reads it."""

    size: int
    done_rows: list[int]
    object_pks: dict[str, str]
    undo: dict[str, Any]


def read_chunk(chunk_id: int) -> ChunkState | None:
    """The chunk's record if it is pending, locked until the transaction ends (row locks;
    SQLite's IMMEDIATE transaction locks the whole database)."""
    connection = connections[DEFAULT_DB_ALIAS]
    with connection.cursor() as cursor:
        cursor.execute(_sql(connection).read, [chunk_id, ChunkStatus.PENDING])
        row = cursor.fetchone()
    if row is None:
        return None
    size, done_rows, object_pks, undo = row
    return ChunkState(
        int(size),
        _decoded("done_rows", done_rows, connection),
        _decoded("object_pks", object_pks, connection),
        _decoded("undo", undo, connection),
    )


def write_chunk(chunk_id: int, **values: Any) -> None:
    """``ImportChunk.objects.filter(pk=chunk_id).update(**values)``, for its fields only."""
    connection = connections[DEFAULT_DB_ALIAS]
    names = tuple(sorted(values))
    params = [_field(ImportChunk, name).get_db_prep_save(values[name], connection) for name in names]
    with connection.cursor() as cursor:
        cursor.execute(_update_chunk(connection.alias, connection.vendor, names), [*params, chunk_id])


def add_progress(job_id: int, processed: int, succeeded: int, failed: int) -> None:
    """Count finished rows on the job, and beat its heartbeat: in the transaction that
    finished them."""
    connection = connections[DEFAULT_DB_ALIAS]
    now = _field(ImportJob, "heartbeat_at").get_db_prep_save(timezone.now(), connection)
    with connection.cursor() as cursor:
        cursor.execute(_sql(connection).progress, [processed, succeeded, failed, now, job_id])


class _Statements(NamedTuple):
    read: str
    progress: str


def _sql(connection: BaseDatabaseWrapper) -> _Statements:
    return _statements(connection.alias, connection.vendor)


@functools.cache
def _statements(alias: str, vendor: str) -> _Statements:
    connection = connections[alias]
    chunk, job = _table(ImportChunk, connection), _table(ImportJob, connection)
    read_columns = ", ".join(_column(ImportChunk, name, connection) for name in ChunkState._fields)
    lock = f" {connection.ops.for_update_sql()}" if connection.features.has_select_for_update else ""
    counters = ", ".join(
        f"{column} = {column} + %s"
        for column in (_column(ImportJob, name, connection) for name in ("processed", "succeeded", "failed"))
    )
    return _Statements(
        read=(
            f"SELECT {read_columns} FROM {chunk} WHERE {_pk(ImportChunk, connection)} = %s "  # noqa: S608
            f"AND {_column(ImportChunk, 'status', connection)} = %s{lock}"
        ),
        progress=(
            f"UPDATE {job} SET {counters}, {_column(ImportJob, 'heartbeat_at', connection)} = %s "  # noqa: S608
            f"WHERE {_pk(ImportJob, connection)} = %s"
        ),
    )


@functools.cache
def _update_chunk(alias: str, vendor: str, names: tuple[str, ...]) -> str:
    connection = connections[alias]
    columns = ", ".join(f"{_column(ImportChunk, name, connection)} = %s" for name in names)
    table, pk = _table(ImportChunk, connection), _pk(ImportChunk, connection)
    return f"UPDATE {table} SET {columns} WHERE {pk} = %s"  # noqa: S608


def _field(model: type[models.Model], name: str) -> Any:
    return model._meta.get_field(name)


def _table(model: type[models.Model], connection: BaseDatabaseWrapper) -> str:
    return str(connection.ops.quote_name(model._meta.db_table))


def _column(model: type[models.Model], name: str, connection: BaseDatabaseWrapper) -> str:
    return str(connection.ops.quote_name(_field(model, name).column))


def _pk(model: type[models.Model], connection: BaseDatabaseWrapper) -> str:
    pk = model._meta.pk
    assert pk is not None and pk.column is not None
    return str(connection.ops.quote_name(pk.column))


def _decoded(name: str, value: Any, connection: BaseDatabaseWrapper) -> Any:
    """A JSON column's value as the ORM returns it (a driver may have decoded it already)."""
    if isinstance(value, (dict, list)):
        return value
    return _field(ImportChunk, name).from_db_value(value, None, connection)
