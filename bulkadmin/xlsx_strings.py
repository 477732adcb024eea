"""An XLSX workbook's shared-strings table, read in bounded memory.

openpyxl loads the whole table as a list before the first row: a 21 MiB workbook whose
table unpacks to 195 MiB grew the web process by 1.3 GiB and took 73 s. Here the table is
inflated on demand, only as far as the cells read so far refer, into a private spooled file;
what stays in memory is one offset per string (4 bytes: at most 60 MiB for a table of
``MAX_UNCOMPRESSED_BYTES``, 200 MiB) and a small cache. A string is decoded when a cell asks for it,
and one longer than any cell may hold is never decoded at all.
"""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
from array import array
from itertools import accumulate, islice
from typing import IO, Any
from xml.etree import ElementTree

from openpyxl.cell.text import Text
from openpyxl.reader.excel import SHARED_STRINGS, ExcelReader

from bulkadmin import conf

#: Inflated bytes read at a time.
_CHUNK = 1 << 20
#: Decoded strings kept for repeated cells, in characters, before the cache starts over.
_CACHE_CHARS = 4 << 20
#: Bytes one XML character can take at most (``&#x10FFFF;``): a string's text is at most its
#: element's size, and at least a tenth of it.
_BYTES_PER_CHAR = 10

_NAME = rb"(?:[A-Za-z_][\w.\-]{0,40}:)?"
#: Where each string ends: a closing ``</si>`` or an empty ``<si/>``, with any namespace prefix.
_STRING_END = re.compile(rb"</" + _NAME + rb"si\s*>|<" + _NAME + rb"si\s*/>")
#: The table's root element, whose namespace declarations a lone string needs to be parsed.
_ROOT = re.compile(rb"<(" + _NAME + rb"sst)\b[^>]*>")
#: The five entities XML defines, and character references.
_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot|apos)|#([0-9]{1,7})|#x([0-9a-fA-F]{1,6}));")
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
#: The plain string Excel writes for nearly every cell, decoded without an XML parser.
_PLAIN = re.compile(
    rb'\s*<si>\s*<t(?:\s+xml:space="preserve")?>([^<]*)</t>\s*</si>\s*|\s*<si>\s*<t\s*/>\s*</si>\s*'
)
#: The table's root element comes before this many bytes, or the table is damaged.
_ROOT_WITHIN = 1 << 16
#: A string's end tag that may straddle two chunks is at most this long.
_OVERLAP = 64


class Oversized(str):
    """A string longer than any cell may hold, left undecoded: its cell says so."""


OVERSIZED = Oversized()


