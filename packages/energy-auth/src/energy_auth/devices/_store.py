"""The credential store Protocol and the in-memory store (the embedded default)."""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from energy_common.exceptions import ValidationError

from energy_auth.devices._records import DeviceCredential, DeviceCredentialInfo

__all__ = ["MAX_LIST_LIMIT", "DeviceCredentialStore", "InMemoryDeviceCredentialStore", "check_list_args"]

MAX_LIST_LIMIT = 1000


def check_list_args(after: str | None, limit: int) -> None:
    """Validate the paging arguments of :meth:`DeviceCredentialStore.list` (shared by every store).

    Raises:
        ValidationError: ``limit`` is outside 1..1000 or ``after`` is not a string.
    """
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise ValidationError(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}.", {"limit": limit})
    if after is not None and not isinstance(after, str):
        raise ValidationError("after must be a device id (the last one of the previous page).")


@runtime_checkable
class DeviceCredentialStore(Protocol):
    """Where device credentials live: memory, Redis (``energy_auth.devices.redis``) or SQL
    (``energy_auth.devices.sql``). Every implementation passes the same test bodies.

    Records are replaced only at the version that was read (optimistic concurrency), so two
    replicas rotating the same device at once cannot both win.
    """

    async def get(self, device_id: str) -> DeviceCredential | None:
        """Return the credential of ``device_id`` (hashes included, for verification), or ``None``."""
        ...

    async def create(self, credential: DeviceCredential) -> bool:
        """Store a new credential; ``False`` (nothing written) if the device already has one."""
        ...

    async def replace(self, credential: DeviceCredential, expected_version: int) -> bool:
        """Overwrite the stored credential if its version is still ``expected_version``.

        Returns:
            ``False`` (nothing written) if it changed meanwhile or no longer exists.
        """
        ...

    async def delete(self, device_id: str) -> bool:
        """Remove the credential; ``False`` if there was none."""
        ...

    async def list(self, *, after: str | None = None, limit: int = 100) -> list[DeviceCredentialInfo]:
        """Return up to ``limit`` credentials ordered by device id, after ``after`` — never hashes.

        Raises:
            ValidationError: ``limit`` is outside 1..1000.
        """
        ...


class InMemoryDeviceCredentialStore:
    """A :class:`DeviceCredentialStore` in this process's memory (demo, tests, one replica).

    Example:
        >>> store = InMemoryDeviceCredentialStore()
        >>> credentials = DeviceCredentials(store)  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._records: dict[str, DeviceCredential] = {}
        self._lock = asyncio.Lock()

    async def get(self, device_id: str) -> DeviceCredential | None:
        """Return the credential of ``device_id``, or ``None``."""
        return self._records.get(device_id)

    async def create(self, credential: DeviceCredential) -> bool:
        """Store a new credential; ``False`` if the device already has one."""
        async with self._lock:
            if credential.device_id in self._records:
                return False
            self._records[credential.device_id] = credential
            return True

    async def replace(self, credential: DeviceCredential, expected_version: int) -> bool:
        """Overwrite the credential if its stored version is ``expected_version``."""
        async with self._lock:
            current = self._records.get(credential.device_id)
            if current is None or current.version != expected_version:
                return False
            self._records[credential.device_id] = credential
            return True

    async def delete(self, device_id: str) -> bool:
        """Remove the credential; ``False`` if there was none."""
        async with self._lock:
            return self._records.pop(device_id, None) is not None

    async def list(self, *, after: str | None = None, limit: int = 100) -> list[DeviceCredentialInfo]:
        """Return up to ``limit`` credentials (no hashes) ordered by device id, after ``after``."""
        check_list_args(after, limit)
        ids = sorted(d for d in self._records if after is None or d > after)[:limit]
        return [self._records[d].info() for d in ids]

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return f"InMemoryDeviceCredentialStore({len(self._records)} devices)"
