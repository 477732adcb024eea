"""What a job changed, kept so it can be undone: field values as JSON, and back.

When a row changes an existing object, its importer says which fields it is about to change
(``Importer.remember``); the worker keeps their values from before and after the save in the
chunk (``ImportChunk.undo``), in the transaction that saved the object. A revert puts the
"before" values back, but only on an object whose fields still hold the "after" ones: anything
else means someone changed it since, and their change wins.

Values are kept as JSON: numbers, text and booleans as they are, dates, decimals and UUIDs as
the text their field writes, a foreign key as its target's primary key, a many-to-many field
as the sorted list of its targets' primary keys.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

Snapshot = dict[str, Any]


def _field(obj: models.Model, name: str) -> models.Field[Any, Any]:
    field = obj._meta.get_field(name)
    assert isinstance(field, models.Field)
    return field


def value_of(obj: models.Model, name: str) -> Any:
    """The field's value on ``obj``, as JSON (a many-to-many field costs a query)."""
    field = _field(obj, name)
    if field.many_to_many:
        if obj.pk is None:
            return []
        return sorted(str(pk) for pk in getattr(obj, name).values_list("pk", flat=True))
    value = field.value_from_object(obj)
    if value is None:
        return None
    if isinstance(field, models.JSONField):  # as the field stores it: its encoder's JSON
        return json.loads(json.dumps(value, cls=field.encoder))
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime.datetime):
        # A value set in memory may be naive where the database gives it back aware.
        if settings.USE_TZ and timezone.is_naive(value):
            value = timezone.make_aware(value)
        return value.isoformat()
    return field.value_to_string(obj)


def snapshot(obj: models.Model, names: Iterable[str]) -> Snapshot:
    return {name: value_of(obj, name) for name in names}


def same(obj: models.Model, name: str, a: Any, b: Any) -> bool:
    """Whether two kept values of the field are the same value ("12.5" and "12.50" are)."""
    field = _field(obj, name)
    if field.many_to_many or a is None or b is None or isinstance(field, models.JSONField):
        return bool(a == b)
    try:
        return bool(field.to_python(a) == field.to_python(b))
    except Exception:
        return bool(a == b)


def differing(obj: models.Model, kept: Snapshot) -> list[str]:
    """The fields of ``kept`` whose value on ``obj`` is now another."""
    return [name for name, value in kept.items() if not same(obj, name, value_of(obj, name), value)]


def _decoded(field: Any, value: Any) -> Any:
    """A kept JSON value as the field's decoder reads it back."""
    if field.decoder is None:
        return value
    return json.loads(json.dumps(value), cls=field.decoder)


def restore(obj: models.Model, kept: Snapshot) -> dict[str, list[str]]:
    """Set ``obj``'s plain fields to the kept values; the many-to-many ones are returned, as
    ``{name: [pk, …]}``, to set after ``obj.save()``."""
    many: dict[str, list[str]] = {}
    for name, value in kept.items():
        field = _field(obj, name)
        if field.many_to_many:
            many[name] = list(value or [])
        elif value is None or isinstance(field, models.JSONField):
            setattr(obj, field.attname, value if value is None else _decoded(field, value))
        else:
            setattr(obj, field.attname, field.to_python(value))
    return many
