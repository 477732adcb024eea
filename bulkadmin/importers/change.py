"""``ChangeImporter``: what runs a bulk change job's rows, one per selected object.

A bulk change is an update through the model's own importer: each row names an object (its
primary key and its key field) and the job's options hold the change, as the cells a file
would give (``set``) and many-to-many values to ``add`` or ``remove``. So validation,
permissions and privilege rules are the importer's, each object is saved through ``save()``,
and what it changed is recorded for a revert like any update.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from django.db import models
from django.utils.translation import gettext as _

from bulkadmin.importers.base import NON_FIELD, Cleaned, Column, Errors, Importer, RowInvalid


class ChangeImporter(Importer):
    """Wraps the model's importer (a ``ModelImporter`` with a ``key_field``)."""

    label = "Bulk change"
    columns: ClassVar[tuple[Column, ...]] = (Column("object"),)

    def __init__(self, inner: Importer) -> None:
        super().__init__(inner.context)
        self.inner = inner
        change = inner.context.options.get("change") or {}
        self.cells: dict[str, str] = dict(change.get("set") or {})
        self.add: dict[str, list[str]] = dict(change.get("add") or {})
        self.remove: dict[str, list[str]] = dict(change.get("remove") or {})

    @property
    def _last(self) -> threading.local:
        return self.inner._last  # what the inner importer's row did is this row's

    @classmethod
    def columns_for(cls, importer_cls: type[Importer]) -> list[str]:
        return ["object", *([importer_cls.key_column] if importer_cls.key_column else [])]

    @property
    def key(self) -> str:
        key = self.inner.key_column
        if key is None:
            raise RowInvalid.single(NON_FIELD, _("This importer has no key field to find objects by."))
        return key

    def clean_row(self, values: Mapping[str, Any]) -> Cleaned:
        key = self.key
        return {
            "object": values.get("object"),
            "row": self.inner.clean_row({key: values.get(key, ""), **self.cells}),
        }

    def prepare_row(self, cleaned: Cleaned) -> Cleaned:
        return {**cleaned, "row": self.inner.prepare_row(cleaned["row"])}

    def setup(self) -> None:
        self.inner.setup()

    def prefetch(self, rows: Sequence[Cleaned]) -> None:
        self.inner.prefetch([cleaned["row"] for cleaned in rows])

    def import_row(self, cleaned: Cleaned) -> models.Model:
        key, row = self.key, cleaned["row"]
        model = self.inner.get_model()
        if not model._default_manager.filter(pk=cleaned["object"], **{key: row.get(key)}).exists():
            raise RowInvalid.single(
                NON_FIELD,
                _("This object no longer exists, or its %(key)s changed since it was chosen.") % {"key": key},
            )
        obj = self.inner.import_row(row)
        for name, values in self.add.items():
            self.remember(obj, [name])
            getattr(obj, name).add(*self.inner.related_ids(name, values))
        for name, values in self.remove.items():
            self.remember(obj, [name])
            getattr(obj, name).remove(*self.inner.related_ids(name, values))
        self.created = False
        return obj

    def explain_error(self, cleaned: Cleaned, exc: Exception) -> Errors:
        return self.inner.explain_error(cleaned.get("row", {}), exc)
