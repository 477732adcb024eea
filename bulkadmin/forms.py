"""Forms of the admin flow: the upload, the column mapping, the confirm click, and the correction
of a failed row."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from django import forms
from django.core.exceptions import ImproperlyConfigured
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from bulkadmin import conf
from bulkadmin.columns import problems
from bulkadmin.importers.base import Importer, RowInvalid
from bulkadmin.importers.fields import parse_bool, split_list
from bulkadmin.importers.registry import get_importer_class
from bulkadmin.parsing import FORMATS, Sample
from bulkadmin.validation import MASK

ACCEPT = ".csv,.tsv,.tab,.txt,.xlsx,.json,text/csv,application/json"


class UploadForm(forms.Form):
    file = forms.FileField(
        label=_("File"),
        help_text=format_lazy(
            _("{formats}, with a header row. Nothing is imported before you confirm the report."),
            formats=", ".join(f.upper() for f in FORMATS),
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ACCEPT}),
    )
    importer = forms.ChoiceField(label=_("Import"))
    update_existing = forms.BooleanField(
        label=_("Update existing objects instead of rejecting their rows"),
        required=False,
        help_text=_("An existing object is found by the importer's key column."),
    )
    send_password_email = forms.BooleanField(
        label=_("Email new users a link to set their password"),
        required=False,
        help_text=_("Only users with an email address; needs working email settings."),
    )
    workers = forms.IntegerField(
        label=_("Worker processes"),
        required=False,
        min_value=1,
        help_text=_("Leave blank for one per core."),
    )

    def __init__(
        self,
        *args: Any,
        importer_choices: list[tuple[str, str]],
        can_update: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # Only options this user can use, with these importers: not a refusal after the upload.
        if not can_update:
            del self.fields["update_existing"]
        if not any(_sends_password_email(path) for path, _label in importer_choices):
            del self.fields["send_password_email"]
        field = self.fields["importer"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = importer_choices
        if importer_choices and not self.initial.get("importer"):
            self.initial["importer"] = importer_choices[0][0]
        self.fields["workers"].widget.attrs["max"] = conf.max_workers()

    def clean_workers(self) -> int | None:
        workers: int | None = self.cleaned_data.get("workers")
        limit = conf.max_workers()
        if workers is not None and workers > limit:
            raise forms.ValidationError(f"At most {limit} worker processes on this server.")
        return workers

    def importer_class(self) -> type[Importer]:
        try:
            return get_importer_class(self.cleaned_data["importer"])
        except ImproperlyConfigured as exc:  # the settings changed under the form
            raise forms.ValidationError(str(exc)) from exc

    def job_options(self) -> dict[str, Any]:
        return {
            "update_existing": bool(self.cleaned_data.get("update_existing")),
            "send_password_email": bool(self.cleaned_data.get("send_password_email")),
        }


def _sends_password_email(path: str) -> bool:
    from bulkadmin.importers.users import UserImporter

    try:
        return issubclass(get_importer_class(path), UserImporter)
    except ImproperlyConfigured:
        return False


class ConfirmForm(forms.Form):
    token = forms.CharField(widget=forms.HiddenInput)


class MappingForm(forms.Form):
    """Where each of a file's columns goes: one of the importer's columns, or nowhere."""

    token = forms.CharField(widget=forms.HiddenInput)

    def __init__(
        self,
        *args: Any,
        sample: Sample,
        importer_cls: type[Importer],
        mapping: dict[str, str | None],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.importer_cls = importer_cls
        required = set(importer_cls.required_columns())
        choices = [("", _("— ignore this column —"))] + [
            (c.name, c.name + (" *" if c.name in required else "")) for c in importer_cls.columns
        ]
        secret = importer_cls.secret_columns()
        self.rows = []
        for index, header in enumerate(sample.headers):
            name = f"column_{index}"
            written = sample.written[index] if index < len(sample.written) else header
            self.fields[name] = forms.ChoiceField(
                label=written, choices=choices, required=False, initial=mapping.get(header) or ""
            )
            examples = [row[index] for row in sample.rows if index < len(row) and row[index]]
            if mapping.get(header, header) in secret:
                examples = [MASK for _example in examples]  # a password is never shown
            self.rows.append((header, written, examples, name))

    def bound_rows(self) -> list[tuple[str, list[str], forms.BoundField]]:
        """Each file column as written in the file, its samples, and its select."""
        return [(written, examples, self[name]) for _header, written, examples, name in self.rows]

    def mapping(self) -> dict[str, str | None]:
        return {
            header: self.cleaned_data.get(name) or None for header, _written, _examples, name in self.rows
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not self.errors:
            for problem in problems(self.mapping(), self.importer_cls):
                self.add_error(None, problem)
        return cleaned


class FailedRowForm(forms.Form):
    """One field per column of the row; a secret column is write-only: blank keeps the old value."""

    def __init__(self, *args: Any, importer: Importer, values: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.importer = importer
        secret = importer.secret_columns()
        described = {c.name: c for c in importer.columns}
        names = [c for c in importer.column_names() if c in values or c in secret]
        names += [c for c in values if c not in described]
        for name in names:
            column = described.get(name)
            help_text = column.help_text if column else ""
            label = importer.column_title(name)
            if name in secret:
                self.fields[name] = forms.CharField(
                    label=label,
                    required=False,
                    strip=False,
                    widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
                    help_text=_("Never shown. Leave blank to keep the current value, if any."),
                )
                continue
            field = importer.edit_field(name) if column else None
            value = values.get(name, "")
            if field is None:
                field = forms.CharField(
                    required=False, strip=False, widget=forms.TextInput(attrs={"class": "vTextField"})
                )
                field.initial = value
            elif isinstance(field, forms.NullBooleanField):
                try:
                    field.initial = parse_bool(name, value, default=None)
                except RowInvalid:
                    field = forms.CharField(required=False, strip=False, initial=value)  # as typed
            elif isinstance(field, forms.MultipleChoiceField):
                field.initial = split_list(value)
                offered = list(cast(Iterable[tuple[Any, Any]], field.choices))
                known = {str(choice) for choice, _label in offered}
                # a value that matches no option (a typo to fix) stays visible, selected
                field.choices = [*offered, *((v, v) for v in field.initial if v not in known)]
            else:
                field.initial = value
            field.label, field.help_text = label, help_text
            self.fields[name] = field

    def cells(self) -> dict[str, str]:
        """The corrected values as a file's cells: what the row is checked and imported from."""
        cells: dict[str, str] = {}
        for name, value in self.cleaned_data.items():
            if isinstance(value, bool):
                cells[name] = "true" if value else "false"
            elif value is None:
                cells[name] = ""
            elif isinstance(value, list | tuple):
                cells[name] = ";".join(str(v) for v in value)
            else:
                cells[name] = str(value)
        return cells

    def add_row_errors(self, errors: dict[str, list[str]]) -> None:
        for column, messages in errors.items():
            for message in messages:
                self.add_error(column if column in self.fields else None, message)


