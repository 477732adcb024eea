"""Uploads are sealed at rest: no password on disk, every byte back, and a changed file refused."""

from __future__ import annotations

import io
import os
import zipfile

import pytest

from bulkadmin import parsing, sealed_files, uploads
from bulkadmin.sealed_files import SEGMENT

SIZES = [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT + 17]


def seal(path, data: bytes, pieces: int = 7) -> None:
    with sealed_files.create(path) as out:
        step = max(1, len(data) // pieces)
        for start in range(0, len(data), step):
            out.write(data[start : start + step])
        if not data:
            out.write(b"")


@pytest.mark.parametrize("size", SIZES)
def test_every_byte_comes_back_from_anywhere(tmp_path, size):
    data = os.urandom(size)
    path = tmp_path / "sealed"
    seal(path, data)
    assert sealed_files.plain_size(path) == size
    if size >= 32:  # 32 random bytes turn up in the ciphertext by chance one time in 2**256
        assert data[:32] not in path.read_bytes()
    with sealed_files.open_read(path) as handle:
        assert handle.read() == data
        for offset in (0, 1, SEGMENT - 3, SEGMENT, size // 2, max(0, size - 5)):
            handle.seek(offset)
            assert handle.read(9) == data[offset : offset + 9]
        if size >= 3:
            handle.seek(-3, io.SEEK_END)
            assert handle.read() == data[-3:]


def test_a_plain_file_is_read_as_it_is(tmp_path):
    path = tmp_path / "users.csv"
    path.write_bytes(b"username\nann\n")
    assert sealed_files.plain_size(path) == 13
    with sealed_files.open_read(path) as handle:
        assert handle.read() == b"username\nann\n"


def changed(data: bytes) -> list[tuple[str, bytes]]:
    header = len(sealed_files.MAGIC) + 7
    stride = SEGMENT + 16
    flipped = bytearray(data)
    flipped[header + 5] ^= 1
    swapped = data[:header] + data[header + stride : header + 2 * stride] + data[header : header + stride]
    swapped += data[header + 2 * stride :]
    return [
        ("a flipped bit", bytes(flipped)),
        ("cut at a segment's end", data[: header + 2 * stride]),
        ("cut anywhere", data[:-1]),
        ("segments swapped", swapped),
    ]


@pytest.mark.parametrize("case", range(4))
def test_a_changed_file_is_refused_clearly(tmp_path, case):
    path = tmp_path / "users.csv"
    seal(path, b"username,password\n" + b"ann,Secret-Pass-1\n" * 20_000)
    _what, content = changed(path.read_bytes())[case]
    path.write_bytes(content)
    with pytest.raises(parsing.ParseError, match="cannot be read back: it was changed on disk"):
        parsing.open_table(path, "users.csv", ["username", "password"])


def test_another_key_cannot_read_it(tmp_path, settings):
    path = tmp_path / "users.csv"
    seal(path, b"username\nann\n")
    settings.BULKADMIN = {**settings.BULKADMIN, "SECRET_KEY": "another key"}
    with pytest.raises(sealed_files.SealBroken):
        sealed_files.open_read(path)


def test_an_upload_and_its_decoded_copy_hold_no_password_on_disk(tmp_path, settings):
    """Before, an unconfirmed upload kept its passwords in plain text for a day."""
    settings.BULKADMIN = {**settings.BULKADMIN, "DATA_DIR": tmp_path / "data"}
    text = "username,first_name,password\n" + "".join(
        f"user{i},José,Très-Secret-{i:04d}\n" for i in range(500)
    )
    upload_id = uploads.save_chunks([text.encode("utf-16")], owner=7)  # Excel's "Unicode Text"
    path = uploads.path_for(upload_id, 7)
    assert b"Secret" not in path.read_bytes()
    with parsing.open_table(path, "users.csv", ["username", "first_name", "password"]) as table:
        rows = iter(table.rows)
        first = next(rows)
        copies = [p for p in (tmp_path / "data").iterdir() if p.name.startswith("decoded-")]
        assert copies and all(b"Secret" not in copy.read_bytes() for copy in copies)
        assert table.encoding
        assert first.values == {"username": "user0", "first_name": "José", "password": "Très-Secret-0000"}
        assert sum(1 for _ in rows) == 499


def test_a_sealed_workbook_is_read_through_its_zip(tmp_path):
    buffer = io.BytesIO()
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["username", "email"])
    for i in range(3000):
        book.active.append([f"user{i}", f"user{i}@example.com"])
    book.save(buffer)
    path = tmp_path / "users.xlsx"
    seal(path, buffer.getvalue())
    assert not zipfile.is_zipfile(path)
    with parsing.open_table(path, "users.xlsx", ["username", "email"]) as table:
        rows = list(table.rows)
    assert len(rows) == 3000 and rows[-1].values == {"username": "user2999", "email": "user2999@example.com"}
