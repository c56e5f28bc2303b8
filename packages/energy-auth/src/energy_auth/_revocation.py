"""Token revocation keyed by ``jti``: the store Protocol and the in-memory store."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["InMemoryRevocationStore", "RevocationStore"]


@runtime_checkable
class RevocationStore(Protocol):
    """Where revoked token ids (``jti``) live until the token would have expired anyway.

    Implementations: :class:`InMemoryRevocationStore` (one process) and
    :class:`energy_auth.redis.RedisRevocationStore` (shared by every replica).
    """

    async def revoke(self, jti: str, expires_at: float) -> bool:
        """Revoke ``jti`` until Unix time ``expires_at``.

        Returns:
            ``True`` if this call revoked it, ``False`` if it was already revoked (so
            a refresh token can be used exactly once, even by racing requests).
        """
        ...

    async def is_revoked(self, jti: str) -> bool:
        """Tell whether ``jti`` is revoked."""
        ...


class InMemoryRevocationStore:
    """A revocation store in this process's memory; entries vanish when the token expires.

    Good for a single process and for tests. With several replicas use
    :class:`energy_auth.redis.RedisRevocationStore`, or a token revoked on one replica
    stays valid on the others.

    Args:
        clock: Returns the current Unix time (injectable for tests).

    Example:
        >>> import asyncio
        >>> store = InMemoryRevocationStore()
        >>> asyncio.run(store.revoke("jti-1", time.time() + 60))
        True
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._entries: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []

    def _purge(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            expires_at, jti = heapq.heappop(self._expiry)
            if self._entries.get(jti) == expires_at:
                del self._entries[jti]

    async def revoke(self, jti: str, expires_at: float) -> bool:
        """Revoke ``jti`` until ``expires_at`` (at least one second from now)."""
        now = self._clock()
        self._purge(now)
        if jti in self._entries:
            return False
        expires_at = max(float(expires_at), now + 1.0)
        self._entries[jti] = expires_at
        heapq.heappush(self._expiry, (expires_at, jti))
        return True

    async def is_revoked(self, jti: str) -> bool:
        """Tell whether ``jti`` is revoked and its entry has not expired."""
        expires_at = self._entries.get(jti)
        return expires_at is not None and expires_at > self._clock()

    def __len__(self) -> int:
        self._purge(self._clock())
        return len(self._entries)