class SharedStrings:
    """The sequence openpyxl's sheet reader indexes by a cell's shared-string number."""

    def __init__(self, archive: zipfile.ZipFile, member: str) -> None:
        self._source: IO[bytes] | None = archive.open(member)
        self._spool = tempfile.TemporaryFile(dir=conf.data_dir())  # noqa: SIM115 (see close())
        # 4 bytes an offset while the table's limit allows it.
        self._ends = array("I" if int(conf.get("MAX_UNCOMPRESSED_BYTES")) < 1 << 32 else "Q")
        self._spooled = 0  # bytes of the table in the spool
        self._start = -1  # where the first string begins, once the root has been read
        self._root = b""
        self._root_tag = b""
        self._carry = b""
        self._cache: dict[int, str] = {}
        self._cached_chars = 0
        self._max_bytes = int(conf.get("MAX_FIELD_LENGTH")) * _BYTES_PER_CHAR + 256

    def __getitem__(self, index: int) -> str:
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        if index < 0:
            raise IndexError(index)
        while len(self._ends) <= index:
            if not self._inflate():
                raise IndexError(
                    f"The workbook's cell refers to shared string {index:,}, which is not there."
                )
        begin = self._start if index == 0 else self._ends[index - 1]
        size = self._ends[index] - begin
        if size > self._max_bytes:
            return OVERSIZED
        fragment = os.pread(self._spool.fileno(), size, begin)
        text = _decode(fragment, self._root, self._root_tag)
        if self._cached_chars + len(text) > _CACHE_CHARS:
            self._cache.clear()
            self._cached_chars = 0
        self._cache[index] = text
        self._cached_chars += len(text)
        return text

    def __len__(self) -> int:
        # openpyxl never asks; the count is only known once the whole table has been read.
        while self._inflate():
            pass
        return len(self._ends)

    def _inflate(self) -> bool:
        """Spool one more chunk and note where its strings end; False at the end of the table."""
        if self._source is None:
            return False
        chunk = self._source.read(_CHUNK)
        if not chunk:
            self.close_source()
            return False
        base = self._spooled - len(self._carry)  # where ``window`` begins in the table
        self._spool.seek(self._spooled)
        self._spool.write(chunk)
        self._spool.flush()
        self._spooled += len(chunk)
        window = self._carry + chunk
        begin = 0
        if self._start < 0:
            root = _ROOT.search(window)
            if root is None:
                if self._spooled > _ROOT_WITHIN:
                    raise ValueError("The shared-strings table has no root element.")
                self._carry = window
                return True
            self._root, self._root_tag = root.group(0), root.group(1)
            self._start = base + root.end()
            begin = root.end()
        cut = self._note_ends(window, begin, base)
        # What follows the last end is carried, but only as much as could hold the start of
        # one (one string of 100 MiB is never held whole).
        self._carry = window[max(cut, len(window) - _OVERLAP) :]
        return True

    def _note_ends(self, window: bytes, begin: int, base: int) -> int:
        """Append where each string in ``window[begin:]`` ends; return where the last one did."""
        prefix = self._root_tag[: -len(b"sst")]
        end_tag = b"</" + prefix + b"si>"
        last = window.rfind(end_tag, begin)
        plain = (
            last >= 0
            and window.count(b"<" + prefix + b"si", begin) == window.count(b"<" + prefix + b"si>", begin)
            and window.count(b"</" + prefix + b"si", begin) == window.count(end_tag, begin)
        )
        if plain:
            # As Excel writes it (every string closed by the same tag): split at C speed.
            cut = last + len(end_tag)
            lengths = map(len(end_tag).__add__, map(len, window[begin:cut].split(end_tag)[:-1]))
            self._ends.extend(islice(accumulate(lengths, initial=base + begin), 1, None))
            return cut
        cut = begin
        for match in _STRING_END.finditer(window, begin):
            self._ends.append(base + match.end())
            cut = match.end()
        return cut

    def close_source(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None

    def close(self) -> None:
        self.close_source()
        self._spool.close()


def _decode(fragment: bytes, root: bytes, root_tag: bytes) -> str:
    """The text of one ``<si>`` element, as openpyxl's own table reader gives it."""
    plain = _PLAIN.fullmatch(fragment)
    if plain is not None:
        raw = plain.group(1) or b""
        if b"\r" in raw:  # line ends as an XML parser normalizes them
            raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        text = raw.decode("utf-8")
        if "&" in text:
            text = _ENTITY.sub(_entity, text)
        return text.replace("x005F_", "")
    # The document is ours: the table's root, then one string; a DTD (and so any entity to
    # expand) cannot follow a root element.
    element = ElementTree.fromstring(root + fragment + b"</" + root_tag + b">")  # noqa: S314
    strings = list(element)
    if len(strings) != 1:
        raise ValueError("A shared string is not one <si> element.")
    return str(Text.from_tree(strings[0]).content).replace("x005F_", "")


def _entity(match: re.Match[str]) -> str:
    name, decimal, hexadecimal = match.groups()
    if name:
        return _ENTITIES[name]
    return chr(int(decimal) if decimal else int(hexadecimal, 16))


class BoundedReader(ExcelReader):  # type: ignore[misc]  # openpyxl has no types
    """openpyxl's reader with the shared strings above, and without external links."""

    def __init__(self, handle: IO[bytes]) -> None:
        super().__init__(handle, read_only=True, data_only=False, keep_links=False)
        self.strings: SharedStrings | None = None

    def read_strings(self) -> None:
        part = self.package.find(SHARED_STRINGS)
        if part is not None:
            self.strings = SharedStrings(self.archive, part.PartName[1:])
            self.shared_strings: Any = self.strings

    def close(self) -> None:
        if self.strings is not None:
            self.strings.close()
