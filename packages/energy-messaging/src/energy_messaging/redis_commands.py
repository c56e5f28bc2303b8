"""Redis-backed command store (extra ``redis``), shared by every replica; Redis Cluster ready.

Keys (``prefix`` defaults to ``{energy:commands}:``; the ``{...}`` hash tag puts every key
of one store in one cluster slot, so each Lua script touches one slot):

| key | type | what |
|---|---|---|
| ``{prefix}c:<command id>`` | string | the command's JSON record (expires ``retention`` s after it finished) |
| ``{prefix}i:<device id>:<idempotency key>`` | string | the first command id of that key |
| ``{prefix}f:<device id>`` | set | unfinished command ids of the device (the in-flight limit) |
| ``{prefix}open`` | set | every unfinished command id (resume after a restart) |

Creating (idempotency check, in-flight limit, insert) and every compare-and-set are one
Lua script each, so two replicas never create two commands for one key nor move one
command twice.
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

from energy_messaging._errors import CommandStoreError
from energy_messaging.devices._commands import Command
from energy_messaging.devices._store import limit_error

__all__ = ["RedisCommandStore"]

# KEYS: record, idempotency key, device in-flight set, open set. ARGV: id, json, has key, limit.
_CREATE = """
if ARGV[3] == '1' then
  local first = redis.call('GET', KEYS[2])
  if first then return {0, first} end
end
local limit = tonumber(ARGV[4])
if limit > 0 and redis.call('SCARD', KEYS[3]) >= limit then return {2, ''} end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[3] == '1' then redis.call('SET', KEYS[2], ARGV[1]) end
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
return {1, ARGV[1]}
"""

# KEYS: record, device in-flight set, open set, idempotency key. ARGV: expected version, json, id,
# finished flag, retention seconds, has key.
_REPLACE = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if tostring(cjson.decode(current)['version']) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[4] == '1' then
  redis.call('SREM', KEYS[2], ARGV[3])
  redis.call('SREM', KEYS[3], ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  if ARGV[6] == '1' then redis.call('EXPIRE', KEYS[4], ARGV[5]) end
end
return 1
"""


class RedisCommandStore:
    """Command store in Redis (or Redis Cluster): any replica can look a command up and move it.

    Args:
        client: A ``redis.asyncio.Redis`` or ``RedisCluster`` client (owned by the caller).
        prefix: Key prefix; keep a ``{...}`` hash tag in it on Redis Cluster.
        retention: Seconds a finished command (and its idempotency key) is kept.

    Raises:
        CommandStoreError: From every method when Redis fails.
    """

    def __init__(self, client: Any, *, prefix: str = "{energy:commands}:", retention: int = 7 * 86_400) -> None:
        self._redis: redis_asyncio.Redis = client
        self._prefix = prefix
        self._retention = int(retention)
        self._create = client.register_script(_CREATE)
        self._replace = client.register_script(_REPLACE)

    def _key(self, kind: str, *parts: str) -> str:
        return f"{self._prefix}{kind}:{':'.join(parts)}" if parts else f"{self._prefix}{kind}"

    def _idem(self, command: Command) -> str:
        return self._key("i", command.device_id, command.idempotency_key or "")

    async def create(self, command: Command, *, max_in_flight: int | None = None) -> tuple[Command, bool]:
        """Store a new command (see :class:`~energy_messaging.devices.CommandStore`)."""
        command.version = 1
        keys = [self._key("c", command.command_id), self._idem(command), self._key("f", command.device_id)]
        keys.append(self._key("open"))
        args = [command.command_id, json.dumps(command.to_dict()), int(command.idempotency_key is not None)]
        try:
            outcome, value = await self._create(keys=keys, args=[*args, max_in_flight or 0])
            if int(outcome) == 0:
                first = await self.get(value.decode() if isinstance(value, bytes) else str(value))
                if first is not None:
                    return first, False
                raise CommandStoreError(
                    "The idempotency key names a command that is gone; retry with a new key.",
                    {"idempotency_key": command.idempotency_key},
                )
        except RedisError as exc:
            raise CommandStoreError(f"Redis failed while storing a command: {exc}") from exc
        if int(outcome) == 2:
            raise limit_error(command.device_id, int(max_in_flight or 0))
        return command, True

    async def get(self, command_id: str) -> Command | None:
        """Return the command or None."""
        try:
            raw = await self._redis.get(self._key("c", command_id))
        except RedisError as exc:
            raise CommandStoreError(f"Redis failed while reading a command: {exc}") from exc
        return None if raw is None else Command.from_dict(json.loads(raw))

    async def replace(self, command: Command, expected_version: int) -> bool:
        """Compare-and-set on the version (one Lua script)."""
        record = Command.from_dict(command.to_dict())
        record.version = expected_version + 1
        keys = [self._key("c", command.command_id), self._key("f", command.device_id), self._key("open")]
        keys.append(self._idem(command))
        args = [expected_version, json.dumps(record.to_dict()), command.command_id, int(command.done)]
        try:
            applied = await self._replace(
                keys=keys, args=[*args, self._retention, int(command.idempotency_key is not None)]
            )
        except RedisError as exc:
            raise CommandStoreError(f"Redis failed while updating a command: {exc}") from exc
        if applied:
            command.version = record.version
        return bool(applied)

    async def open_commands(self, device_id: str | None = None) -> list[Command]:
        """Return unfinished commands (of one device, or all), oldest first."""
        try:
            ids = await self._redis.smembers(self._key("f", device_id) if device_id else self._key("open"))
            keys = [self._key("c", i.decode() if isinstance(i, bytes) else str(i)) for i in ids]
            raws = await self._redis.mget(keys) if keys else []
        except RedisError as exc:
            raise CommandStoreError(f"Redis failed while listing commands: {exc}") from exc
        found = [Command.from_dict(json.loads(raw)) for raw in raws if raw is not None]
        return sorted((c for c in found if not c.done), key=lambda c: c.history[0][1] if c.history else 0.0)
