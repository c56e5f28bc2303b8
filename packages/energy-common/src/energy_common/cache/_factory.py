"""``create_cache(url)``: pick the backend from the URL scheme."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster

from energy_common.cache._backend import CacheBackend
from energy_common.cache._manager import CacheManager
from energy_common.cache._memory import MemoryBackend
from energy_common.cache._redis import RedisBackend
from energy_common.exceptions import ConfigurationError

__all__ = ["backend_from_url", "create_cache"]


def backend_from_url(
    url: str, *, max_connections: int = 50, pool_timeout: float = 10.0, **redis_options: Any
) -> CacheBackend:
    """Build a backend: ``redis://`` / ``rediss://`` (``?cluster=true`` for Redis Cluster) or ``memory://``.

    ``memory://?max_size=5000`` sets the memory backend's size bound. A standalone Redis
    client gets a *blocking* pool: beyond ``max_connections`` callers wait (up to
    ``pool_timeout`` seconds) instead of failing at once under a burst.

    Raises:
        ConfigurationError: Unknown scheme or bad option.
    """
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == "memory":
        try:
            return MemoryBackend(max_size=int(query.get("max_size", "10000")))
        except ValueError as exc:
            raise ConfigurationError("memory:// max_size must be an integer.") from exc
    if parts.scheme in {"redis", "rediss"}:
        if query.get("cluster", "").lower() in {"1", "true", "yes"}:
            plain = url.replace("cluster=" + query["cluster"], "").rstrip("?&")
            return RedisBackend(RedisCluster.from_url(plain, **redis_options), owns_client=True)
        pool = BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=pool_timeout, **redis_options
        )
        return RedisBackend(Redis.from_pool(pool), owns_client=True)
    raise ConfigurationError(f"Unsupported cache URL scheme {parts.scheme!r}; use redis://, rediss:// or memory://.")


def create_cache(url: str, *, key_prefix: str = "cache", **options: Any) -> CacheManager:
    """Create a :class:`CacheManager` that owns a backend chosen by the URL scheme.

    Args:
        url: ``redis://host:6379/0``, ``rediss://...``, ``redis://...?cluster=true`` or ``memory://``.
        key_prefix: Namespace of the keys.
        **options: Further ``CacheManager`` options (``default_ttl``, ``fail_open``, ``lock_ttl``).

    Example:
        >>> async with create_cache("memory://", key_prefix="users") as cache:  # doctest: +SKIP
        ...     await cache.set("user:1", {"name": "John"})
    """
    return CacheManager(backend_from_url(url), key_prefix=key_prefix, owns_backend=True, **options)
