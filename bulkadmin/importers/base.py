"""Base class for importers.

An importer is used in two places: in the web request or the command line, where
``clean_row`` and ``check_rows`` validate a file without writing anything, and in the
worker processes, where ``setup`` runs once, ``prepare_row`` does CPU-heavy work outside any
transaction and ``import_row`` saves one object through the ORM inside the chunk's transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, overload

from django.db import models
from django.utils.translation import gettext as _

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
    from django.utils.functional import _StrOrPromise

Errors = dict[str, list[str]]
#: A row's cleaned values, as ``clean_row`` returns them.
Cleaned = dict[str, Any]

NON_FIELD = "__all__"


class Exists(str):
    """An error saying the row's object already exists: in update mode the row would update it.

    A plain ``str`` everywhere; the report counts these to offer a re-check in update mode.
    """

    __slots__ = ()


class RowInvalid(Exception):
    """A row's values are wrong; ``errors`` maps a column (or ``__all__``) to messages."""

    def __init__(self, errors: Errors) -> None:
        super().__init__(errors)
        self.errors = errors

    @classmethod
    def single(cls, column: str, message: str) -> RowInvalid:
        return cls({column: [message]})


@dataclass(frozen=True)
class Column:
    name: str
    required: bool = False
    #: Encrypted at rest, erased once imported, never shown, logged or exported.
    secret: bool = False
    #: Translatable: may be a lazy string, shown as ``str(help_text)``.
    help_text: _StrOrPromise = ""
    #: Other headers that mean this column ("surname" for last_name), for the mapping's guess.
    aliases: tuple[str, ...] = ()
    #: A value as it would be written, for the template file's example row.
    example: str = ""


@dataclass
class ImportContext:
    """Who imports and how; the same in the request and in the worker.

    Rights are explicit: ``trusted`` is set only for the command line. A missing user is never
    taken to mean trusted.
    """

    user: AbstractBaseUser | AnonymousUser | None = None
    update_existing: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    trusted: bool = False
    #: The site's base URL, for links in emails the importer sends ("" : ``SITE_URL``).
    site_url: str = ""
    #: The job the rows belong to (None while a file is only validated), for its counters.
    job_id: int | None = None

    @classmethod
    def for_person(cls, user: Any, options: dict[str, Any]) -> ImportContext:
        """A person's rights; a person whose account has since been deleted has none."""
        if user is None:
            from django.contrib.auth.models import AnonymousUser  # needs the app registry

            user = AnonymousUser()
        return cls(user=user, update_existing=bool(options.get("update_existing")), options=dict(options))

    @classmethod
    def for_command_line(cls, options: dict[str, Any]) -> ImportContext:
        """Whoever runs ``manage.py`` owns the site: all rights."""
        return cls(update_existing=bool(options.get("update_existing")), options=dict(options), trusted=True)

    @property
    def is_trusted(self) -> bool:
        """The command line and superusers may grant privileges."""
        return self.trusted or bool(getattr(self.user, "is_superuser", False))


T = TypeVar("T")


class _LastRow(Generic[T]):
    """An attribute saying what the importer's last ``import_row`` did, kept per thread."""

    def __init__(self, default: T) -> None:
        self.default = default

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, importer: None, owner: type) -> _LastRow[T]: ...
    @overload
    def __get__(self, importer: Importer, owner: type) -> T: ...
    def __get__(self, importer: Importer | None, owner: type) -> T | _LastRow[T]:
        if importer is None:
            return self
        value: T = getattr(importer._last, self.name, self.default)
        return value

    def __set__(self, importer: Importer, value: T) -> None:
        setattr(importer._last, self.name, value)


