"""Redis backend over ``redis.asyncio.Redis`` or ``RedisCluster``; errors translated here."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from redis import exceptions as redis_exc
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from energy_common.cache._backend import WindowOutcome
from energy_common.cache._scripts import RELEASE_LOCK, SLIDING_WINDOW
from energy_common.exceptions import CacheConnectionError, CacheError

__all__ = ["RedisBackend"]

_CONNECTION_ERRORS = (
    redis_exc.ConnectionError,
    redis_exc.TimeoutError,
    redis_exc.ClusterDownError,
    OSError,
    ConnectionError,
)


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


def _seconds_to_ms(ttl: float | None) -> int | None:
    return None if ttl is None else max(1, round(ttl * 1000))


def _translate(exc: Exception) -> CacheError:
    if isinstance(exc, _CONNECTION_ERRORS):
        return CacheConnectionError(f"Redis is unreachable ({type(exc).__name__}); check the server and the cache URL.")
    return CacheError(f"Redis rejected the command ({type(exc).__name__}).")


_TRANSLATED = (*_CONNECTION_ERRORS, redis_exc.RedisError)


class RedisBackend:
    """Stores cache entries and rate-limit windows in Redis (standalone or cluster).

    Scripts (sliding window, lock release) touch one key each, so they run on any
    cluster node; they are sent with EVALSHA and loaded once on ``NOSCRIPT``.

    Args:
        client: A ``redis.asyncio.Redis`` or ``redis.asyncio.RedisCluster``.
        owns_client: Close the client in :meth:`aclose`.
    """

    name = "redis"

    def __init__(self, client: Redis | RedisCluster, *, owns_client: bool = False) -> None:
        self.client = client
        self.is_cluster = isinstance(client, RedisCluster)
        self._owns_client = owns_client
        self._window_sha = _sha(SLIDING_WINDOW)
        self._release_sha = _sha(RELEASE_LOCK)

    async def _script(self, script: str, sha: str, key: str, *args: Any) -> Any:
        try:
            return await self.client.evalsha(sha, 1, key, *args)
        except redis_exc.NoScriptError:
            # First use on this server (or after SCRIPT FLUSH / failover): load once, retry.
            await self.client.script_load(script)
            return await self.client.evalsha(sha, 1, key, *args)

    async def get(self, key: str) -> bytes | None:
        """Return the value of ``key`` or None."""
        try:
            value: Any = await self.client.get(key)
            return value  # type: ignore[no-any-return]
        except _TRANSLATED as exc:
            raise _translate(exc) from exc

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        """Store ``value`` under ``key`` (``SET key value PX ttl``)."""
        try:
            await self.client.set(key, value, px=_seconds_to_ms(ttl))
        except _TRANSLATED as exc:
            raise _translate(exc) from exc

    async def set_if_absent(self, key: str, value: bytes, ttl: float | None) -> bool:
        """``SET NX``: store only if ``key`` does not exist."""
        try:
            return bool(await self.client.set(key, value, px=_seconds_to_ms(ttl), nx=True))
        except _TRANSLATED as exc:
            raise _translate(exc) from exc

    async def delete(self, keys: Sequence[str]) -> int:
        """Delete keys; return how many existed."""
        if not keys:
            return 0
        try:
            return int(await self.client.delete(*keys))
        except _TRANSLATED as exc:
            raise _translate(exc) from exc

    async def delete_if_equals(self, key: str, value: bytes) -> bool:
        """Delete ``key`` only if it holds ``value`` (atomic, via a script)."""
        try:
            return bool(await self._script(RELEASE_LOCK, self._release_sha, key, value))
        except _TRANSLATED as exc:
            raise _translate(exc) from exc

    async def exists(self, key: str) -> bool:
        """Tell whether ``key`` exists."""
        try:
            return bool(await self.client.exists(key))
        except _TRANSLATED as exc:
            raise _translate(exc) from exc

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """``MGET`` (split per slot on a cluster)."""
        if not keys:
            return []
        try:
            values: Any
            if isinstance(self.client, RedisCluster):
                values = await self.client.mget_nonatomic(list(keys))
            else:
                values = await self.client.mget(list(keys))
            return list(values)
        except _TRANSLATED as exc:
            raise _translate(exc) from exc

    async def set_many(self, items: Mapping[str, bytes], ttl: float | None) -> None:
        """Pipelined ``SET ... PX`` for every item: one round trip (per node on a cluster)."""
        if not items:
            return
        px = _seconds_to_ms(ttl)
        try:
            pipe = self.client.pipeline(transaction=False)
            for key, value in items.items():
                pipe.set(key, value, px=px)
            await pipe.execute()
        except _TRANSLATED as exc:
            raise _translate(exc) from exc

    async def delete_pattern(self, pattern: str) -> int:
        """Delete keys matching ``pattern`` with ``SCAN`` (never ``KEYS``), in batches."""
        deleted = 0
        batch: list[Any] = []
        try:
            async for key in self.client.scan_iter(match=pattern, count=500):
                batch.append(key)
                if len(batch) >= 500:
                    deleted += int(await self.client.delete(*batch))
                    batch.clear()
            if batch:
                deleted += int(await self.client.delete(*batch))
        except _TRANSLATED as exc:
            raise _translate(exc) from exc
        return deleted

    async def incr(self, key: str, amount: int, ttl: float | None) -> int:
        """``INCRBY`` and, for a new counter, ``PEXPIRE ... NX`` in one pipeline."""
        try:
            if ttl is None:
                return int(await self.client.incrby(key, amount))
            pipe = self.client.pipeline(transaction=False)
            pipe.incrby(key, amount)
            pipe.pexpire(key, _seconds_to_ms(ttl) or 1, nx=True)
            value, _ = await pipe.execute()
            return int(value)
        except _TRANSLATED as exc:
            raise _translate(exc) from exc

    async def sliding_window(self, key: str, limit: int, window: float) -> WindowOutcome:
        """One ``EVALSHA`` of the sliding-window script: exactly one round trip."""
        window_us = round(window * 1_000_000)
        try:
            try:
                reply = await self.client.evalsha(self._window_sha, 1, key, limit, window_us)
            except redis_exc.NoScriptError:
                reply = await self._script(SLIDING_WINDOW, self._window_sha, key, limit, window_us)
        except _TRANSLATED as exc:
            raise _translate(exc) from exc
        packed, allowed = divmod(int(reply), 2)
        reset_ms, used = divmod(packed, limit + 1)
        return WindowOutcome(allowed == 1, used, reset_ms / 1000)

    async def ping(self) -> None:
        """``PING``; raises ``CacheConnectionError`` when Redis is down."""
        try:
            await self.client.ping()
        except _TRANSLATED as exc:
            raise _translate(exc) from exc

    async def aclose(self) -> None:
        """Close the client if this backend created it."""
        if self._owns_client:
            await self.client.aclose()
