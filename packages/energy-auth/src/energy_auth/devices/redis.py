"""The Redis credential store (extra ``redis``): shared by every replica.

One hash per device, ``<prefix>dev:<device_id>`` with fields ``data`` (the JSON record)
and ``version``; a sorted set ``<prefix>index`` (all scores 0) orders device ids for
listing. Create, replace and delete are Lua scripts, so a record and the index never
disagree and a replace only lands at the version that was read. JSON only, never pickle.
Redis failures become :class:`~energy_common.exceptions.CacheConnectionError` (503).
"""

from __future__ import annotations

import json
from typing import Any

from energy_common._extras import missing_extra
from energy_common.exceptions import CacheConnectionError, CacheError

try:
    from redis import exceptions as redis_exceptions
    from redis.asyncio import Redis
except ImportError as exc:  # pragma: no cover - exercised by the packaging tests
    raise missing_extra("energy-auth", "redis", exc) from exc

from energy_auth.devices._records import DeviceCredential, DeviceCredentialInfo
from energy_auth.devices._store import check_list_args

__all__ = ["RedisDeviceCredentialStore"]

_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'version', ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[3])
return 1
"""
_REPLACE = """
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'version', ARGV[2])
return 1
"""
_DELETE = """
local removed = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return removed
"""


class RedisDeviceCredentialStore:
    """A :class:`~energy_auth.devices.DeviceCredentialStore` on Redis.

    Args:
        client: A ``redis.asyncio.Redis`` client (the caller owns and closes it).
        key_prefix: Prefix of every key this store writes.

    Example:
        >>> store = RedisDeviceCredentialStore(redis.asyncio.from_url("redis://localhost"))  # doctest: +SKIP
    """

    def __init__(self, client: Redis, *, key_prefix: str = "energy-auth:devices:") -> None:
        self._client = client
        self.key_prefix = key_prefix
        self._index = f"{key_prefix}index"
        self._create = client.register_script(_CREATE)
        self._replace = client.register_script(_REPLACE)
        self._delete = client.register_script(_DELETE)

    def _key(self, device_id: str) -> str:
        return f"{self.key_prefix}dev:{device_id}"

    async def _call(self, what: str, step: Any) -> Any:
        try:
            return await step
        except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError) as exc:
            raise CacheConnectionError(
                "The device credential store (Redis) is unreachable; devices cannot authenticate until it is back."
            ) from exc
        except redis_exceptions.RedisError as exc:
            raise CacheError(f"The device credential store (Redis) failed to {what}: {type(exc).__name__}.") from exc

    @staticmethod
    def _decode(raw: Any) -> DeviceCredential | None:
        if raw is None:
            return None
        try:
            return DeviceCredential.from_dict(json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            raise CacheError(
                "A stored device credential is corrupt; delete it and provision the device again."
            ) from exc

    async def get(self, device_id: str) -> DeviceCredential | None:
        """Return the credential of ``device_id``, or ``None``."""
        return self._decode(await self._call("read", self._client.hget(self._key(device_id), "data")))

    async def create(self, credential: DeviceCredential) -> bool:
        """Store a new credential; ``False`` if the device already has one."""
        data = json.dumps(credential.to_dict(), separators=(",", ":"))
        keys = [self._key(credential.device_id), self._index]
        args = [data, str(credential.version), credential.device_id]
        return bool(await self._call("create", self._create(keys=keys, args=args)))

    async def replace(self, credential: DeviceCredential, expected_version: int) -> bool:
        """Overwrite the credential if its stored version is ``expected_version``."""
        data = json.dumps(credential.to_dict(), separators=(",", ":"))
        args = [data, str(credential.version), str(expected_version)]
        return bool(await self._call("replace", self._replace(keys=[self._key(credential.device_id)], args=args)))

    async def delete(self, device_id: str) -> bool:
        """Remove the credential; ``False`` if there was none."""
        keys = [self._key(device_id), self._index]
        return bool(await self._call("delete", self._delete(keys=keys, args=[device_id])))

    async def list(self, *, after: str | None = None, limit: int = 100) -> list[DeviceCredentialInfo]:
        """Return up to ``limit`` credentials (no hashes) ordered by device id, after ``after``."""
        check_list_args(after, limit)
        low = "-" if after is None else f"({after}"
        ids = await self._call("list", self._client.zrangebylex(self._index, low, "+", start=0, num=limit))
        if not ids:
            return []
        keys = [self._key(i.decode() if isinstance(i, bytes) else str(i)) for i in ids]
        async with self._client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hget(key, "data")
            rows = await self._call("list", pipe.execute())
        return [record.info() for record in map(self._decode, rows) if record is not None]

    def __repr__(self) -> str:
        return f"RedisDeviceCredentialStore(key_prefix={self.key_prefix!r})"
