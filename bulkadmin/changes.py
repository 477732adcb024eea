"""Bulk changes: a change checked in the request (no writes), then run as a job on the engine.

The change is what staff set in the action's form or on ``bulkchange``'s command line: field
values as a file's cells would give them (``set``) and related objects to ``add`` to or
``remove`` from a many-to-many field. It runs through the model's importer in update mode
(``ChangeImporter``), so the importer's validation and privilege rules hold, and every
object is loaded, changed and saved through ``save()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils.translation import gettext as _

from bulkadmin.importers.base import Errors, Importer, RowInvalid
from bulkadmin.importers.model import ModelImporter
from bulkadmin.jobs import batched, display_name, fill_job, starter_context
from bulkadmin.models import ImportJob, JobKind, JobStatus, StartedVia
from bulkadmin.parsing import RawRow
from bulkadmin.vendors import write_turn


@dataclass
class Change:
    set: dict[str, str] = field(default_factory=dict)
    add: dict[str, list[str]] = field(default_factory=dict)
    remove: dict[str, list[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.set or any(self.add.values()) or any(self.remove.values()))

    def as_options(self) -> dict[str, Any]:
        return {"update_existing": True, "change": {"set": self.set, "add": self.add, "remove": self.remove}}


def supports_change(importer_cls: type[Importer]) -> bool:
    """A bulk change finds each object by the importer's key field, which must be unique (else
    it could change an object nobody selected), and cleans values as a model's importer does."""
    if not issubclass(importer_cls, ModelImporter) or importer_cls.key_column is None:
        return False
    try:
        field = importer_cls.get_model()._meta.get_field(importer_cls.key_column)
    except FieldDoesNotExist:
        return False
    return bool(getattr(field, "unique", False))


def changeable_fields(importer_cls: type[Importer]) -> tuple[list[str], list[str]]:
    """The importer's columns a bulk change may set, and its many-to-many ones (add/remove)."""
    model = importer_cls.get_model()
    plain: list[str] = []
    many: list[str] = []
    for column in importer_cls.columns:
        if column.secret or column.name == importer_cls.key_column:
            continue
        try:
            model_field = model._meta.get_field(column.name)
        except FieldDoesNotExist:
            continue  # a column that is not a field of the model
        (many if getattr(model_field, "many_to_many", False) else plain).append(column.name)
    return plain, many


def check(importer: Importer, change: Change, probe_key: str) -> Errors:
    """The change's problems, by field, as the importer sees them; reads only."""
    if not change:
        return {"__all__": [_("Choose at least one field to change.")]}
    plain, many = changeable_fields(type(importer))
    errors: Errors = {}
    for name in change.set:
        if name not in plain:
            errors[name] = [_("This field cannot be changed in bulk.")]
    for name in [*change.add, *change.remove]:
        if name not in many:
            errors[name] = [_("Only many-to-many fields take values to add or remove.")]
    if errors:
        return errors
    key = importer.key_column
    assert key is not None
    try:
        importer.clean_row({key: probe_key, **change.set})
    except RowInvalid as exc:
        errors.update({name: messages for name, messages in exc.errors.items() if name != key})
    for name in many:
        problems = importer.check_related(name, [*change.add.get(name, []), *change.remove.get(name, [])])
        if problems:
            errors.setdefault(name, []).extend(problems)
    return errors


def start_change(
    queryset: models.QuerySet[Any],
    importer_cls: type[Importer],
    change: Change,
    *,
    user: Any = None,
    site_url: str = "",
    workers: int | None = None,
    threads: int | None = None,
    size: int | None = None,
) -> ImportJob | None:
    """A bulk change job over ``queryset``'s objects, ready to launch (None: none selected).

    ``user`` None is the command line. The objects are listed in batches of short
    transactions, as a rerun's rows are.
    """
    key = importer_cls.key_column
    assert key is not None
    model = importer_cls.get_model()
    with write_turn():
        job = ImportJob.objects.create(
            importer=importer_cls.dotted_path(),
            kind=JobKind.CHANGE,
            source_name=display_name(_("selected %(name)s") % {"name": model._meta.verbose_name_plural}),
            options=change.as_options(),
            created_by=user if getattr(user, "pk", None) else None,
            started_via=StartedVia.PERSON if user is not None else StartedVia.COMMAND_LINE,
            workers=workers,
            threads=threads,
            status=JobStatus.PREPARING,
            site_url=site_url[:255],
        )
    importer = importer_cls(starter_context(user, job.options))
    rows = (
        RawRow(number, {"object": str(pk), key: "" if value is None else str(value)}, {})
        for number, (pk, value) in enumerate(queryset.order_by("pk").values_list("pk", key), start=1)
    )
    return fill_job(job, importer, batched(rows), size)
