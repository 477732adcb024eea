"""The importer API: what a file may hold, how a row is checked, and how it becomes an object."""

from __future__ import annotations

from bulkadmin.importers.base import Column, Exists, ImportContext, Importer, RowInvalid
from bulkadmin.importers.model import ModelImporter
from bulkadmin.importers.registry import get_importer_class, importer_choices

__all__ = [
    "Column",
    "Exists",
    "ImportContext",
    "Importer",
    "ModelImporter",
    "RowInvalid",
    "get_importer_class",
    "importer_choices",
]
