"""API keys for devices and services: high-entropy keys stored only as hashes.

A key looks like ``ek_<key id>_<secret>``. The key id (16 hex digits, the key's public
prefix) finds the record; the stored value is SHA-256 (or HMAC-SHA256 with a server-side
pepper) of the whole key, compared with :func:`hmac.compare_digest`. A 256-bit random
secret needs no slow password hash: a leaked table of hashes cannot be brute-forced.

Stores: :class:`InMemoryAPIKeyStore` here, ``energy_auth.api_keys_redis.RedisAPIKeyStore``
(extra ``redis``) and ``energy_auth.api_keys_sql.SQLAPIKeyStore`` (extra ``db``), all
:class:`MutableAPIKeyStore`: they record when a key was last used (at most once per
``touch_interval``) and :func:`rotate_api_key` replaces a key with a grace period.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

from energy_common.exceptions import ResourceNotFoundError

from energy_auth._errors import InvalidAPIKeyError
from energy_auth._principal import Principal

__all__ = [
    "APIKeyAuthenticator",
    "APIKeyRecord",
    "APIKeyStore",
    "InMemoryAPIKeyStore",
    "MutableAPIKeyStore",
    "NewAPIKey",
    "generate_api_key",
    "hash_api_key",
    "rotate_api_key",
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
        created_at: Unix time the key was generated.
        last_used_at: Unix time of the last successful use (``None``: never), kept to
            within the authenticator's ``touch_interval``.
    """

    key_id: str
    key_hash: str
    subject: str
    kind: str = "device"
    permissions: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    expires_at: float | None = None
    created_at: float | None = None
    last_used_at: float | None = None


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
        key_id,
        hash_api_key(key, pepper=pepper),
        subject,
        kind,
        frozenset(permissions),
        frozenset(roles),
        expires_at,
        created_at=time.time(),
    )
    return NewAPIKey(key, record)


@runtime_checkable
class APIKeyStore(Protocol):
    """Looks up API key records by key id (a database table in production)."""

    async def get(self, key_id: str) -> APIKeyRecord | None:
        """Return the record for ``key_id``, or ``None``."""
        ...


@runtime_checkable
class MutableAPIKeyStore(APIKeyStore, Protocol):
    """A store that can also add, remove and mark keys as used (every store we ship)."""

    async def add(self, record: APIKeyRecord) -> None:
        """Store ``record``, replacing one with the same key id."""
        ...

    async def remove(self, key_id: str) -> bool:
        """Delete ``key_id`` (revokes the key); ``False`` if it was not there."""
        ...

    async def touch(self, key_id: str, used_at: float) -> None:
        """Record that ``key_id`` was used at ``used_at`` (nothing if it is gone)."""
        ...


class InMemoryAPIKeyStore:
    """A :class:`MutableAPIKeyStore` in a dict (for tests and single-process tools)."""

    def __init__(self, records: Iterable[APIKeyRecord] = ()) -> None:
        self._records = {record.key_id: record for record in records}

    async def add(self, record: APIKeyRecord) -> None:
        """Store ``record`` (replacing one with the same key id)."""
        self._records[record.key_id] = record

    async def remove(self, key_id: str) -> bool:
        """Forget ``key_id`` (revokes the key)."""
        return self._records.pop(key_id, None) is not None

    async def touch(self, key_id: str, used_at: float) -> None:
        """Record the last use of ``key_id``."""
        record = self._records.get(key_id)
        if record is not None:
            self._records[key_id] = replace(record, last_used_at=used_at)

    async def get(self, key_id: str) -> APIKeyRecord | None:
        """Return the record for ``key_id``, or ``None``."""
        return self._records.get(key_id)


async def rotate_api_key(
    store: MutableAPIKeyStore,
    key_id: str,
    *,
    grace: float = 3600.0,
    pepper: bytes | None = None,
    clock: Callable[[], float] = time.time,
) -> NewAPIKey:
    """Replace the key ``key_id`` by a new one with the same grants; the old one works for ``grace`` seconds more.

    Args:
        store: Where the keys live.
        key_id: The key to replace.
        grace: Seconds the old key keeps working (time to deploy the new one); 0 ends it now.
        pepper: The server pepper the store's hashes use.
        clock: Returns the current Unix time.

    Returns:
        The new key (hand ``key`` to the device; its record is already stored).

    Raises:
        ResourceNotFoundError: No key ``key_id``.
    """
    old = await store.get(key_id)
    if old is None:
        raise ResourceNotFoundError("API key", key_id)
    new = generate_api_key(
        old.subject,
        kind=old.kind,
        permissions=old.permissions,
        roles=old.roles,
        expires_at=old.expires_at,
        pepper=pepper,
    )
    await store.add(new.record)
    ends = clock() + max(0.0, grace)
    await store.add(replace(old, expires_at=ends if old.expires_at is None else min(old.expires_at, ends)))
    return new


class APIKeyAuthenticator:
    """Turn a presented API key into a :class:`Principal`, in constant time per record.

    Args:
        store: Where records live.
        pepper: The server-side HMAC key the records were hashed with, if any.
        clock: Returns the current Unix time.
        touch_interval: With a :class:`MutableAPIKeyStore`, a successful use is recorded
            when the stored ``last_used_at`` is older than this (seconds): at most one
            write per key per interval, not one per request.
    """

    def __init__(
        self,
        store: APIKeyStore,
        *,
        pepper: bytes | None = None,
        clock: Callable[[], float] = time.time,
        touch_interval: float = 60.0,
    ) -> None:
        self.store = store
        self._pepper = pepper
        self._clock = clock
        self.touch_interval = touch_interval

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
        now = self._clock()
        if record is None or not matches or (record.expires_at is not None and record.expires_at <= now):
            raise InvalidAPIKeyError()
        if isinstance(self.store, MutableAPIKeyStore) and (
            record.last_used_at is None or now - record.last_used_at >= self.touch_interval
        ):
            await self.store.touch(record.key_id, now)
        return Principal(record.subject, record.kind, record.permissions, record.roles, {}, record.key_id)
