"""Importers offered to staff come from ``BULKADMIN["IMPORTERS"]``, read at call time."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from bulkadmin import conf
from bulkadmin.importers.base import Importer


def importer_paths() -> list[str]:
    return list(conf.get("IMPORTERS"))


def get_importer_class(path: str | None = None) -> type[Importer]:
    """The importer at ``path``, which must be one of the configured ones (default: the first)."""
    paths = importer_paths()
    if not paths:
        raise ImproperlyConfigured("BULKADMIN['IMPORTERS'] is empty.")
    chosen = path or paths[0]
    if chosen not in paths:
        raise ImproperlyConfigured(f"{chosen!r} is not in BULKADMIN['IMPORTERS'].")
    cls = import_string(chosen)
    if not (isinstance(cls, type) and issubclass(cls, Importer)):
        raise ImproperlyConfigured(f"{chosen!r} is not an Importer subclass.")
    return cls


def importer_choices() -> list[tuple[str, str]]:
    return [(path, get_importer_class(path).verbose_name()) for path in importer_paths()]
