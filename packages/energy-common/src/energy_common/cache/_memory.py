"""In-process backend: TTL, bounded size with LRU eviction, same semantics as Redis."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence

from energy_common.cache._backend import WindowOutcome
from energy_common.cache._keys import glob_to_regex
from energy_common.exceptions import CacheError

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """The embedded default: a dict with expiry and LRU eviction, for one process.

    Nothing is shared between processes or replicas: use Redis once a service scales out.

    Args:
        max_size: Most keys kept; the least recently used are evicted beyond it.
        clock: Monotonic clock in seconds (tests may pass their own).

    Example:
        >>> from energy_common.cache import CacheManager, MemoryBackend
        >>> cache = CacheManager(MemoryBackend(max_size=1000), key_prefix="users")
    """

    name = "memory"

    def __init__(self, *, max_size: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        if max_size < 1:
            raise CacheError("max_size must be at least 1.")
        self.max_size = max_size
        self._clock = clock
        self._data: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._windows: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def _live(self, key: str) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires <= self._clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    def _store(self, key: str, value: bytes, ttl: float | None) -> None:
        self._data[key] = (value, None if ttl is None else self._clock() + ttl)
        self._data.move_to_end(key)
        while len(self._data) > self.max_size:
            self._data.popitem(last=False)

    async def get(self, key: str) -> bytes | None:
        """Return the value of ``key`` or None."""
        return self._live(key)

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        """Store ``value`` under ``key``."""
        self._store(key, value, ttl)

    async def set_if_absent(self, key: str, value: bytes, ttl: float | None) -> bool:
        """Store only if ``key`` does not exist."""
        if self._live(key) is not None:
            return False
        self._store(key, value, ttl)
        return True

    async def delete(self, keys: Sequence[str]) -> int:
        """Delete keys; return how many existed."""
        return sum(1 for key in keys if self._live(key) is not None and self._data.pop(key, None) is not None)

    async def delete_if_equals(self, key: str, value: bytes) -> bool:
        """Delete ``key`` only if it holds ``value``."""
        if self._live(key) == value:
            del self._data[key]
            return True
        return False

    async def exists(self, key: str) -> bool:
        """Tell whether ``key`` exists."""
        return self._live(key) is not None

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """Return values in the order of ``keys``."""
        return [self._live(key) for key in keys]

    async def set_many(self, items: Mapping[str, bytes], ttl: float | None) -> None:
        """Store several values."""
        for key, value in items.items():
            self._store(key, value, ttl)

    async def delete_pattern(self, pattern: str) -> int:
        """Delete keys matching a Redis glob ``pattern``."""
        regex = glob_to_regex(pattern)
        doomed = [key for key in list(self._data) if regex.fullmatch(key) and self._live(key) is not None]
        for key in doomed:
            del self._data[key]
        return len(doomed)

    async def incr(self, key: str, amount: int, ttl: float | None) -> int:
        """Add ``amount`` to an integer counter; ``ttl`` applies when it is created."""
        raw = self._live(key)
        if raw is None:
            value = amount
            self._store(key, str(value).encode(), ttl)
            return value
        try:
            value = int(raw) + amount
        except ValueError as exc:
            raise CacheError(f"Key {key!r} does not hold an integer; it cannot be incremented.") from exc
        expires = self._data[key][1]
        self._data[key] = (str(value).encode(), expires)
        return value

    async def sliding_window(self, key: str, limit: int, window: float) -> WindowOutcome:
        """Count one request in a sliding window unless ``limit`` requests are already in it."""
        now = self._clock()
        stamps = self._windows.get(key)
        if stamps is None:
            stamps = self._windows[key] = deque()
        self._windows.move_to_end(key)
        while stamps and stamps[0] <= now - window:
            stamps.popleft()
        allowed = len(stamps) < limit
        if allowed:
            stamps.append(now)
        while len(self._windows) > self.max_size:
            self._windows.popitem(last=False)
        reset_after = stamps[0] + window - now if stamps else 0.0
        return WindowOutcome(allowed, len(stamps), max(reset_after, 0.0))

    async def ping(self) -> None:
        """Always reachable."""

    async def aclose(self) -> None:
        """Drop every key."""
        self._data.clear()
        self._windows.clear()
