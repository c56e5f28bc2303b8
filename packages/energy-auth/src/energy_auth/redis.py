"""The Redis revocation store (extra ``redis``): revoked ``jti`` values shared by every replica.

Each revoked ``jti`` is one key ``<prefix><jti>`` set with ``NX`` and a TTL that ends
when the token would have expired anyway, so the store never grows without bound. A
revoked family is the key ``<prefix>family:<id>``; a subject's not-before time the key
``<prefix>subject:<sub>`` (kept while tokens issued before it could still be valid).
:meth:`RedisRevocationStore.status` reads all three in one pipelined round trip.
Redis failures become :class:`~energy_common.exceptions.CacheConnectionError` (503):
authentication fails closed rather than accepting a possibly revoked token.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from energy_common._extras import missing_extra
from energy_common.exceptions import CacheConnectionError, CacheError

from energy_auth._revocation import FAMILY_PREFIX, RevocationStatus

try:
    from redis import exceptions as redis_exceptions
    from redis.asyncio import Redis
except ImportError as exc:  # pragma: no cover - exercised by the packaging tests
    raise missing_extra("energy-auth", "redis", exc) from exc

__all__ = ["RedisRevocationStore"]

# SET the not-before time unless a later one is stored; refresh the TTL either way.
_KEEP_LATEST = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) >= tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


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
        return await self._guarded(lambda: getattr(self._client, action)(*args, **kwargs))

    async def _guarded(self, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await call()
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

    def _subject_key(self, subject: str) -> str:
        return f"{self.key_prefix}subject:{subject}"

    async def revoke_subject(self, subject: str, not_before: float, expires_at: float) -> None:
        """Revoke ``subject``'s tokens issued before ``not_before`` until ``expires_at`` (a later time wins)."""
        ttl_ms = max(math.ceil((float(expires_at) - self._clock()) * 1000), 1000)
        await self._call("eval", _KEEP_LATEST, 1, self._subject_key(subject), repr(float(not_before)), ttl_ms)

    async def status(self, jti: str, family: str | None, subject: str | None) -> RevocationStatus:
        """The revocation state of one token, in one pipelined round trip."""

        async def run() -> list[Any]:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.exists(self.key_prefix + jti)
                if family is not None:
                    pipe.exists(self.key_prefix + FAMILY_PREFIX + family)
                if subject is not None:
                    pipe.get(self._subject_key(subject))
                return list(await pipe.execute())

        results = await self._guarded(run)
        token = bool(results.pop(0))
        revoked_family = bool(results.pop(0)) if family is not None else False
        raw = results.pop(0) if subject is not None else None
        return RevocationStatus(token, revoked_family, float(raw) if isinstance(raw, bytes | str) else None)

    def __repr__(self) -> str:
        return f"RedisRevocationStore(key_prefix={self.key_prefix!r})"
