"""Matching a file's columns to an importer's: a guess for the mapping step, the mappings staff
confirmed (remembered per importer and header), and the command line's ``--map``/``--ignore``.

A mapping (``ColumnMap``) takes a file's column, as ``parsing.normalize_header`` spells it,
to an importer's column, or to None: ignored. Columns it does not name keep their name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from difflib import SequenceMatcher
from typing import Any

from django.utils.translation import gettext as _

from bulkadmin.importers.base import Importer
from bulkadmin.parsing import ColumnMap, normalize_header

#: How alike a header and a column's name must be for the guess to take it.
GUESS_CUTOFF = 0.75


def guess(headers: list[str], importer_cls: type[Importer]) -> ColumnMap:
    """Each header's most alike column, by name, model field label and aliases; each column once.

    The closest pairs are taken first, so "email" keeps ``email`` even when "e-mail 2" is
    also alike. A header alike nothing is ignored.
    """
    labels = {
        column: {normalize_header(name) for name in names}
        for column, names in importer_cls.column_labels().items()
    }
    scored = sorted(
        (
            (max(SequenceMatcher(None, header, name).ratio() for name in names), index, column)
            for index, header in enumerate(headers)
            for column, names in labels.items()
        ),
        key=lambda item: (-item[0], item[1]),
    )
    mapping: ColumnMap = dict.fromkeys(headers)
    taken: set[str] = set()
    for score, index, column in scored:
        header = headers[index]
        if score < GUESS_CUTOFF:
            break
        if mapping[header] is None and column not in taken:
            mapping[header] = column
            taken.add(column)
    return mapping


def problems(mapping: ColumnMap, importer_cls: type[Importer]) -> list[str]:
    """What keeps a mapping from being used: a required column unmapped, a column mapped twice."""
    targets = [column for column in mapping.values() if column is not None]
    found = []
    for column in importer_cls.required_columns():
        if column not in targets:
            found.append(
                _("The required column “%(column)s” is not mapped to any column of the file.")
                % {"column": column}
            )
    for column in sorted({c for c in targets if targets.count(c) > 1}):
        found.append(_("Only one column of the file can go to “%(column)s”.") % {"column": column})
    return found


def header_key(headers: Iterable[str]) -> str:
    """The identity of a header row, for remembering its mapping."""
    return hashlib.sha256("\x1f".join(headers).encode()).hexdigest()


def remembered(importer_path: str, headers: list[str]) -> ColumnMap | None:
    """The mapping last confirmed for this importer and exactly these columns."""
    from bulkadmin.models import ColumnMapping

    found = ColumnMapping.objects.filter(importer=importer_path, headers=header_key(headers)).first()
    return dict(found.mapping) if found is not None else None


def remember(importer_path: str, headers: list[str], mapping: ColumnMap, user: Any) -> None:
    """Keep a confirmed mapping (called in the confirm's transaction: the mapping step writes nothing)."""
    from bulkadmin.models import ColumnMapping

    ColumnMapping.objects.update_or_create(
        importer=importer_path,
        headers=header_key(headers),
        defaults={"mapping": mapping, "columns": headers, "updated_by": user},
    )


def from_command_line(maps: Iterable[str], ignores: Iterable[str]) -> ColumnMap:
    """``--map "E-mail=email"`` and ``--ignore department`` as a mapping; ValueError if malformed."""
    mapping: ColumnMap = {}
    for item in maps:
        header, sep, column = item.rpartition("=")
        if not sep or not header.strip() or not column.strip():
            raise ValueError(_('--map %(item)s: write it as "FILE COLUMN=column".') % {"item": repr(item)})
        mapping[normalize_header(header)] = column.strip()
    for header in ignores:
        mapping[normalize_header(header)] = None
    return mapping
