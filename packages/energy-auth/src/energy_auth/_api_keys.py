"""API keys for devices and services: high-entropy keys stored only as hashes.

A key looks like ``ek_<key id>_<secret>``. The key id (16 hex digits) finds the record;
the stored value is SHA-256 (or HMAC-SHA256 with a server-side pepper) of the whole
key, compared with :func:`hmac.compare_digest`. A 256-bit random secret needs no slow
password hash: a leaked table of hashes cannot be brute-forced.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from energy_auth._errors import InvalidAPIKeyError
from energy_auth._principal import Principal

__all__ = [
    "APIKeyAuthenticator",
    "APIKeyRecord",
    "APIKeyStore",
    "InMemoryAPIKeyStore",
    "NewAPIKey",
    "generate_api_key",
    "hash_api_key",
]

API_KEY_PREFIX = "ek"
MAX_API_KEY_LENGTH = 256
_DUMMY_HASH = hashlib.sha256(b"energy-auth unknown key").hexdigest()


def hash_api_key(key: str, *, pepper: bytes | None = None) -> str:
    """Return the hex digest stored for ``key`` (HMAC-SHA256 when a pepper is given)."""
    data = key.encode("utf-8")
    if pepper:
        return hmac.new(pepper, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class APIKeyRecord:
    """What the server stores for one API key (never the key itself).

    Attributes:
        key_id: The public lookup id embedded in the key.
        key_hash: :func:`hash_api_key` of the full key.
        subject: The device or service id.
        kind: ``"device"`` or ``"service"``.
        permissions: Granted permissions.
        roles: Held roles.
        expires_at: Unix time after which the key is refused; ``None`` for no expiry.
    """

    key_id: str
    key_hash: str
    subject: str
    kind: str = "device"
    permissions: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class NewAPIKey:
    """A freshly generated key: hand ``key`` to the device once, store only ``record``."""

    key: str
    record: APIKeyRecord

    def __repr__(self) -> str:
        return f"NewAPIKey(key='***', record={self.record!r})"


def generate_api_key(
    subject: str,
    *,
    kind: str = "device",
    permissions: Iterable[str] = (),
    roles: Iterable[str] = (),
    expires_at: float | None = None,
    pepper: bytes | None = None,
) -> NewAPIKey:
    """Generate an API key with 256 random bits and the record to store for it.

    Example:
        >>> new = generate_api_key("sensor-001", permissions=["readings:write"])
        >>> new.key.startswith("ek_"), new.record.key_hash == hash_api_key(new.key)
        (True, True)
    """
    key_id = secrets.token_hex(8)
    key = f"{API_KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    record = APIKeyRecord(
        key_id, hash_api_key(key, pepper=pepper), subject, kind, frozenset(permissions), frozenset(roles), expires_at
    )
    return NewAPIKey(key, record)


@runtime_checkable
class APIKeyStore(Protocol):
    """Looks up API key records by key id (a database table in production)."""

    async def get(self, key_id: str) -> APIKeyRecord | None:
        """Return the record for ``key_id``, or ``None``."""
        ...


class InMemoryAPIKeyStore:
    """An :class:`APIKeyStore` in a dict (for tests and single-process tools)."""

    def __init__(self, records: Iterable[APIKeyRecord] = ()) -> None:
        self._records = {record.key_id: record for record in records}

    def add(self, record: APIKeyRecord) -> None:
        """Store ``record`` (replacing one with the same key id)."""
        self._records[record.key_id] = record

    def remove(self, key_id: str) -> None:
        """Forget ``key_id`` (revokes the key)."""
        self._records.pop(key_id, None)

    async def get(self, key_id: str) -> APIKeyRecord | None:
        """Return the record for ``key_id``, or ``None``."""
        return self._records.get(key_id)


class APIKeyAuthenticator:
    """Turn a presented API key into a :class:`Principal`, in constant time per record.

    Args:
        store: Where records live.
        pepper: The server-side HMAC key the records were hashed with, if any.
        clock: Returns the current Unix time.
    """

    def __init__(
        self, store: APIKeyStore, *, pepper: bytes | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self._pepper = pepper
        self._clock = clock

    async def authenticate(self, key: str) -> Principal:
        """Return the principal for ``key``.

        Raises:
            InvalidAPIKeyError: Malformed, unknown, wrong or expired key (one message for all).
        """
        parts = key.split("_", 2) if isinstance(key, str) and len(key) <= MAX_API_KEY_LENGTH else []
        record = None
        if len(parts) == 3 and parts[0] == API_KEY_PREFIX and parts[1] and parts[2]:
            record = await self.store.get(parts[1])
        presented = hash_api_key(key if isinstance(key, str) else "", pepper=self._pepper)
        expected = record.key_hash if record is not None else _DUMMY_HASH
        matches = hmac.compare_digest(presented.encode(), expected.encode())
        if record is None or not matches or (record.expires_at is not None and record.expires_at <= self._clock()):
            raise InvalidAPIKeyError()
        return Principal(record.subject, record.kind, record.permissions, record.roles, {}, record.key_id)
