"""Parsers for cell strings that raise ``RowInvalid`` with the column's name."""

from __future__ import annotations

from typing import overload

from django.core.exceptions import ValidationError
from django.core.validators import BaseValidator
from django.utils.translation import gettext as _

from bulkadmin.importers.base import RowInvalid

TRUE_VALUES = frozenset({"1", "true", "t", "yes", "y", "on", "x"})
FALSE_VALUES = frozenset({"0", "false", "f", "no", "n", "off"})


@overload
def parse_bool(column: str, value: str, *, default: bool) -> bool: ...
@overload
def parse_bool(column: str, value: str, *, default: None) -> bool | None: ...
def parse_bool(column: str, value: str, *, default: bool | None) -> bool | None:
    """A yes/no cell; a blank one is ``default`` (``None``: leave the field alone)."""
    text = value.strip().casefold()
    if text == "":
        return default
    if text in TRUE_VALUES:
        return True
    if text in FALSE_VALUES:
        return False
    raise RowInvalid.single(
        column, _("“%(value)s” is not a yes/no value; use true or false.") % {"value": shorten(value)}
    )


def parse_text(
    column: str,
    value: str,
    *,
    max_length: int | None,
    required: bool = False,
    validators: tuple[BaseValidator | object, ...] = (),
) -> str:
    text = value.strip()
    if not text:
        if required:
            raise RowInvalid.single(column, _("This field is required."))
        return ""
    if max_length is not None and len(text) > max_length:
        raise RowInvalid.single(
            column,
            _("Ensure this value has at most %(limit)s characters (it has %(length)s).")
            % {"limit": max_length, "length": len(text)},
        )
    for validator in validators:
        try:
            validator(text)  # type: ignore[operator]
        except ValidationError as exc:
            # with the value: staff fixing row 4,127 should not need to open the file to see it
            found = shorten(text)
            raise RowInvalid(
                {
                    column: [
                        _("%(message)s Found “%(value)s”.") % {"message": m, "value": found}
                        for m in exc.messages
                    ]
                }
            ) from exc
    return text


def shorten(value: str, length: int = 40) -> str:
    """A value as an error message quotes it: one line, at most ``length`` characters."""
    text = " ".join(value.split())
    return text if len(text) <= length else text[: length - 1] + "…"


def split_list(value: str, separator: str = ";") -> list[str]:
    """Names separated by ``;``, stripped, blanks and repeats dropped, order kept."""
    seen: dict[str, None] = {}
    for part in value.split(separator):
        name = part.strip()
        if name:
            seen.setdefault(name, None)
    return list(seen)
