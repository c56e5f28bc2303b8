"""The Redis revocation store (extra ``redis``): revoked ``jti`` values shared by every replica.

Each revoked ``jti`` is one key ``<prefix><jti>`` set with ``NX`` and a TTL that ends
when the token would have expired anyway, so the store never grows without bound.
Redis failures become :class:`~energy_common.exceptions.CacheConnectionError` (503):
authentication fails closed rather than accepting a possibly revoked token.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from energy_common._extras import missing_extra
from energy_common.exceptions import CacheConnectionError, CacheError

try:
    from redis import exceptions as redis_exceptions
    from redis.asyncio import Redis
except ImportError as exc:  # pragma: no cover - exercised by the packaging tests
    raise missing_extra("energy-auth", "redis", exc) from exc

__all__ = ["RedisRevocationStore"]


class RedisRevocationStore:
    """A :class:`~energy_auth.RevocationStore` on Redis.

    Args:
        client: A ``redis.asyncio.Redis`` client (the caller owns and closes it).
        key_prefix: Prefix of the keys this store writes.
        clock: Returns the current Unix time, to turn ``expires_at`` into a TTL.

    Example:
        >>> store = RedisRevocationStore(redis.asyncio.from_url("redis://localhost"))  # doctest: +SKIP
        >>> tokens = TokenManager(secret, revocation_store=store)  # doctest: +SKIP
    """

    def __init__(
        self,
        client: Redis,
        *,
        key_prefix: str = "energy-auth:revoked:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.key_prefix = key_prefix
        self._clock = clock

    async def _call(self, action: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await getattr(self._client, action)(*args, **kwargs)
        except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError) as exc:
            raise CacheConnectionError(
                "The token revocation store (Redis) is unreachable; authentication is refused until it is back."
            ) from exc
        except redis_exceptions.RedisError as exc:
            raise CacheError(f"The token revocation store (Redis) failed: {type(exc).__name__}.") from exc

    async def revoke(self, jti: str, expires_at: float) -> bool:
        """Revoke ``jti`` until ``expires_at`` (at least one second); ``False`` if already revoked."""
        ttl_ms = max(math.ceil((float(expires_at) - self._clock()) * 1000), 1000)
        return bool(await self._call("set", self.key_prefix + jti, b"1", px=ttl_ms, nx=True))

    async def is_revoked(self, jti: str) -> bool:
        """Tell whether ``jti`` is revoked."""
        return bool(await self._call("exists", self.key_prefix + jti))

    def __repr__(self) -> str:
        return f"RedisRevocationStore(key_prefix={self.key_prefix!r})"
