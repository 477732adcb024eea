"""Uploads awaiting confirmation: private files named by us, passed between requests by a signed token.

The client never names a file on disk (a uuid4 does), files live under ``conf.data_dir()``,
never under a served directory, and the token that carries an upload to the confirm request
is signed, bound to the user who uploaded it, and expires.

Each user's uploads wait in a directory of their own (``uploads/<keyed hash of the pk>/<id>``):
that is what records who owns an upload, with no database write, so counting a user's waiting
uploads (``MAX_PENDING_UPLOADS_PER_USER``) is one directory listing, and a cancel or a confirm
frees a slot by removing the file. The hash is keyed by ``SECRET_KEY`` so that a directory's
name does not say whose it is; rotating the key leaves older uploads to ``cleanup_stale``.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Any

from django.core import signing
from django.utils.crypto import salted_hmac

from bulkadmin import conf, sealed_files
from bulkadmin.sealed_files import SealedWriter

SALT = "bulkadmin.upload"
#: An upload's file name: the hex of the uuid4 we issued as its id.
_UPLOAD_NAME = re.compile(r"[0-9a-f]{32}")
#: A user's directory's name: a SHA-256 HMAC of their pk, in hex.
_OWNER_NAME = re.compile(r"[0-9a-f]{64}")


class UploadTooLarge(Exception):
    pass


class UploadExpired(Exception):
    """The token is forged, expired, another user's, or its file is gone."""


class TooManyWaiting(Exception):
    """The user already has ``MAX_PENDING_UPLOADS_PER_USER`` uploads nobody confirmed or cancelled."""

    def __init__(self, waiting: int, limit: int, frees_at: float) -> None:
        super().__init__(f"{waiting} uploads are waiting for confirmation; at most {limit} may.")
        self.waiting = waiting
        self.limit = limit
        #: When the oldest of them expires (a Unix time), freeing a slot if nothing else does.
        self.frees_at = frees_at


def uploads_dir(*, create: bool = True) -> Path:
    """Where uploads wait; ``create=False`` only says where, making nothing (for system checks)."""
    if not create:
        return conf.data_dir_path() / "uploads"
    path = conf.data_dir() / "uploads"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def owner_dir(owner: Any) -> Path:
    """The directory of one user's uploads (not created here): its name is a keyed hash of their
    pk, so that it names no user and no one can pick another's."""
    name = salted_hmac(f"{SALT}.owner", str(owner), algorithm="sha256").hexdigest()
    return uploads_dir() / name


def _issued(upload_id: str) -> str:
    """The file name of an id we issued; anything else (``../x``) is refused."""
    try:
        return uuid.UUID(hex=upload_id).hex
    except (ValueError, TypeError, AttributeError) as exc:
        raise UploadExpired("Not an upload id.") from exc


def path_for(upload_id: str, owner: Any) -> Path:
    """The file of an id we issued, in its owner's directory; anything else (``../x``) is refused."""
    return owner_dir(owner) / _issued(upload_id)


def _cutoff(now: float | None) -> float:
    return (time.time() if now is None else now) - float(conf.get("STALE_UPLOAD_SECONDS"))


