"""Redis-backed device registry (extra ``redis``), shared by every replica.

Keys (``prefix`` defaults to ``energy:devices:``): ``{prefix}records`` (hash id → JSON
record) and ``{prefix}status`` (hash id → ``"<seq> <status> <seen>"``). Status updates
run as one Lua script, so two replicas receiving the same Last Will cannot race.
"""

from __future__ import annotations

import json
from typing import Any

from energy_common._extras import missing_extra

try:
    import redis.asyncio as redis_asyncio
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing_extra("energy-messaging", "redis", exc) from exc

from energy_common.exceptions import CacheConnectionError

from energy_messaging.devices._registry import Device, DeviceState

__all__ = ["RedisDeviceRegistry"]

# KEYS[1] status hash; ARGV: id, seq, status, seen. Same rule as energy_messaging.devices._registry.accepts_status().
_SET_STATUS = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local seq = tonumber(ARGV[2])
if cur then
  local cseq, cstatus = string.match(cur, '^(%d+) (%a+)')
  cseq = tonumber(cseq)
  if seq < cseq then return 0 end
  if seq == cseq and not (cstatus == 'online' and ARGV[3] == 'offline') then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. ARGV[4])
return 1
"""


class RedisDeviceRegistry:
    """Device registry in Redis.

    Args:
        client: A ``redis.asyncio.Redis`` client (owned by the caller).
        prefix: Key prefix.

    Raises:
        CacheConnectionError: From every method when Redis fails.
    """

    def __init__(self, client: redis_asyncio.Redis, *, prefix: str = "energy:devices:") -> None:
        self._redis = client
        self._records = f"{prefix}records"
        self._status = f"{prefix}status"
        self._script = client.register_script(_SET_STATUS)

    @staticmethod
    def _merge(record: Any, status: Any) -> Device:
        device = Device.from_dict(json.loads(record))
        if status:
            text = status.decode() if isinstance(status, bytes) else str(status)
            seq, state, seen = text.split(" ", 2)
            device.status_seq, device.status = int(seq), state  # type: ignore[assignment]
            device.last_seen = max(device.last_seen or 0.0, float(seen)) or None
        return device

    async def add(self, device: Device) -> None:
        """Insert or replace a device (its status lives separately)."""
        try:
            await self._redis.hset(self._records, device.device_id, json.dumps(device.to_dict()))
        except RedisError as exc:
            raise CacheConnectionError(f"Redis failed while saving a device: {exc}") from exc

    async def remove(self, device_id: str) -> bool:
        """Delete a device; return whether it existed."""
        try:
            removed = await self._redis.hdel(self._records, device_id)
            await self._redis.hdel(self._status, device_id)
        except RedisError as exc:
            raise CacheConnectionError(f"Redis failed while removing a device: {exc}") from exc
        return bool(removed)

    async def get(self, device_id: str) -> Device | None:
        """Return a device or None."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hget(self._records, device_id)
                pipe.hget(self._status, device_id)
                record, status = await pipe.execute()
        except RedisError as exc:
            raise CacheConnectionError(f"Redis failed while reading a device: {exc}") from exc
        return None if record is None else self._merge(record, status)

    async def list(self, device_type: str | None = None, status: DeviceState | None = None) -> list[Device]:
        """Return devices, optionally filtered, ordered by id."""
        try:
            records = await self._redis.hgetall(self._records)
            statuses = await self._redis.hgetall(self._status)
        except RedisError as exc:
            raise CacheConnectionError(f"Redis failed while listing devices: {exc}") from exc
        devices = [self._merge(raw, statuses.get(key)) for key, raw in records.items()]
        return sorted(
            (
                d
                for d in devices
                if (device_type is None or d.device_type == device_type) and (status is None or d.status == status)
            ),
            key=lambda d: d.device_id,
        )

    async def set_status(self, device_id: str, status: DeviceState, seq: int, seen: float) -> bool:
        """Apply a status message atomically if it is newer (see :func:`accepts_status`)."""
        try:
            if not await self._redis.hexists(self._records, device_id):
                return False
            applied = await self._script(keys=[self._status], args=[device_id, seq, status, repr(seen)])
        except RedisError as exc:
            raise CacheConnectionError(f"Redis failed while updating a device status: {exc}") from exc
        return bool(applied)

    async def touch(self, device_id: str, seen: float) -> None:
        """Record the last-seen time (kept in the record)."""
        try:
            raw = await self._redis.hget(self._records, device_id)
            if raw is None:
                return
            data = json.loads(raw)
            data["last_seen"] = seen
            await self._redis.hset(self._records, device_id, json.dumps(data))
        except RedisError as exc:
            raise CacheConnectionError(f"Redis failed while updating last-seen: {exc}") from exc
