"""Uploads awaiting confirmation: private files named by us, passed between requests by a signed token.

The client never names a file on disk (a uuid4 does), files live under ``conf.data_dir()``,
never under a served directory, and the token that carries an upload to the confirm request
is signed, bound to the user who uploaded it, and expires.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core import signing

from bulkadmin import conf

SALT = "bulkadmin.upload"
_UPLOAD_NAME_LENGTH = 32


class UploadTooLarge(Exception):
    pass


class UploadExpired(Exception):
    """The token is forged, expired, another user's, or its file is gone."""


def uploads_dir() -> Path:
    path = conf.data_dir() / "uploads"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def path_for(upload_id: str) -> Path:
    """The file for an id we issued; anything else (``../x``) is refused."""
    try:
        parsed = uuid.UUID(hex=upload_id)
    except (ValueError, TypeError) as exc:
        raise UploadExpired("Not an upload id.") from exc
    return uploads_dir() / parsed.hex


def save_chunks(chunks: Iterable[bytes]) -> str:
    """Write an upload to a new private file and return its id; refuse one over the size limit."""
    limit = int(conf.get("MAX_UPLOAD_BYTES"))
    upload_id = uuid.uuid4().hex
    path = uploads_dir() / upload_id
    written = 0
    try:
        with path.open("xb") as handle:
            path.chmod(0o600)
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
    """Where a confirmed upload waits for its runner, out of reach of ``cleanup_stale``."""
    path = conf.data_dir() / "confirmed"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path / path_for(upload_id).name


def take(upload_id: str) -> Path:
    """Move a confirmed upload to its job; only one confirm can take it (``os.replace``)."""
    target = confirmed_path(upload_id)
    try:
        path_for(upload_id).replace(target)
    except FileNotFoundError as exc:
        raise UploadExpired("The uploaded file is gone.") from exc
    return target


def discard_confirmed(upload_id: str) -> None:
    with contextlib.suppress(UploadExpired):
        confirmed_path(upload_id).unlink(missing_ok=True)


def discard(upload_id: str) -> None:
    with contextlib.suppress(UploadExpired):
        path_for(upload_id).unlink(missing_ok=True)


def cleanup_stale(now: float | None = None) -> int:
    """Delete uploads nobody confirmed; cheap enough to run on every upload."""
    cutoff = (now or time.time()) - float(conf.get("STALE_UPLOAD_SECONDS"))
    removed = 0
    for path in uploads_dir().iterdir():
        try:
            if len(path.name) == _UPLOAD_NAME_LENGTH and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:  # a concurrent request removed it
            continue
    return removed


@dataclass(frozen=True)
class PendingUpload:
    """What the confirm request needs, exactly as validated: the signature keeps it so."""

    upload_id: str
    name: str
    importer: str
    options: dict[str, Any] = field(default_factory=dict)
    workers: int | None = None
    #: The file's columns to the importer's (``bulkadmin.columns``); None: as they are.
    mapping: dict[str, str | None] | None = None
    #: How many rows the report found invalid, for the job to compare once it has read them.
    invalid: int | None = None

    @property
    def path(self) -> Path:
        return path_for(self.upload_id)

    def sign(self, user_id: Any) -> str:
        payload = {
            "id": self.upload_id,
            "name": self.name,
            "importer": self.importer,
            "options": self.options,
            "workers": self.workers,
            "mapping": self.mapping,
            "invalid": self.invalid,
            "user": str(user_id),
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
            options=dict(payload["options"]),
            workers=payload["workers"],
            mapping=payload.get("mapping"),
            invalid=payload.get("invalid"),
        )
