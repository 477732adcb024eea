"""Secret columns (passwords) are encrypted at rest until the worker has hashed them.

Fernet (AES-CBC + HMAC from ``cryptography``) rather than anything home-made; the key is
derived from ``BULKADMIN["SECRET_KEY"]`` or Django's ``SECRET_KEY``, so rotating the latter
makes pending secret values unreadable (the rows then fail with a clear message, never leak).
"""

from __future__ import annotations

import base64
import functools
import json

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from bulkadmin import conf


class SecretUnreadable(Exception):
    pass


#: Stands in a row's secrets for ones that could not be decrypted: the worker fails the row.
UNREADABLE = "__unreadable__"
UNREADABLE_MESSAGE = "The row's secret columns cannot be decrypted (was the secret key changed?)."


@functools.lru_cache(maxsize=8)
def _derived(key_material: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"bulkadmin", info=purpose).derive(
        key_material.encode()
    )


def derive_key(purpose: bytes) -> bytes:
    """A 32-byte key of its own for each use, from the one secret the site configures."""
    return _derived(conf.get("SECRET_KEY") or settings.SECRET_KEY, purpose)


def _current() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derive_key(b"secret columns")))


def seal(values: dict[str, str]) -> str:
    """Encrypt a row's secret columns; an empty dict stays an empty string."""
    if not any(values.values()):
        return ""
    return _current().encrypt(json.dumps(values).encode()).decode()


def unseal(token: str) -> dict[str, str]:
    if not token:
        return {}
    try:
        data = json.loads(_current().decrypt(token.encode()))
    except (InvalidToken, ValueError) as exc:
        raise SecretUnreadable(UNREADABLE_MESSAGE) from exc
    return {str(k): str(v) for k, v in data.items()}


def unseal_for_import(token: str) -> dict[str, str]:
    """A row's secrets to import it with; unreadable ones (the key changed) become the marker
    that makes the worker fail the row, saying why, rather than import it without them."""
    try:
        return unseal(token)
    except SecretUnreadable:
        return {UNREADABLE: "1"}


def seal_rows(rows: dict[int, dict[str, str]]) -> str:
    """Encrypt a chunk's secret columns, by row number, in one token."""
    kept = {str(number): values for number, values in rows.items() if any(values.values())}
    if not kept:
        return ""
    return _current().encrypt(json.dumps(kept).encode()).decode()


def unseal_rows(token: str) -> dict[int, dict[str, str]]:
    if not token:
        return {}
    try:
        data = json.loads(_current().decrypt(token.encode()))
    except (InvalidToken, ValueError) as exc:
        raise SecretUnreadable(
            "The rows' secret columns cannot be decrypted (was the secret key changed?)."
        ) from exc
    return {int(number): {str(k): str(v) for k, v in values.items()} for number, values in data.items()}
