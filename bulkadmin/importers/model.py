"""``ModelImporter``: a complete importer for a model in a few declarative lines.

```python
class BookImporter(ModelImporter):
    model = Book
    fields = ["isbn", "title", "author", "tags"]
    key_field = "isbn"                            # duplicates in a file, and update mode
    lookups = {"author": "name", "tags": "name"}  # related objects by a unique field
```

Cells are cleaned as a ``ModelForm`` would clean them (each field's form field, then the model
field's validators), with no query per row; choices take their value or their label; related
objects are found in batched reads, by the field ``lookups`` names or by primary key. Rows are
saved through ``save()``: signals fire, many-to-many fields are set after the save, and a
multi-table-inheritance child saves its parents. In update mode, the row's ``key_field`` finds
the object, and a blank cell leaves its value alone.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

from django import forms
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models
from django.utils.functional import lazy
from django.utils.translation import gettext as _

from bulkadmin.importers.base import Cleaned, Column, Errors, Exists, Importer, RowInvalid
from bulkadmin.importers.fields import parse_bool, shorten, split_list

#: An XLSX date cell reads as a midnight timestamp; a DateField takes its date.
_MIDNIGHT = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T]00:00(:00(\.0+)?)?$")
_UNSUPPORTED = (models.FileField, models.BinaryField)
#: Held while a class's field caches are filled: a worker's threads share one importer.
_CACHES = threading.RLock()
#: Related objects offered as a select when correcting a row; more, and it is a text box.
EDIT_CHOICES = 500


class ModelImporter(Importer):
    """Set ``model``; optionally ``fields``, ``key_field``, ``lookups`` and ``separator``."""

    #: The model's fields a file may hold; default: every editable one but the primary key.
    fields: ClassVar[Sequence[str]] = ()
    #: The field that identifies an object: duplicates within a file, and update mode.
    key_field: ClassVar[str | None] = None
    #: Related objects (foreign keys, many-to-many) found by this field instead of the pk.
    lookups: ClassVar[Mapping[str, str]] = {}
    #: Between the values of a many-to-many cell.
    separator: ClassVar[str] = ";"

    _model_fields: ClassVar[dict[str, models.Field[Any, Any]]]
    _form_fields: ClassVar[dict[str, forms.Field]]
    _model_validators: ClassVar[dict[str, list[Callable[[Any], None]]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.key_column = cls.key_field
        if cls.__dict__.get("columns"):
            return  # described by hand; the model is read when first needed (get_model())
        if getattr(cls, "model", None) is None:
            return  # an abstract base of importers
        cls.columns = tuple(cls._column(name, field) for name, field in cls._fields().items())

    @classmethod
    def _fields(cls) -> dict[str, models.Field[Any, Any]]:
        """The model fields a file may hold, by name: worked out once per class."""
        if "_model_fields" not in cls.__dict__:
            with _CACHES:  # a worker's threads share the importer: one of them fills the caches
                if "_model_fields" not in cls.__dict__:
                    found = {name: cls._model_field(name) for name in cls.fields or cls._default_fields()}
                    if cls.key_field is not None and cls.key_field not in found:
                        raise ImproperlyConfigured(
                            f"{cls.__name__}.key_field {cls.key_field!r} is not in its fields."
                        )
                    cls._form_fields = {}
                    cls._model_validators = {}
                    cls._model_fields = found  # last: its presence says the caches are ready
        return cls._model_fields

    # ---- describing the model ------------------------------------------------------------
    @classmethod
    def _default_fields(cls) -> list[str]:
        meta = cls.get_model()._meta
        fields = [
            f
            for f in [*meta.concrete_fields, *meta.many_to_many]
            if f.editable and not f.primary_key and not getattr(f, "parent_link", False)
        ]
        return [f.name for f in fields if not isinstance(f, _UNSUPPORTED) and not f.auto_created]

    @classmethod
    def _model_field(cls, name: str) -> models.Field[Any, Any]:
        model = cls.get_model()
        try:
            field = model._meta.get_field(name)
        except Exception as exc:
            raise ImproperlyConfigured(f"{cls.__name__}: {model.__name__} has no field {name!r}.") from exc
        # (a many-to-many field is not "concrete" on Django 6: it has no column of its own)
        if (
            not isinstance(field, models.Field)
            or isinstance(field, _UNSUPPORTED)
            or not (field.concrete or field.many_to_many)
        ):
            raise ImproperlyConfigured(f"{cls.__name__}: the field {name!r} cannot be imported from a cell.")
        return field

    @classmethod
    def _column(cls, name: str, field: models.Field[Any, Any]) -> Column:
        required = name == cls.key_field or (
            not field.blank and not field.has_default() and not field.many_to_many and not field.null
        )
        # lazy: translated when shown, in the reader's language (not once, at import time)
        help_text = lazy(cls._help, str)(name, field)
        return Column(name, required=required, help_text=help_text, example=cls._example(field))

    @staticmethod
    def _example(field: models.Field[Any, Any]) -> str:
        """A value of the field's kind, as staff would write it, for the template file."""
        if field.many_to_many:
            return "first;second"
        if field.choices:
            return str(next(iter(field.flatchoices), ("", ""))[1])
        examples: list[tuple[type[models.Field[Any, Any]], str]] = [
            (models.BooleanField, "true"),
            (models.DateTimeField, "2024-01-31 09:30"),
            (models.DateField, "2024-01-31"),
            (models.TimeField, "09:30"),
            (models.DecimalField, "12.50"),
            (models.FloatField, "1.5"),
            (models.IntegerField, "42"),
            (models.EmailField, "someone@example.com"),
            (models.URLField, "https://example.com/"),
        ]
        for kind, example in examples:
            if isinstance(field, kind):
                return example
        return ""

    @classmethod
    def _help(cls, name: str, field: models.Field[Any, Any]) -> str:
        parts = [str(field.help_text)] if field.help_text else []
        if field.is_relation and field.related_model is not None:
            by = cls.lookups.get(name, "pk")
            target = str(field.related_model._meta.verbose_name)
            if field.many_to_many:
                parts.append(
                    _("Each %(target)s by its %(by)s, separated by “%(separator)s”.")
                    % {"target": target, "by": by, "separator": cls.separator}
                )
            else:
                parts.append(_("The %(target)s by its %(by)s.") % {"target": target, "by": by})
        elif field.choices:
            choices = ", ".join(str(value) for value, _label in field.flatchoices)
            parts.append(_("One of: %(choices)s.") % {"choices": choices})
        elif isinstance(field, models.BooleanField):
            parts.append(_("true/false."))
        elif isinstance(field, models.DateTimeField):
            parts.append(_("A date and time: YYYY-MM-DD HH:MM."))
        elif isinstance(field, models.DateField):
            parts.append(_("A date: YYYY-MM-DD."))
        return " ".join(parts)

    def edit_field(self, name: str) -> Any:
        field = self._fields().get(name)
        if field is None:
            return None
        if isinstance(field, models.BooleanField):
            return forms.NullBooleanField(required=False, widget=forms.NullBooleanSelect)
        if field.choices:
            return forms.ChoiceField(
                required=False, choices=[("", "—"), *((str(v), str(label)) for v, label in field.flatchoices)]
            )
        if field.many_to_many and field.related_model is not None:
            by = self.lookups.get(name, "pk")
            options = list(
                field.related_model._default_manager.values_list(by, flat=True)[: EDIT_CHOICES + 1]
            )
            if len(options) <= EDIT_CHOICES:
                return forms.MultipleChoiceField(
                    required=False, choices=[(str(o), str(o)) for o in options], widget=forms.SelectMultiple
                )
        return None

    # ---- validation: no queries per row ----------------------------------------------------
    def clean_row(self, values: Mapping[str, str]) -> Cleaned:
        cleaned: Cleaned = {}
        errors: Errors = {}
        updating = self.context.update_existing
        for name, field in self._fields().items():
            if name not in values:
                continue
            text = values[name].strip()
            if text == "":
                if updating and name != self.key_field:
                    continue  # a blank cell leaves the value alone
                if name == self.key_field or (not field.blank and not field.has_default()):
                    errors[name] = [_("This field is required.")]
                elif field.many_to_many:
                    cleaned[name] = []
                elif not field.has_default():
                    cleaned[name] = None if field.null else ""
                continue
            try:
                cleaned[name] = self._clean_cell(name, field, text)
            except ValidationError as exc:
                found = shorten(text)
                errors[name] = [
                    _("%(message)s Found “%(value)s”.") % {"message": message, "value": found}
                    for message in exc.messages
                ]
        for name in self.required_columns():
            if name not in values and (not updating or name == self.key_field):
                errors.setdefault(name, [_("This field is required.")])
        if errors:
            raise RowInvalid(errors)
        return cleaned

    def _clean_cell(self, name: str, field: models.Field[Any, Any], text: str) -> Any:
        if field.many_to_many:
            return split_list(text, self.separator)
        if field.is_relation:
            return text  # found in check_rows (validation) and prefetch (import), in batches
        if field.choices:
            return self._choice(field, text)
        if isinstance(field, models.BooleanField):
            try:
                return parse_bool(name, text, default=None)
            except RowInvalid as exc:
                raise ValidationError(_("Not a yes/no value; use true or false.")) from exc
        if isinstance(field, models.JSONField):
            try:
                return json.loads(text)
            except ValueError as exc:
                raise ValidationError(_("Enter valid JSON.")) from exc
        if isinstance(field, models.DateField) and not isinstance(field, models.DateTimeField):
            text = _MIDNIGHT.sub(r"\1", text)
        value = self._form_field(name, field).clean(text)
        _run_validators(field, self._model_validators[name], value)
        return value

    @classmethod
    def _form_field(cls, name: str, field: models.Field[Any, Any]) -> forms.Field:
        if name not in cls._form_fields:
            with _CACHES:
                if name not in cls._form_fields:
                    if isinstance(field, models.URLField):
                        form_field = field.formfield(required=False, assume_scheme="https")  # Django 6's
                    else:
                        form_field = field.formfield(required=False)
                    if form_field is None:
                        raise ImproperlyConfigured(f"{cls.__name__}: the field {name!r} has no form field.")
                    # The model field's validators the form field has not just run: most are the
                    # same (max length, email), and running them twice was a tenth of a row's import.
                    cls._model_validators[name] = [
                        v for v in field.validators if v not in form_field.validators
                    ]
                    cls._form_fields[name] = form_field  # last: its presence says both are there
        return cls._form_fields[name]

    @staticmethod
    def _choice(field: models.Field[Any, Any], text: str) -> Any:
        """A choice by its stored value or by its label, whatever the case."""
        wanted = text.casefold()
        for value, label in field.flatchoices:
            if wanted in (str(value).casefold(), str(label).casefold()):
                return field.to_python(value)
        shown = ", ".join(str(value) for value, _label in field.flatchoices)
        raise ValidationError(_("Not one of the choices (%(choices)s).") % {"choices": shown})

    def check_rows(self, rows: Sequence[tuple[int, Cleaned]]) -> dict[int, Errors]:
        errors: dict[int, Errors] = {}
        for name, field in self._related_fields().items():
            wanted = {value for _, cleaned in rows for value in _as_list(cleaned.get(name))}
            found = self._find_related(name, field, wanted)
            for number, cleaned in rows:
                unknown = [value for value in _as_list(cleaned.get(name)) if value not in found]
                if unknown:
                    target = field.related_model._meta.verbose_name if field.related_model else name
                    errors.setdefault(number, {})[name] = [
                        _("Unknown %(target)s “%(value)s”.") % {"target": target, "value": shorten(v)}
                        for v in unknown
                    ]
        if self.key_field is not None and not self.context.update_existing:
            key = self.key_field
            existing = {
                str(value)
                for value in self.get_model()
                ._default_manager.filter(
                    **{f"{key}__in": [cleaned[key] for _, cleaned in rows if key in cleaned]}
                )
                .values_list(key, flat=True)
            }
            noun = self.get_model()._meta.verbose_name
            for number, cleaned in rows:
                if str(cleaned.get(key)) in existing:
                    message = Exists(
                        _("A %(model)s with the %(field)s “%(value)s” already exists.")
                        % {"model": noun, "field": key, "value": shorten(str(cleaned[key]))}
                    )
                    errors.setdefault(number, {}).setdefault(key, []).append(message)
        return errors

    @classmethod
    def _related_fields(cls) -> dict[str, models.Field[Any, Any]]:
        return {name: field for name, field in cls._fields().items() if field.is_relation}

    def _find_related(
        self, name: str, field: models.Field[Any, Any], values: Iterable[str]
    ) -> dict[str, Any]:
        """The related objects' primary keys by the cell values that name them, in one query."""
        related = field.related_model
        assert related is not None and not isinstance(related, str)
        by = self.lookups.get(name, "pk")
        lookup_field = related._meta.pk if by == "pk" else related._meta.get_field(by)
        assert isinstance(lookup_field, models.Field)
        usable: dict[Any, str] = {}
        for value in values:
            try:
                usable[lookup_field.to_python(value)] = value
            except ValidationError:
                continue  # "abc" for an integer key: unknown
        if not usable:
            return {}
        found = related._default_manager.filter(**{f"{by}__in": list(usable)}).values_list(by, "pk")
        return {usable[key]: pk for key, pk in found if key in usable}

    # ---- import ----------------------------------------------------------------------------
    def setup(self) -> None:
        self._related: dict[str, dict[str, Any]] = {}

    def prefetch(self, rows: Sequence[Cleaned]) -> None:
        """The chunk's related objects, a query per related field (not per row)."""
        related = getattr(self, "_related", None)
        if related is None:
            self.setup()
        for name, field in self._related_fields().items():
            cache = self._related.setdefault(name, {})
            missing = {v for cleaned in rows for v in _as_list(cleaned.get(name)) if v not in cache}
            if missing:
                cache.update(self._find_related(name, field, missing))

    def _related_pk(self, name: str, field: models.Field[Any, Any], value: str) -> Any:
        if getattr(self, "_related", None) is None:
            self.setup()
        cache = self._related.setdefault(name, {})
        if value not in cache:
            cache.update(self._find_related(name, field, [value]))
        if value not in cache:
            target = field.related_model._meta.verbose_name if field.related_model else name
            raise RowInvalid.single(
                name, _("Unknown %(target)s “%(value)s”.") % {"target": target, "value": shorten(value)}
            )
        return cache[value]

    def import_row(self, cleaned: Cleaned) -> models.Model:
        plain: dict[str, Any] = {}
        many: dict[str, list[Any]] = {}
        for name, value in cleaned.items():
            field = self._fields()[name]
            if field.many_to_many:
                many[name] = [self._related_pk(name, field, v) for v in value]
            elif field.is_relation:
                plain[field.attname] = (
                    self._related_pk(name, field, value) if value not in (None, "") else None
                )
            else:
                plain[name] = value
        obj = self._existing(cleaned) if self.context.update_existing else None
        created = self.created = obj is None
        if obj is None:
            obj = self.get_model()(**plain)
        else:
            self.remember(obj, [name for name in cleaned if name != self.key_field])
            for attname, value in plain.items():
                setattr(obj, attname, value)
        self.before_save(obj, cleaned, created)
        obj.save()
        for name, pks in many.items():
            manager = getattr(obj, name)
            if created:
                if pks:
                    manager.add(*pks)
            else:
                manager.set(pks)
        return obj

    def related_ids(self, name: str, values: Sequence[str]) -> list[Any]:
        field = self._fields()[name]
        return [self._related_pk(name, field, value) for value in values]

    def check_related(self, name: str, values: Sequence[str]) -> list[str]:
        field = self._fields().get(name)
        if field is None or not field.many_to_many:
            return super().check_related(name, values)
        found = self._find_related(name, field, values)
        target = field.related_model._meta.verbose_name if field.related_model else name
        return [
            _("Unknown %(target)s “%(value)s”.") % {"target": target, "value": shorten(value)}
            for value in values
            if value not in found
        ]

    def _existing(self, cleaned: Cleaned) -> models.Model | None:
        if self.key_field is None or cleaned.get(self.key_field) in (None, ""):
            return None
        return self.get_model()._default_manager.filter(**{self.key_field: cleaned[self.key_field]}).first()

    def before_save(self, obj: models.Model, cleaned: Cleaned, created: bool) -> None:
        """Per-object setup before ``save()``: override to fill fields the file does not hold."""


def _as_list(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    return list(value) if isinstance(value, list) else [value]


def _run_validators(
    field: models.Field[Any, Any], validators: list[Callable[[Any], None]], value: Any
) -> None:
    """``Field.run_validators`` for some of its validators: the field's messages, every error."""
    if value in field.empty_values or not validators:
        return
    errors: list[ValidationError] = []
    for validator in validators:
        try:
            validator(value)
        except ValidationError as exc:
            code = getattr(exc, "code", None)
            if code is not None and code in field.error_messages:
                exc.message = field.error_messages[code]
            errors.extend(exc.error_list)
    if errors:
        raise ValidationError(errors)
