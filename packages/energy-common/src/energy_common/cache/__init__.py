"""Cache and rate limiting on Redis (standalone or cluster) or in memory.

Needs the ``cache`` extra (redis)::

    from energy_common.cache import CacheManager, RateLimitCache, create_cache

    cache = CacheManager(redis_client, key_prefix="users")
    await cache.set("user:123", user_data, expire=3600)
    user_data = await cache.get("user:123")

    rate_limit_cache = RateLimitCache(redis_client)
    result = await rate_limit_cache.check_rate_limit("user:123", limit=100, window_seconds=3600)

The FastAPI dependency ``rate_limit`` lives in :mod:`energy_common.cache.web` (extra ``web``).
"""

from energy_common._extras import missing_extra

try:
    import redis.asyncio  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise missing_extra("energy-common", "cache", exc) from exc

from energy_common.cache._backend import CacheBackend, WindowOutcome
from energy_common.cache._common import CacheKey, Expiry
from energy_common.cache._decorator import cached
from energy_common.cache._factory import backend_from_url, create_cache
from energy_common.cache._keys import escape_part, make_key
from energy_common.cache._manager import CacheManager
from energy_common.cache._memory import MemoryBackend
from energy_common.cache._ratelimit import FailurePolicy, RateLimitCache, RateLimitResult, RateLimitStats
from energy_common.cache._redis import RedisBackend
from energy_common.cache._stats import CacheStats

__all__ = [
    "CacheBackend",
    "CacheKey",
    "CacheManager",
    "CacheStats",
    "Expiry",
    "FailurePolicy",
    "MemoryBackend",
    "RateLimitCache",
    "RateLimitResult",
    "RateLimitStats",
    "RedisBackend",
    "WindowOutcome",
    "backend_from_url",
    "cached",
    "create_cache",
    "escape_part",
    "make_key",
]
