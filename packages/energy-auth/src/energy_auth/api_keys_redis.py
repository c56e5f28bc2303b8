"""The Redis API key store (extra ``redis``): key records shared by every replica, hashed at rest.

One Redis hash ``<prefix><key id>`` per key holding what :class:`~energy_auth.APIKeyRecord`
holds: the key's SHA-256/HMAC digest (never the key), subject, kind, grants and times.
A key with an expiry also expires in Redis (a day after it stops working, so
``last_used_at`` stays readable for a while). Redis failures become
:class:`~energy_common.exceptions.CacheConnectionError` (503): authentication fails closed.
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

from energy_auth._api_key_codec import record_fields, record_from_fields
from energy_auth._api_keys import APIKeyRecord

__all__ = ["RedisAPIKeyStore"]

KEEP_AFTER_EXPIRY = 86_400.0
# Only an existing record is touched (a removed key must not come back as a stub).
_TOUCH = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HSET', KEYS[1], 'last_used_at', ARGV[1]) end return 0"


class RedisAPIKeyStore:
    """A :class:`~energy_auth.MutableAPIKeyStore` on Redis.

    Args:
        client: A ``redis.asyncio.Redis`` client (the caller owns and closes it).
        key_prefix: Prefix of the keys this store writes.
        clock: Returns the current Unix time (for the Redis expiry of expiring keys).

    Example:
        >>> store = RedisAPIKeyStore(redis.asyncio.from_url("redis://localhost"))  # doctest: +SKIP
        >>> await store.add(generate_api_key("sensor-001").record)  # doctest: +SKIP
    """

    def __init__(
        self, client: Redis, *, key_prefix: str = "energy-auth:api-key:", clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self.key_prefix = key_prefix
        self._clock = clock

    async def _call(self, action: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await getattr(self._client, action)(*args, **kwargs)
        except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError) as exc:
            raise CacheConnectionError(
                "The API key store (Redis) is unreachable; API keys are refused until it is back."
            ) from exc
        except redis_exceptions.RedisError as exc:
            raise CacheError(f"The API key store (Redis) failed: {type(exc).__name__}.") from exc

    async def add(self, record: APIKeyRecord) -> None:
        """Store ``record`` (replacing one with the same key id), expiring a day after the key does."""
        name = self.key_prefix + record.key_id
        fields = {k: ("" if v is None else str(v)) for k, v in record_fields(record).items()}
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(name)
            pipe.hset(name, mapping=fields)  # type: ignore[arg-type]
            if record.expires_at is not None:
                ttl_ms = max(math.ceil((record.expires_at + KEEP_AFTER_EXPIRY - self._clock()) * 1000), 1000)
                pipe.pexpire(name, ttl_ms)
            await self._call_pipeline(pipe)

    async def _call_pipeline(self, pipe: Any) -> Any:
        try:
            return await pipe.execute()
        except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError) as exc:
            raise CacheConnectionError("The API key store (Redis) is unreachable; retry shortly.") from exc
        except redis_exceptions.RedisError as exc:
            raise CacheError(f"The API key store (Redis) failed: {type(exc).__name__}.") from exc

    async def get(self, key_id: str) -> APIKeyRecord | None:
        """Return the record for ``key_id``, or ``None``.

        Raises:
            CacheError: The stored hash is not a record this store wrote.
        """
        fields = await self._call("hgetall", self.key_prefix + key_id)
        if not fields:
            return None
        try:
            return record_from_fields({k.decode() if isinstance(k, bytes) else k: v for k, v in fields.items()})
        except (KeyError, ValueError, TypeError) as exc:
            raise CacheError(f"The API key record {key_id!r} in Redis is malformed; remove and re-issue it.") from exc

    async def remove(self, key_id: str) -> bool:
        """Delete ``key_id`` (revokes the key); ``False`` if it was not there."""
        return bool(await self._call("delete", self.key_prefix + key_id))

    async def touch(self, key_id: str, used_at: float) -> None:
        """Record the last use of ``key_id`` (nothing if it was removed)."""
        await self._call("eval", _TOUCH, 1, self.key_prefix + key_id, repr(float(used_at)))

    def __repr__(self) -> str:
        return f"RedisAPIKeyStore(key_prefix={self.key_prefix!r})"
