"""The backend Protocol behind ``CacheManager`` and ``RateLimitCache``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

__all__ = ["CacheBackend", "WindowOutcome"]


class WindowOutcome(NamedTuple):
    """Result of one sliding-window step.

    Attributes:
        allowed: Whether the request was counted (and may proceed).
        used: Requests counted in the window after this step.
        reset_after: Seconds until the oldest counted request leaves the window.
    """

    allowed: bool
    used: int
    reset_after: float


@runtime_checkable
class CacheBackend(Protocol):
    """Byte-level storage used by the cache and the rate limiter.

    Keys arrive fully built (prefix included); values are bytes. Implementations raise
    ``CacheConnectionError`` when the store is unreachable and ``CacheError`` otherwise.
    ``ttl`` is in seconds; ``None`` means no expiry.
    """

    name: str

    async def get(self, key: str) -> bytes | None:
        """Return the value of ``key`` or None."""
        ...

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        """Store ``value`` under ``key``."""
        ...

    async def set_if_absent(self, key: str, value: bytes, ttl: float | None) -> bool:
        """Store only if ``key`` does not exist; return whether it was stored."""
        ...

    async def delete(self, keys: Sequence[str]) -> int:
        """Delete keys; return how many existed."""
        ...

    async def delete_if_equals(self, key: str, value: bytes) -> bool:
        """Delete ``key`` only if it holds ``value`` (lock release)."""
        ...

    async def exists(self, key: str) -> bool:
        """Tell whether ``key`` exists."""
        ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Return values in the order of ``keys``."""
        ...

    async def set_many(self, items: Mapping[str, bytes], ttl: float | None) -> None:
        """Store several values in one round trip."""
        ...

    async def delete_pattern(self, pattern: str) -> int:
        """Delete keys matching a Redis glob ``pattern`` (SCAN, never KEYS)."""
        ...

    async def incr(self, key: str, amount: int, ttl: float | None) -> int:
        """Add ``amount``; ``ttl`` applies when the counter is created."""
        ...

    async def sliding_window(self, key: str, limit: int, window: float) -> WindowOutcome:
        """Count one request in a sliding window of ``window`` seconds unless ``limit`` is reached."""
        ...

    async def ping(self) -> None:
        """Raise if the store is unreachable."""
        ...

    async def aclose(self) -> None:
        """Release connections the backend owns."""
        ...