class Importer:
    """Subclass this, set ``model`` and ``columns``, and override the hooks you need."""

    label: ClassVar[str] = ""
    model: ClassVar[type[models.Model]]
    columns: ClassVar[Sequence[Column]] = ()
    #: The column that identifies an existing object (for duplicates and update mode).
    key_column: ClassVar[str | None] = None

    def __init__(self, context: ImportContext | None = None) -> None:
        self.context = context or ImportContext()

    # ---- what the last import_row did, per thread (a worker's threads share the importer) --
    #: Whether the last ``import_row`` created its object (False: it changed an existing one);
    #: an importer that updates sets it, for the object's history and its revert.
    created = _LastRow(True)
    #: Whether it deleted its object (a revert's).
    deleted = _LastRow(False)
    #: Whether it found its object already as the row wants it (a revert run twice): no
    #: history, nothing to undo.
    untouched = _LastRow(False)
    #: The fields it changed on an existing object, with their values from before
    #: (``bulkadmin.undo``); None when it created one, or did not say. Set by ``remember``.
    replaced: _LastRow[dict[str, Any] | None] = _LastRow(None)

    @property
    def _last(self) -> threading.local:
        try:
            last: threading.local = self.__dict__["_last_row"]
        except KeyError:  # not setdefault(): a threading.local made per read cost a row 4 µs
            last = self.__dict__.setdefault("_last_row", threading.local())
        return last

    def forget_last_row(self) -> None:
        vars(self._last).clear()  # every _LastRow back to its default

    def remember(self, obj: models.Model, names: Iterable[str]) -> None:
        """Call before changing fields of an existing object: a revert puts these values back.

        A field remembered twice keeps its first value, the one from before the row.
        """
        from bulkadmin import undo  # reads the app registry's fields

        kept = self.replaced or {}
        self.replaced = {**undo.snapshot(obj, [n for n in names if n not in kept]), **kept}

    # ---- describing the file -------------------------------------------------------------
    @classmethod
    def column_names(cls) -> list[str]:
        return [c.name for c in cls.columns]

    @classmethod
    def secret_columns(cls) -> frozenset[str]:
        return frozenset(c.name for c in cls.columns if c.secret)

    @classmethod
    def required_columns(cls) -> list[str]:
        return [c.name for c in cls.columns if c.required]

    @classmethod
    def column_labels(cls) -> dict[str, list[str]]:
        """Each column's names as staff may write them in a header: its own, the model field's
        verbose name, and its aliases."""
        try:
            fields = {f.name: f for f in cls.get_model()._meta.get_fields()}
        except (AttributeError, TypeError):  # no model
            fields = {}
        labels: dict[str, list[str]] = {}
        for column in cls.columns:
            names = [column.name, *column.aliases]
            verbose = getattr(fields.get(column.name), "verbose_name", None)
            if verbose:
                names.append(str(verbose))
            labels[column.name] = names
        return labels

    @classmethod
    def column_title(cls, name: str) -> str:
        """A column as a form labels it: the model field's verbose name, else its name spaced."""
        try:
            field = cls.get_model()._meta.get_field(name)
            title = str(getattr(field, "verbose_name", "") or "")
        except Exception:
            title = ""
        title = title or name.replace("_", " ")
        return title[:1].upper() + title[1:]

    def edit_field(self, name: str) -> Any:
        """The form field staff correct this column's cell with (``None``: a text box).

        A yes/no column gets a yes/no/leave select, a column of choices or of related objects
        a select; whatever the field, its value goes back to a cell as text.
        """
        return None

    @classmethod
    def header_aliases(cls) -> dict[str, str]:
        """Headers read as a column without a mapping step ("E-mail", "ISBN", "Download URL"):
        each label of ``column_labels``, normalized, unless two columns share it."""
        from bulkadmin.parsing import normalize_header  # parsing is heavy; importers are not

        seen: dict[str, set[str]] = {}
        for column, labels in cls.column_labels().items():
            for label in labels:
                seen.setdefault(normalize_header(label), set()).add(column)
        names = set(cls.column_names())
        return {
            label: next(iter(columns))
            for label, columns in seen.items()
            if len(columns) == 1 and label not in names
        }

    @classmethod
    def dotted_path(cls) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    @classmethod
    def get_model(cls) -> type[models.Model]:
        return cls.model

    @classmethod
    def verbose_name(cls) -> str:
        return cls.label or str(cls.get_model()._meta.verbose_name_plural).capitalize()

    # ---- validation: no database writes, no signals --------------------------------------
    def clean_row(self, values: Mapping[str, str]) -> Cleaned:
        """Turn one row's strings into typed values, or raise ``RowInvalid``. No queries."""
        return dict(values)

    def row_key(self, cleaned: Cleaned) -> str | None:
        """The value duplicates in one file are compared by (case-insensitively)."""
        if self.key_column is None:
            return None
        value = cleaned.get(self.key_column)
        return str(value).casefold() if value not in (None, "") else None

    def check_rows(self, rows: Sequence[tuple[int, Cleaned]]) -> dict[int, Errors]:
        """Checks against the database for a batch of cleaned rows, in a few reads.

        Returns errors by row number. Called with batches of about a thousand rows.
        """
        return {}

    # ---- import: in the worker -----------------------------------------------------------
    def setup(self) -> None:
        """Once per worker process before its first row: load caches, warm clients.

        Called again after a chunk's transaction rolls back (a row failed), so that a cache
        never names an object created in the transaction that was undone. Read here; a write
        belongs in ``before_job``, or in a ``vendors.write_turn()``: on SQLite the job's other
        processes make way only for writers outside the job. (The engine calls it, and
        ``SETUP_HOOK``, in ``vendors.writes_turn()``, so a write there waits for a turn.)
        """

    def prepare_row(self, cleaned: Cleaned) -> Cleaned:
        """CPU-heavy work for one row (hashing), run outside the transaction."""
        return cleaned

    def before_job(self) -> None:
        """Once per job, in the runner, before its first row is imported."""

    def after_job(self, total: int) -> None:
        """Once per job, in the runner, after its last row (``total`` rows in all)."""

    def prefetch(self, rows: Sequence[Cleaned]) -> None:
        """Load, in a few queries, what a chunk's rows will look up (related objects), before
        its transaction; ``import_row`` may then find them without a query per row."""

    def import_row(self, cleaned: Cleaned) -> models.Model:
        """Create (or, in update mode, update) one object through the ORM, signals and all.

        Runs inside the chunk's transaction; an exception fails this row alone. ``cleaned`` is
        a fresh copy each time, since a row is imported again when a neighbour's failure rolls
        its transaction back. Side effects outside the database (email, HTTP) belong in
        ``transaction.on_commit(..., robust=True)`` so that such a retry does not repeat them
        and one failing callback does not drop the others.
        """
        obj = self.get_model()(**cleaned)
        obj.save()
        return obj

    # ---- bulk changes ------------------------------------------------------------------------
    def related_ids(self, name: str, values: Sequence[str]) -> list[Any]:
        """The primary keys of the related objects named by ``values`` (a many-to-many
        column's cell, split), or ``RowInvalid``: what a bulk change adds or removes."""
        raise RowInvalid.single(
            name,
            _("%(importer)s cannot add or remove %(column)s.")
            % {"importer": type(self).__name__, "column": name},
        )

    def check_related(self, name: str, values: Sequence[str]) -> list[str]:
        """Problems with the related objects a bulk change would add or remove (in the
        request: reads only)."""
        return [
            _("%(importer)s cannot add or remove %(column)s.")
            % {"importer": type(self).__name__, "column": name}
        ]

    # ---- reverting: in the worker of a revert job --------------------------------------------
    def check_delete(self, obj: models.Model) -> str | None:
        """Why this job's starter may not delete ``obj`` when reverting (None: they may)."""
        return None

    def check_restore(self, obj: models.Model, before: dict[str, Any]) -> Errors:
        """Why the starter may not put ``before`` back on ``obj`` (``{}``: they may): a revert
        must never grant what the importer would refuse to."""
        return {}

    def explain_error(self, cleaned: Cleaned, exc: Exception) -> Errors:
        """A row's failure as staff should read it; called outside any transaction."""
        if isinstance(exc, RowInvalid):
            return exc.errors
        return {NON_FIELD: [f"{type(exc).__name__}: {exc}".strip()]}