LEAVE = _("— leave unchanged —")


class BulkChangeForm(forms.Form):
    """The change a bulk change makes: a value per field, or nothing to leave it; related objects
    to add to or remove from a many-to-many field. Checked by the importer (``changes.check``)."""

    #: Marks the form's own POST, as against the changelist's that opens it.
    bulkadmin_change = forms.CharField(widget=forms.HiddenInput, initial="1")

    def __init__(self, importer: Importer, *args: Any, **kwargs: Any) -> None:
        from bulkadmin.changes import changeable_fields

        super().__init__(*args, **kwargs)
        self.importer = importer
        plain, many = changeable_fields(type(importer))
        self.plain, self.many = plain, many
        for name in plain:  # (a column's help speaks of a file's cells: not shown here)
            field = self._plain_field(name)
            field.label = importer.column_title(name)
            self.fields[name] = field
        for name in many:
            title = importer.column_title(name)
            for verb, label in (("add", _("Add to %(field)s")), ("remove", _("Remove from %(field)s"))):
                field = self._many_field(name)
                field.label = label % {"field": title.lower()}
                self.fields[f"{verb}__{name}"] = field

    def _plain_field(self, name: str) -> forms.Field:
        field = self.importer.edit_field(name)
        if isinstance(field, forms.NullBooleanField):
            return forms.ChoiceField(
                required=False, choices=[("", LEAVE), ("true", _("Yes")), ("false", _("No"))]
            )
        if isinstance(field, forms.ChoiceField) and not isinstance(field, forms.MultipleChoiceField):
            offered = list(cast(Iterable[tuple[Any, Any]], field.choices))
            field.choices = [("", LEAVE), *(choice for choice in offered if choice[0] != "")]
            return field
        return forms.CharField(
            required=False,
            strip=False,
            widget=forms.TextInput(attrs={"class": "vTextField", "placeholder": str(LEAVE)}),
        )

    def _many_field(self, name: str) -> forms.Field:
        field = self.importer.edit_field(name)
        if isinstance(field, forms.MultipleChoiceField):
            return forms.MultipleChoiceField(required=False, choices=field.choices)
        return forms.CharField(
            required=False,
            widget=forms.TextInput(attrs={"class": "vTextField"}),
            help_text=_("Values separated by “;”."),
        )

    def change(self) -> Any:
        from bulkadmin.changes import Change

        data = self.cleaned_data
        change = Change()
        for name in self.plain:
            value = data.get(name)
            if value not in (None, ""):
                change.set[name] = str(value)
        for name in self.many:
            for verb, target in (("add", change.add), ("remove", change.remove)):
                value = data.get(f"{verb}__{name}")
                values = split_list(value) if isinstance(value, str) else [str(v) for v in value or []]
                if values:
                    target[name] = values
        return change

    def add_problems(self, name: str, errors: list[str]) -> None:
        """The importer's word on the change, on the field it is about."""
        if name in self.fields:
            self.add_error(name, errors)
        elif f"add__{name}" in self.fields:
            self.add_error(f"add__{name}", errors)
        else:
            self.add_error(None, errors)
