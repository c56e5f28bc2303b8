"""``CacheManager``: JSON values under a key prefix, fail-open, with stampede protection."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from energy_common.cache._backend import CacheBackend
from energy_common.cache._common import CacheKey, Expiry, as_backend, seconds
from energy_common.cache._keys import escape_glob, make_key
from energy_common.cache._serde import decode, dumps
from energy_common.cache._stats import CacheStats, DegradationLog
from energy_common.exceptions import CacheConnectionError, CacheError

__all__ = ["CacheManager"]

T = TypeVar("T")

logger = logging.getLogger("energy_common.cache")


class CacheManager:
    """JSON cache over Redis (or the memory backend) with a key prefix.

    Values are stored as JSON (pydantic models, dataclasses and datetimes included;
    never pickle). When the backend is unreachable, reads return the default and
    writes are dropped with a throttled warning and a counter (``stats``), unless
    ``fail_open=False``, which raises ``CacheConnectionError`` instead.

    Args:
        client: ``redis.asyncio.Redis`` / ``RedisCluster`` or a :class:`CacheBackend`.
        key_prefix: Namespace of every key (``"users"`` → ``users:<key>``).
        default_ttl: Seconds a value lives when ``expire`` is not given (None: forever).
        fail_open: Degrade on backend failures instead of raising.
        lock_ttl: Seconds the cross-process ``get_or_set`` lock lives (bounds a stuck loader).
        owns_backend: Close the backend in :meth:`aclose` (``create_cache`` sets it).

    Example:
        >>> cache = CacheManager(redis_client, key_prefix="users")  # doctest: +SKIP
        >>> await cache.set("user:123", user_data, expire=3600)  # doctest: +SKIP
        >>> await cache.get(("user", user_id))  # parts escaped: no collisions  # doctest: +SKIP
    """

    def __init__(
        self,
        client: Redis | RedisCluster | CacheBackend,
        *,
        key_prefix: str = "cache",
        default_ttl: Expiry | None = 3600,
        fail_open: bool = True,
        lock_ttl: float = 10.0,
        owns_backend: bool = False,
    ) -> None:
        self.backend: CacheBackend = as_backend(client)
        self.key_prefix = key_prefix
        self._prefix = key_prefix if not key_prefix or key_prefix.endswith(":") else f"{key_prefix}:"
        self._lock_prefix = f"{self._prefix}__lock__:"
        self.default_ttl = seconds(default_ttl)
        self.fail_open = fail_open
        self.lock_ttl = lock_ttl
        self.stats = CacheStats()
        self._owns_backend = owns_backend
        self._inflight: dict[str, asyncio.Task[Any]] = {}
        self._degraded = DegradationLog(logger)

    # ------------------------------------------------------------------ keys

    @staticmethod
    def key(*parts: object) -> str:
        """Build a key from parts, escaping each (see :func:`make_key`)."""
        return make_key(*parts)

    def full_key(self, key: CacheKey) -> str:
        """Return the backend key (prefix included) for ``key``."""
        if isinstance(key, tuple):
            return self._prefix + make_key(*key)
        if not isinstance(key, str) or not key:
            raise CacheError("A cache key must be a non-empty string or a tuple of parts.")
        return self._prefix + key

    def _ttl(self, expire: Expiry | None) -> float | None:
        return self.default_ttl if expire is None else seconds(expire)

    # ------------------------------------------------------------------ degradation

    def _degrade(self, exc: CacheConnectionError, what: str) -> None:
        self.stats.errors += 1
        if not self.fail_open:
            raise exc
        self._degraded.warn("Cache %s degraded: %s (prefix %r)", what, exc.message, self.key_prefix)

    def _read_failed(self, exc: CacheConnectionError, reads: int = 1) -> None:
        self._degrade(exc, "read")
        self.stats.degraded_reads += reads

    def _write_failed(self, exc: CacheConnectionError, writes: int = 1) -> None:
        self._degrade(exc, "write")
        self.stats.dropped_writes += writes

    # ------------------------------------------------------------------ reads

    async def get(self, key: CacheKey, default: Any = None, *, model: type[T] | None = None) -> Any:
        """Return the cached value, ``default`` on a miss (or when the backend is down).

        Args:
            key: The key.
            default: Returned on a miss.
            model: Validate the JSON into this type (e.g. a pydantic model).
        """
        raw = await self._read_raw(self.full_key(key))
        if raw is None:
            self.stats.misses += 1
            return default
        self.stats.hits += 1
        return decode(raw, model)

    async def exists(self, key: CacheKey) -> bool:
        """Tell whether ``key`` holds a value (False when the backend is down)."""
        try:
            return await self.backend.exists(self.full_key(key))
        except CacheConnectionError as exc:
            self._degrade(exc, "read")
            return False

    async def get_many(self, keys: Iterable[CacheKey], *, model: type[T] | None = None) -> dict[CacheKey, Any]:
        """Return ``{key: value}`` for the keys that hold a value (one round trip)."""
        wanted = list(keys)
        try:
            raws = await self.backend.get_many([self.full_key(k) for k in wanted])
        except CacheConnectionError as exc:
            self._read_failed(exc, len(wanted))
            raws = [None] * len(wanted)
        found: dict[CacheKey, Any] = {}
        for key, raw in zip(wanted, raws, strict=True):
            if raw is None:
                self.stats.misses += 1
            else:
                self.stats.hits += 1
                found[key] = decode(raw, model)
        return found

    # ------------------------------------------------------------------ writes

    async def set(self, key: CacheKey, value: Any, expire: Expiry | None = None) -> bool:
        """Store ``value`` as JSON; return False if the write was dropped (backend down).

        Raises:
            CacheError: ``value`` is not JSON-serialisable, or ``expire`` is not positive.
        """
        full, data, ttl = self.full_key(key), dumps(value), self._ttl(expire)
        return await self._write(full, data, ttl)

    async def set_many(self, items: Mapping[CacheKey, Any], expire: Expiry | None = None) -> bool:
        """Store several values in one round trip; False if dropped."""
        encoded = {self.full_key(key): dumps(value) for key, value in items.items()}
        try:
            await self.backend.set_many(encoded, self._ttl(expire))
        except CacheConnectionError as exc:
            self._write_failed(exc, len(encoded))
            return False
        return True

    async def delete(self, *keys: CacheKey) -> int:
        """Delete keys; return how many existed (0 when the backend is down)."""
        try:
            return await self.backend.delete([self.full_key(key) for key in keys])
        except CacheConnectionError as exc:
            self._write_failed(exc)
            return 0

    async def delete_pattern(self, pattern: str) -> int:
        """Delete keys under the prefix matching a Redis glob (``"user:*"``), using SCAN.

        The prefix itself is escaped, so a pattern never reaches outside this manager's keys.
        """
        try:
            return await self.backend.delete_pattern(escape_glob(self._prefix) + pattern)
        except CacheConnectionError as exc:
            self._write_failed(exc)
            return 0

    async def incr(self, key: CacheKey, amount: int = 1, *, expire: Expiry | None = None) -> int | None:
        """Increment an integer counter (created at ``amount``); None when the backend is down."""
        try:
            return await self.backend.incr(self.full_key(key), amount, seconds(expire))
        except CacheConnectionError as exc:
            self._write_failed(exc)
            return None

    # ------------------------------------------------------------------ get_or_set

    async def get_or_set(
        self,
        key: CacheKey,
        loader: Callable[[], Awaitable[T]],
        expire: Expiry | None = None,
        *,
        model: type[T] | None = None,
    ) -> T:
        """Return the cached value, or run ``loader`` once, cache and return its result.

        Stampede protection: concurrent callers in this process share one load (single
        flight); across processes a short lock (``SET NX PX``) lets one process load
        while the others poll for the value, loading themselves only if the lock
        holder takes longer than ``lock_ttl``.

        Args:
            key: The key.
            loader: Async callable producing the value on a miss.
            expire: Lifetime of the cached value.
            model: Validate cached JSON into this type on hits.
        """
        full = self.full_key(key)
        task = self._inflight.get(full)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self._load(full, loader, self._ttl(expire), model), name=f"energy-cache-load:{full}"
            )
            self._inflight[full] = task
            task.add_done_callback(lambda done: self._loaded(full, done))
        result: T = await asyncio.shield(task)
        return result

    def _loaded(self, full: str, task: asyncio.Task[Any]) -> None:
        if self._inflight.get(full) is task:
            del self._inflight[full]
        if not task.cancelled():
            task.exception()  # mark as retrieved: every waiter already got it

    async def _read_raw(self, full: str) -> bytes | None:
        try:
            return await self.backend.get(full)
        except CacheConnectionError as exc:
            self._read_failed(exc)
            return None

    async def _load(self, full: str, loader: Callable[[], Awaitable[T]], ttl: float | None, model: type[T] | None) -> T:
        raw = await self._read_raw(full)
        if raw is not None:
            self.stats.hits += 1
            value: T = decode(raw, model)
            return value
        self.stats.misses += 1
        token = os.urandom(12).hex().encode()
        lock = self._lock_prefix + full.removeprefix(self._prefix)
        try:
            locked = await self.backend.set_if_absent(lock, token, self.lock_ttl)
        except CacheConnectionError as exc:
            self._degrade(exc, "lock")
            locked = None  # backend down: load without caching coordination
        if locked is False:
            deadline = time.monotonic() + self.lock_ttl
            delay = 0.01
            while time.monotonic() < deadline:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.2)
                raw = await self._read_raw(full)
                if raw is not None:
                    decoded: T = decode(raw, model)
                    return decoded
        try:
            self.stats.loads += 1
            loaded = await loader()
            await self._write(full, dumps(loaded), ttl)
            return loaded
        finally:
            if locked:
                try:
                    await self.backend.delete_if_equals(lock, token)
                except CacheConnectionError as exc:
                    self._degrade(exc, "unlock")

    async def _write(self, full: str, data: bytes, ttl: float | None) -> bool:
        try:
            await self.backend.set(full, data, ttl)
        except CacheConnectionError as exc:
            self._write_failed(exc)
            return False
        return True

    # ------------------------------------------------------------------ lifecycle

    async def ping(self) -> bool:
        """Ping the backend (for ``energy_common.health.RedisHealthCheck``).

        Raises:
            CacheConnectionError: The backend is unreachable.
        """
        await self.backend.ping()
        return True

    async def health_check(self) -> dict[str, Any]:
        """Ping the backend and report its name, latency and counters.

        Raises:
            CacheConnectionError: The backend is unreachable.
        """
        started = time.perf_counter()
        await self.backend.ping()
        return {
            "backend": self.backend.name,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            **self.stats.as_dict(),
        }

    async def aclose(self) -> None:
        """Cancel pending loads and close the backend if this manager owns it."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._owns_backend:
            await self.backend.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"CacheManager(backend={self.backend.name!r}, key_prefix={self.key_prefix!r})"
