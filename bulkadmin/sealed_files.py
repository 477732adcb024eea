"""Files sealed at rest: an upload waiting for its confirm, or for its runner, is encrypted on
disk, so a backup or a stray read of ``DATA_DIR`` shows no passwords.

AES-GCM in 64 KiB segments (the STREAM construction): each segment is authenticated with its
number and whether it is the last, so a reader can seek anywhere (an XLSX workbook is a zip,
read from its end), and a changed, reordered or truncated file is refused, never misread. The
whole file is checked when it is first opened (about 50 ms for 50 MiB), so a damaged one fails
as a clear error up front, not in the middle of a report. The key is derived, like the job's sealed
secrets, from ``BULKADMIN["SECRET_KEY"]`` or Django's; rotating it makes waiting uploads
unreadable, which they then say.

A file that does not start with the seal's mark is read as it is: ``bulkimport`` reads the
user's own file.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bulkadmin import crypto

MAGIC = b"\x00bulkadmin-sealed-1\n"
_PREFIX = 7  # random bytes of each file's nonces; then the segment's number (4) and last flag (1)
_HEADER = len(MAGIC) + _PREFIX
SEGMENT = 64 * 1024
_TAG = 16


class SealBroken(ValueError):
    """The file was changed, cut short, or sealed with another key."""


def _cipher() -> AESGCM:
    return AESGCM(crypto.derive_key(b"uploads at rest"))


def _nonce(prefix: bytes, number: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", number, last)


class SealedWriter:
    """Writes what it is given, sealed, to ``handle`` (which it closes)."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._cipher = _cipher()
        self._prefix = os.urandom(_PREFIX)
        self._buffer = bytearray()
        self._number = 0
        handle.write(MAGIC + self._prefix)

    def write(self, data: bytes) -> int:
        self._buffer += data
        # The last segment is written by close(), flagged: keep at least one byte back for it.
        while len(self._buffer) > SEGMENT:
            self._emit(bytes(self._buffer[:SEGMENT]), last=False)
            del self._buffer[:SEGMENT]
        return len(data)

    def _emit(self, plain: bytes, *, last: bool) -> None:
        nonce = _nonce(self._prefix, self._number, last)
        self._handle.write(self._cipher.encrypt(nonce, plain, MAGIC))
        self._number += 1

    def close(self) -> None:
        if self._handle.closed:
            return
        try:
            self._emit(bytes(self._buffer), last=True)
        finally:
            self._handle.close()

    def __enter__(self) -> SealedWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self._handle.close()


def _segments(stored: int) -> int:
    body = stored - _HEADER
    return -(-body // (SEGMENT + _TAG)) if body > 0 else 0


class _SealedReader(io.RawIOBase):
    """Random access to a sealed file's plain bytes, a segment at a time."""

    def __init__(self, handle: BinaryIO, stored: int) -> None:
        self._handle = handle
        handle.seek(len(MAGIC))
        self._prefix = handle.read(_PREFIX)
        self._cipher = _cipher()
        self._count = _segments(stored)
        self.size = stored - _HEADER - self._count * _TAG
        if self._count == 0 or self.size < 0:
            raise SealBroken("The sealed file is cut short.")
        self._position = 0
        self._cached = (-1, b"")

    def _segment(self, number: int) -> bytes:
        if self._cached[0] == number:
            return self._cached[1]
        self._handle.seek(_HEADER + number * (SEGMENT + _TAG))
        stored = self._handle.read(SEGMENT + _TAG)
        try:
            plain = self._cipher.decrypt(
                _nonce(self._prefix, number, number == self._count - 1), stored, MAGIC
            )
        except InvalidTag as exc:
            raise SealBroken("The sealed file was changed, cut short, or sealed with another key.") from exc
        self._cached = (number, plain)
        return plain

    def check(self) -> None:
        for number in range(self._count):
            self._segment(number)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise OSError("Negative seek position.")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._position >= self.size:
            return 0
        number, offset = divmod(self._position, SEGMENT)
        plain = self._segment(number)
        count = min(len(buffer), len(plain) - offset)
        buffer[:count] = plain[offset : offset + count]
        self._position += count
        return count

    def close(self) -> None:
        self._handle.close()
        super().close()


def is_sealed(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


#: Files this process has checked whole, by device, inode, size and modification time: each
#: segment is still authenticated as it is read, so a change since fails then, not unseen.
_checked: dict[tuple[int, int, int, int], None] = {}
_CHECKED_KEPT = 64


def open_read(path: Path) -> BinaryIO:
    """The plain bytes of ``path``, sealed or not; a broken seal raises SealBroken now."""
    handle = path.open("rb")
    try:
        if handle.read(len(MAGIC)) != MAGIC:
            handle.seek(0)
            return handle
        info = os.fstat(handle.fileno())
        raw = _SealedReader(handle, info.st_size)
        identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        if identity not in _checked:  # a report opens its file several times: check it once
            raw.check()
            _checked[identity] = None
            while len(_checked) > _CHECKED_KEPT:
                del _checked[next(iter(_checked))]
    except BaseException:
        handle.close()
        raise
    return io.BufferedReader(raw, buffer_size=SEGMENT)


def plain_size(path: Path) -> int:
    """The size of what ``open_read`` gives, without reading it."""
    stored = path.stat().st_size
    if not is_sealed(path):
        return stored
    return stored - _HEADER - _segments(stored) * _TAG


def create(path: Path) -> SealedWriter:
    """A new owner-only sealed file (never an existing one, nor through a link)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    return SealedWriter(os.fdopen(descriptor, "wb"))
