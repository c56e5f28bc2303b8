"""Shared by the cache and the rate limiter: key and expiry types, client wrapping."""

from __future__ import annotations

from datetime import timedelta

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from energy_common.cache._backend import CacheBackend
from energy_common.cache._redis import RedisBackend
from energy_common.exceptions import CacheError

__all__ = ["CacheKey", "Expiry", "as_backend", "seconds"]

#: A key: a string used as given, or a tuple of parts escaped with ``make_key``.
CacheKey = str | tuple[object, ...]
#: Seconds (int/float) or a ``timedelta``.
Expiry = float | timedelta


def as_backend(client: Redis | RedisCluster | CacheBackend) -> CacheBackend:
    """Wrap a redis.asyncio client in :class:`RedisBackend`; pass a backend through."""
    if isinstance(client, (Redis, RedisCluster)):
        return RedisBackend(client)
    if isinstance(client, CacheBackend):
        return client
    raise CacheError(f"Expected a redis.asyncio client or a CacheBackend, got {type(client).__name__}.")


def seconds(expire: Expiry | None) -> float | None:
    """Convert an expiry to seconds (None stays None).

    Raises:
        CacheError: The expiry is not positive.
    """
    if expire is None:
        return None
    value = expire.total_seconds() if isinstance(expire, timedelta) else float(expire)
    if value <= 0:
        raise CacheError("expire must be positive (seconds or a timedelta).")
    return value