def _listing(directory: Path) -> list[Path]:
    """A directory's entries; none when it does not exist (yet, or any more)."""
    try:
        return list(directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _upload_mtime(path: Path) -> float | None:
    """When an upload was written; None for anything that is not one (or is gone)."""
    if not _UPLOAD_NAME.fullmatch(path.name):
        return None
    try:
        info = path.lstat()
    except FileNotFoundError:  # a concurrent request removed it
        return None
    return info.st_mtime if S_ISREG(info.st_mode) else None


def waiting(owner: Any, now: float | None = None) -> list[float]:
    """When each of a user's unexpired, unconfirmed uploads was written: one small listing."""
    cutoff = _cutoff(now)
    times = (_upload_mtime(path) for path in _listing(owner_dir(owner)))
    return [mtime for mtime in times if mtime is not None and mtime >= cutoff]


def _refuse_when_full(owner: Any) -> None:
    """Count before anything is stored. Two uploads of one user racing may both pass: the cap
    bounds forgotten reports, it is not a lock."""
    limit = conf.get("MAX_PENDING_UPLOADS_PER_USER")
    if limit is None:
        return
    times = waiting(owner)
    if len(times) >= int(limit):
        frees_at = min(times, default=time.time()) + float(conf.get("STALE_UPLOAD_SECONDS"))
        raise TooManyWaiting(len(times), int(limit), frees_at)


def _create(path: Path) -> SealedWriter:
    """Open a new owner-only sealed file in its owner's owner-only directory, made if need be
    (again, if ``cleanup_stale`` removed it, empty and idle, in between: once made, it is not
    idle, so one more try is enough)."""
    for _attempt in range(3):
        # Not ``Path.mkdir(exist_ok=True)``: if the directory goes between its mkdir and its
        # check that one is there, that raises "File exists".
        with contextlib.suppress(FileExistsError):
            path.parent.mkdir(mode=0o700)
        try:
            return sealed_files.create(path)
        except FileNotFoundError:
            continue
    raise FileNotFoundError(f"{path.parent} keeps disappearing.")


def save_chunks(chunks: Iterable[bytes], *, owner: Any) -> str:
    """Write an upload, sealed (``sealed_files``: it may hold passwords), to a new private file of
    its owner's and return its id; refuse one over the size limit, or any while its owner has
    ``MAX_PENDING_UPLOADS_PER_USER`` waiting."""
    _refuse_when_full(owner)
    limit = int(conf.get("MAX_UPLOAD_BYTES"))
    upload_id = uuid.uuid4().hex
    path = path_for(upload_id, owner)
    written = 0
    try:
        with _create(path) as handle:
            for chunk in chunks:
                written += len(chunk)
                if written > limit:
                    raise UploadTooLarge(f"The file is larger than {limit:,} bytes, the limit.")
                handle.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return upload_id


def confirmed_path(upload_id: str) -> Path:
    """Where a confirmed upload waits for its runner, out of reach of ``cleanup_stale`` and no
    longer counted against its owner (the job records who started it)."""
    path = conf.data_dir() / "confirmed"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path / _issued(upload_id)


def _remove_if_idle(directory: Path, cutoff: float) -> None:
    """Tidy away a user's directory that has been empty since before ``cutoff``. Never one that
    was just emptied: another upload of theirs may be making it again at that moment (``_create``
    makes it again should a clean-up win that race)."""
    with contextlib.suppress(OSError):  # not empty, or gone already
        if directory.stat().st_mtime < cutoff:
            directory.rmdir()


def take(upload_id: str, owner: Any) -> Path:
    """Move a confirmed upload to its job; only one confirm can take it (``os.replace``)."""
    target = confirmed_path(upload_id)
    source = path_for(upload_id, owner)
    try:
        source.replace(target)
    except FileNotFoundError as exc:
        raise UploadExpired("The uploaded file is gone.") from exc
    return target


def discard_confirmed(upload_id: str) -> None:
    with contextlib.suppress(UploadExpired):
        confirmed_path(upload_id).unlink(missing_ok=True)


def discard(upload_id: str, owner: Any) -> bool:
    """Delete an upload nobody will confirm (a cancelled report, a file error), freeing a slot;
    False when there was none (a confirm took it, or it expired)."""
    try:
        path = path_for(upload_id, owner)
        path.unlink()
    except (UploadExpired, FileNotFoundError):
        return False
    return True


def discard_all(owner: Any) -> int:
    """Delete every upload a user has waiting: the way out of the cap for reports they closed."""
    removed = 0
    directory = owner_dir(owner)
    for path in _listing(directory):
        if _upload_mtime(path) is not None:
            with contextlib.suppress(FileNotFoundError):  # confirmed or cancelled meanwhile
                path.unlink()
                removed += 1
    return removed


def abandoned(now: float | None = None, *, root: Path | None = None) -> Iterator[Path]:
    """Uploads older than ``STALE_UPLOAD_SECONDS``, in the users' directories and loose in
    ``root`` (where they were kept before those): nothing when ``root`` does not exist."""
    cutoff = _cutoff(now)
    for path in _listing(uploads_dir() if root is None else root):
        for candidate in _listing(path) if _OWNER_NAME.fullmatch(path.name) else [path]:
            mtime = _upload_mtime(candidate)
            if mtime is not None and mtime < cutoff:
                yield candidate


def cleanup_stale(now: float | None = None) -> int:
    """Delete uploads nobody confirmed, and the users' directories empty for as long; cheap
    enough to run on every upload."""
    removed = 0
    for path in list(abandoned(now)):
        with contextlib.suppress(FileNotFoundError):  # a concurrent request removed it
            path.unlink()
            removed += 1
    cutoff = _cutoff(now)
    for path in _listing(uploads_dir()):
        if _OWNER_NAME.fullmatch(path.name):
            _remove_if_idle(path, cutoff)
    return removed


@dataclass(frozen=True)
class PendingUpload:
    """What the confirm request needs, exactly as validated: the signature keeps it so."""

    upload_id: str
    name: str
    importer: str
    #: Who uploaded it (their pk, as the token carries it): its file is in their directory.
    owner: str
    options: dict[str, Any] = field(default_factory=dict)
    workers: int | None = None
    #: The file's columns to the importer's (``bulkadmin.columns``); None: as they are.
    mapping: dict[str, str | None] | None = None
    #: How many rows the report found invalid, for the job to compare once it has read them.
    invalid: int | None = None

    @property
    def path(self) -> Path:
        return path_for(self.upload_id, self.owner)

    def sign(self) -> str:
        """The token for the next request: only its owner can use it (``unsign``)."""
        payload = {
            "id": self.upload_id,
            "name": self.name,
            "importer": self.importer,
            "options": self.options,
            "workers": self.workers,
            "mapping": self.mapping,
            "invalid": self.invalid,
            "user": self.owner,
        }
        return signing.dumps(payload, salt=SALT, compress=True)

    @classmethod
    def unsign(cls, token: str, user_id: Any) -> PendingUpload:
        try:
            payload = signing.loads(token, salt=SALT, max_age=int(conf.get("UPLOAD_TOKEN_MAX_AGE")))
        except signing.BadSignature as exc:  # SignatureExpired is a subclass
            raise UploadExpired("The upload expired or the form was tampered with.") from exc
        if payload.get("user") != str(user_id):
            raise UploadExpired("The upload belongs to another user.")
        # Whether its file is still there is for the confirm to find out: a job may hold it.
        return cls(
            upload_id=str(payload["id"]),
            name=str(payload["name"]),
            importer=str(payload["importer"]),
            owner=str(user_id),
            options=dict(payload["options"]),
            workers=payload["workers"],
            mapping=payload.get("mapping"),
            invalid=payload.get("invalid"),
        )
