"""Importers offered to staff come from ``BULKADMIN["IMPORTERS"]``, read at call time, and from
the ``bulk_importers`` of admins using ``BulkImportMixin``."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from bulkadmin import conf
from bulkadmin.importers.base import Importer

#: Importers a ``BulkImportMixin`` admin declared (``bulk_importers``): code of the site's own,
#: as trusted as the settings' list. Filled as the admin registers, in every process.
#: A class made at run time (an admin's resource, wrapped) is kept here by its path, since
#: no module holds it; every process makes it again as its admin registers.
_DECLARED: dict[str, type[Importer] | None] = {}


def declare(importer: type[Importer] | str) -> str:
    if isinstance(importer, str):
        _DECLARED.setdefault(importer, None)
        return importer
    path = importer.dotted_path()
    _DECLARED[path] = importer
    return path


def importer_paths() -> list[str]:
    """``BULKADMIN["IMPORTERS"]``, then those admins declared."""
    return list(dict.fromkeys([*conf.get("IMPORTERS"), *_DECLARED]))


def get_importer_class(path: str | None = None) -> type[Importer]:
    """The importer at ``path``, which must be one of the configured ones (default: the first)."""
    paths = importer_paths()
    if not paths:
        raise ImproperlyConfigured("BULKADMIN['IMPORTERS'] is empty.")
    chosen = path or paths[0]
    if chosen not in paths:
        raise ImproperlyConfigured(
            f"{chosen!r} is not in BULKADMIN['IMPORTERS'] nor in an admin's bulk_importers."
        )
    cls = _DECLARED.get(chosen) or import_string(chosen)
    if not (isinstance(cls, type) and issubclass(cls, Importer)):
        raise ImproperlyConfigured(f"{chosen!r} is not an Importer subclass.")
    return cls


def importer_choices() -> list[tuple[str, str]]:
    return [(path, get_importer_class(path).verbose_name()) for path in importer_paths()]
