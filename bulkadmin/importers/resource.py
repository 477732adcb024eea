"""``ResourceImporter``: a django-import-export ``ModelResource`` run by the engine's workers.

```python
class BookImporter(ResourceImporter):
    resource_class = BookResource
```

The resource keeps its say over each row: its widgets (``ForeignKeyWidget``,
``ManyToManyWidget``, dates…) clean the cells, ``import_id_fields`` and ``get_instance`` find
the object to update, and ``before_import_row``, ``skip_row``, ``save_instance`` and
``after_import_row`` run per row inside the chunk's transaction, so a row's objects and its
outcome commit together and each row is done once. ``before_import`` and ``after_import`` run
once per job, in the runner, with a dataset of the file's header (the rows are in chunks).
A widget's or the model's validation error becomes an error on that row and column.

Not applicable, and refused with a message: ``use_bulk`` (it skips ``save()`` and signals,
which is what bulkadmin exists to keep) and ``CachedInstanceLoader`` (it loads the whole
dataset). Dry runs and ``use_transactions`` are moot: the report validates without writing,
and the engine owns the transactions.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from django.core.exceptions import (
    FieldDoesNotExist,
    ImproperlyConfigured,
    ObjectDoesNotExist,
    ValidationError,
)
from django.db import models
from django.utils.translation import gettext as _

from bulkadmin.importers.base import NON_FIELD, Cleaned, Column, Errors, Exists, Importer, RowInvalid

if TYPE_CHECKING:
    from import_export.resources import ModelResource


class ResourceImporter(Importer):
    """Set ``resource_class`` to a ``ModelResource``."""

    resource_class: ClassVar[type[ModelResource]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        resource_class = getattr(cls, "resource_class", None)
        if resource_class is None:
            return
        meta = resource_class._meta
        if meta.use_bulk:
            raise ImproperlyConfigured(
                f"{resource_class.__name__} has use_bulk = True, which saves rows with bulk_create and "
                "skips save() and signals; bulkadmin runs every row through save(). Drop use_bulk."
            )
        from import_export.instance_loaders import CachedInstanceLoader

        if issubclass(meta.instance_loader_class, CachedInstanceLoader):
            raise ImproperlyConfigured(
                f"{resource_class.__name__} uses CachedInstanceLoader, which loads the whole dataset "
                "at once; bulkadmin reads files in chunks. Use the default ModelInstanceLoader."
            )
        cls.model = meta.model
        fields = resource_class().get_import_fields()
        cls._by_column = {_normalized(f.column_name): f.column_name for f in fields if f.column_name}
        cls.columns = tuple(Column(name) for name in cls._by_column)
        probe = resource_class()
        id_columns = [probe.fields[n].column_name for n in probe.get_import_id_fields() if n in probe.fields]
        cls.key_column = _normalized(id_columns[0]) if len(id_columns) == 1 else None

    _by_column: ClassVar[dict[str, str]]

    @classmethod
    def for_resource(cls, resource_class: type[ModelResource]) -> type[ResourceImporter]:
        """An importer for a resource, named after it (for an admin's ``resource_classes``)."""
        return type(
            f"{resource_class.__name__}Importer",
            (cls,),
            {"resource_class": resource_class, "__module__": resource_class.__module__},
        )

    @classmethod
    def verbose_name(cls) -> str:
        return cls.label or resource_display_name(cls.resource_class)

    # ---- validation ------------------------------------------------------------------------
    def _resource(self) -> ModelResource:
        resource = getattr(self, "_instance", None)
        if resource is None:
            resource = self._instance = self.resource_class()
        return resource

    def clean_row(self, values: Mapping[str, str]) -> Cleaned:
        """The row as the resource reads it: its own column names, each cell through its widget.

        Widgets that look objects up (foreign keys, many-to-many) are left to ``check_rows``.
        """
        from import_export.widgets import ForeignKeyWidget, ManyToManyWidget

        row = self._row(values)
        errors: Errors = {}
        for field in self._resource().get_import_fields():
            if field.column_name not in row or isinstance(field.widget, ForeignKeyWidget | ManyToManyWidget):
                continue
            try:
                field.clean(row)
            except (ValueError, ValidationError) as exc:
                errors[_normalized(field.column_name)] = _messages(exc)
        if errors:
            raise RowInvalid(errors)
        return dict(row)

    def check_rows(self, rows: Sequence[tuple[int, Cleaned]]) -> dict[int, Errors]:
        """Related objects, through the resource's own widgets (their queries, per row)."""
        from import_export.widgets import ForeignKeyWidget, ManyToManyWidget

        related = [
            f
            for f in self._resource().get_import_fields()
            if isinstance(f.widget, ForeignKeyWidget | ManyToManyWidget)
        ]
        errors: dict[int, Errors] = {}
        resource = self._resource()
        loader = resource._meta.instance_loader_class(resource, None)
        for number, row in rows:
            if not self.context.update_existing and resource.get_import_id_fields():
                existing = resource.get_instance(loader, row)
                if existing is not None:
                    errors.setdefault(number, {})[self.key_column or NON_FIELD] = [self._exists(existing)]
            for field in related:
                if field.column_name not in row:
                    continue
                try:
                    field.clean(row)
                except ObjectDoesNotExist:
                    value = row[field.column_name]
                    message = _("No %(model)s “%(value)s”.") % {
                        "model": field.widget.model._meta.verbose_name,
                        "value": value,
                    }
                    errors.setdefault(number, {})[_normalized(field.column_name)] = [message]
                except (ValueError, ValidationError) as exc:
                    errors.setdefault(number, {})[_normalized(field.column_name)] = _messages(exc)
        return errors

    def _row(self, values: Mapping[str, str]) -> OrderedDict[str, Any]:
        return OrderedDict((self._by_column[k], v) for k, v in values.items() if k in self._by_column)

    # ---- the job ---------------------------------------------------------------------------
    def _dataset(self) -> Any:
        import tablib

        return tablib.Dataset(headers=list(self._by_column.values()))

    def before_job(self) -> None:
        self._resource().before_import(self._dataset())

    def after_job(self, total: int) -> None:
        result = self._resource().get_result_class()()
        result.total_rows = total
        self._resource().after_import(self._dataset(), result)

    # ---- import ----------------------------------------------------------------------------
    def setup(self) -> None:
        self._instance = self.resource_class()
        self._loader = self._instance._meta.instance_loader_class(self._instance, None)

    def import_row(self, cleaned: Cleaned) -> models.Model:
        """The resource's ``import_row``, minus its catch-all: a failure fails this row alone."""
        if getattr(self, "_loader", None) is None:
            self.setup()
        resource, row = self._instance, OrderedDict(cleaned)
        kwargs: dict[str, Any] = {"dry_run": False, "using_transactions": True}
        resource.before_import_row(row, **kwargs)
        instance, new = resource.get_or_init_instance(self._loader, row)
        self.created = bool(new)
        if not new and not self.context.update_existing:
            raise RowInvalid({self.key_column or NON_FIELD: [self._exists(instance)]})
        if not new:
            self.remember(instance, self._model_fields_of(resource, row))
        resource.after_init_instance(instance, new, row, **kwargs)
        original = copy.deepcopy(instance) if resource._meta.skip_unchanged else None
        if resource.for_delete(row, instance):
            if not new:
                resource.delete_instance(instance, row, **kwargs)
            deleted: models.Model = instance
            return deleted
        import_errors: dict[str, Any] = {}
        try:
            resource.import_instance(instance, row, **kwargs)
        except ValidationError as exc:
            import_errors = exc.update_error_dict(import_errors)
        if not resource.skip_row(instance, original, row, import_errors):
            try:
                resource.validate_instance(instance, import_errors)
            except ValidationError as exc:
                raise RowInvalid(self._errors(exc)) from exc
            resource.save_instance(instance, new, row, **kwargs)
            resource.save_m2m(instance, row, **kwargs)
        row_result = resource.get_row_result_class()()
        row_result.import_type = row_result.IMPORT_TYPE_NEW if new else row_result.IMPORT_TYPE_UPDATE
        row_result.add_instance_info(instance)
        resource.after_import_row(row, row_result, **kwargs)
        saved: models.Model = instance
        return saved

    def _model_fields_of(self, resource: ModelResource, row: Mapping[str, Any]) -> list[str]:
        """The model's own fields the row sets: what a revert puts back."""
        model = resource._meta.model
        names = []
        for field in resource.get_import_fields():
            if field.column_name not in row or not field.attribute or "__" in field.attribute:
                continue
            try:
                model_field = model._meta.get_field(field.attribute)
            except FieldDoesNotExist:
                continue  # an attribute that is not a field (a property): not kept
            if isinstance(model_field, models.Field) and (model_field.concrete or model_field.many_to_many):
                names.append(field.attribute)
        return names

    def _exists(self, instance: models.Model) -> str:
        return Exists(
            _("The %(model)s “%(object)s” already exists.")
            % {"model": instance._meta.verbose_name, "object": instance}
        )

    def _errors(self, exc: ValidationError) -> Errors:
        """A model's or widget's ``ValidationError`` by our column names."""
        if not hasattr(exc, "error_dict"):
            return {NON_FIELD: list(exc.messages)}
        columns = {f.attribute: _normalized(f.column_name) for f in self._resource().get_import_fields()}
        return {columns.get(name, NON_FIELD): list(messages) for name, messages in exc.message_dict.items()}


def resource_display_name(resource_class: type[ModelResource]) -> str:
    name = getattr(resource_class, "get_display_name", None)
    display = name() if callable(name) else resource_class.__name__
    return str(display)


def _normalized(column: str) -> str:
    from bulkadmin.parsing import normalize_header

    return normalize_header(column)


def _messages(exc: Exception) -> list[str]:
    if isinstance(exc, ValidationError):
        return list(exc.messages)
    return [str(exc)]
