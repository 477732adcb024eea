"""Text files as staff's tools write them, turned into UTF-8 before they are parsed.

Excel on Windows saves "CSV" in the system's code page (cp1252 in the West) and "Unicode Text"
as UTF-16 with tabs. A byte-order mark is honoured (UTF-8, UTF-16 and UTF-32, either order);
BOM-less UTF-16 is recognized by its NUL bytes; otherwise a file that is valid UTF-8 is UTF-8.
Anything else is guessed by charset-normalizer (a well-kept detector, better at this than
rules of our own) from the file's opening megabyte, and copied as UTF-8 into a private
temporary file, which the parser reads instead. A file that is mostly UTF-8 with a broken byte
is not guessed: reading it as another code page would garble its accents silently.
"""

from __future__ import annotations

import codecs
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.utils.translation import gettext as _

from bulkadmin import conf, sealed_files
from bulkadmin.sealed_files import SealedWriter

_SAMPLE_BYTES = 1024 * 1024
_CHUNK_BYTES = 1024 * 1024
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
#: How staff know the encodings a guess can name.
_NAMES = {
    "utf_16": "UTF-16",
    "utf_16_le": "UTF-16",
    "utf_16_be": "UTF-16",
    "utf_32": "UTF-32",
    "cp1252": "Windows-1252",
    "latin_1": "ISO-8859-1",
    "iso8859_15": "ISO-8859-15",
    "cp1250": "Windows-1250",
    "mac_roman": "Mac Roman",
}


class NotText(Exception):
    """The file is not text in any encoding we can tell; ``str()`` says so for staff."""


@dataclass(frozen=True)
class Decoded:
    """A UTF-8 file to parse, the encoding it was read from ("" for UTF-8), and its cleanup."""

    path: Path
    encoding: str
    close: Callable[[], None]


def as_utf8(path: Path, head: bytes) -> Decoded:
    encoding = _declared(head) or _utf8_or_none(path) or _guess(path)
    if encoding in ("utf-8", "utf-8-sig"):
        return Decoded(path, "", lambda: None)
    return _transcoded(path, encoding)


def display_name(encoding: str) -> str:
    key = codecs.lookup(encoding).name.replace("-", "_")
    return _NAMES.get(key, encoding)


def _declared(head: bytes) -> str | None:
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    if len(head) >= 4 and head[:4] != b"\x00" * 4:
        # every other byte NUL: ASCII text in UTF-16 without a byte-order mark
        if head[1:4:2] == b"\x00\x00":
            return "utf-16-le"
        if head[0:4:2] == b"\x00\x00":
            return "utf-16-be"
    if b"\x00" in head:
        raise NotText(_("The file contains NUL bytes; it is binary, not CSV text."))
    return None


def _utf8_or_none(path: Path) -> str | None:
    """UTF-8 if the whole file decodes as such; a damaged UTF-8 file is UTF-8 too (its bad row
    is reported); None when nothing before the first bad byte was non-ASCII."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with sealed_files.open_read(path) as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                return None if _ascii_before_error(path) else "utf-8"
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return None if _ascii_before_error(path) else "utf-8"
    return "utf-8"


def _ascii_before_error(path: Path) -> bool:
    with sealed_files.open_read(path) as handle:
        data = handle.read(_SAMPLE_BYTES)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return data[: exc.start].isascii()
    return data.isascii()


def _guess(path: Path) -> str:
    from charset_normalizer import from_bytes

    with sealed_files.open_read(path) as handle:
        sample = handle.read(_SAMPLE_BYTES)
    best = from_bytes(sample).best()
    if best is None:
        raise NotText(_("The file is not text in an encoding we could recognize; save it as CSV UTF-8."))
    # Short Western files read alike in several code pages; Excel on Windows writes cp1252.
    try:
        if sample.decode("cp1252") == str(best):
            return "cp1252"
    except UnicodeDecodeError:
        pass
    return str(best.encoding)


def _transcoded(path: Path, encoding: str) -> Decoded:
    """A private UTF-8 copy of the file, sealed like the upload, deleted when the parser is done
    with it."""
    target = Path(tempfile.mkstemp(dir=conf.data_dir(), prefix="decoded-", suffix=".csv")[1])
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    try:
        with sealed_files.open_read(path) as source, SealedWriter(target.open("wb")) as out:
            try:
                while chunk := source.read(_CHUNK_BYTES):
                    out.write(decoder.decode(chunk).encode("utf-8"))
                    offset += len(chunk)
                out.write(decoder.decode(b"", final=True).encode("utf-8"))
            except UnicodeError as exc:  # a bad byte, a cut character, an unpaired surrogate
                where = offset + exc.start if isinstance(exc, UnicodeDecodeError) else offset
                raise NotText(
                    _(
                        "The file is not valid %(encoding)s text (near byte %(byte)s). "
                        "Save it as CSV UTF-8 and upload it again."
                    )
                    % {"encoding": display_name(encoding), "byte": f"{where:,}"}
                ) from exc
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return Decoded(target, display_name(encoding), lambda: target.unlink(missing_ok=True))
