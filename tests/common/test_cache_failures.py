"""Cache behaviour when Redis is unreachable or killed, and the memory backend's own bounds."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as redis_asyncio
from energy_common.cache import CacheManager, MemoryBackend
from energy_common.exceptions import CacheConnectionError, CacheError
from energy_common.health import RedisHealthCheck
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _client(port: int) -> redis_asyncio.Redis:
    # No retries: the test asserts on the first failure instead of waiting for backoff.
    return redis_asyncio.Redis(
        host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=1, retry=Retry(NoBackoff(), 0)
    )


@pytest.fixture
async def dead_client() -> AsyncIterator[redis_asyncio.Redis]:
    """A client pointed at a loopback port where nothing listens."""
    client = _client(_free_port())
    yield client
    await client.aclose()


async def test_unreachable_redis_fails_open(dead_client: redis_asyncio.Redis, caplog: pytest.LogCaptureFixture) -> None:
    """Reads degrade to misses and writes are dropped with a warning and counters."""
    cache = CacheManager(dead_client, key_prefix="down")
    with caplog.at_level(logging.WARNING, logger="energy_common.cache"):
        assert await cache.get("k", default="fallback") == "fallback"
        assert await cache.set("k", 1) is False
        assert await cache.set_many({"a": 1, "b": 2}) is False
        assert await cache.get_many(["a", "b"]) == {}
        assert await cache.delete("k") == 0
        assert await cache.incr("n") is None
        assert await cache.exists("k") is False
        assert await cache.delete_pattern("*") == 0
    assert cache.stats.dropped_writes == 6
    assert cache.stats.degraded_reads == 3
    assert cache.stats.errors == 8
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # throttled: one warning, not one per call
    assert "degraded" in warnings[0].getMessage()


async def test_unreachable_redis_get_or_set_still_loads(dead_client: redis_asyncio.Redis) -> None:
    """get_or_set falls back to calling the loader when Redis is down."""
    cache = CacheManager(dead_client, key_prefix="down")

    async def loader() -> str:
        return "fresh"

    assert await cache.get_or_set("k", loader) == "fresh"
    assert cache.stats.loads == 1


async def test_unreachable_redis_can_be_configured_to_raise(dead_client: redis_asyncio.Redis) -> None:
    """With fail_open=False every operation raises CacheConnectionError."""
    cache = CacheManager(dead_client, key_prefix="down", fail_open=False)
    with pytest.raises(CacheConnectionError):
        await cache.get("k")
    with pytest.raises(CacheConnectionError):
        await cache.set("k", 1)
    with pytest.raises(CacheConnectionError):
        await cache.health_check()


async def test_killed_redis_degrades_then_recovers(redis_server_factory: Callable[[], Any]) -> None:
    """Killing Redis turns reads into misses and the health check red; after a restart all works again."""
    server = redis_server_factory()
    client = _client(server.port)
    try:
        cache = CacheManager(client, key_prefix="k")
        assert await cache.set("a", 1)
        assert (await cache.health_check())["backend"] == "redis"
        server.kill()
        assert await cache.get("a") is None
        assert await cache.set("b", 2) is False
        with pytest.raises(CacheConnectionError):
            await cache.health_check()
        with pytest.raises(CacheConnectionError):
            await RedisHealthCheck(cache, name="cache", critical=False).check()
        server.start()
        assert await cache.set("b", 2)
        assert await cache.get("b") == 2
        await RedisHealthCheck(cache).check()
    finally:
        await client.aclose()


async def test_memory_backend_evicts_least_recently_used() -> None:
    """Beyond max_size the least recently used key is evicted; a read refreshes recency."""
    backend = MemoryBackend(max_size=3)
    cache = CacheManager(backend, key_prefix="lru")
    for key in ("a", "b", "c"):
        await cache.set(key, key)
    assert await cache.get("a") == "a"  # a is now most recent
    await cache.set("d", "d")
    assert await cache.get("b") is None
    assert [await cache.get(k) for k in ("a", "c", "d")] == ["a", "c", "d"]
    assert len(backend) == 3
    await backend.aclose()
    assert len(backend) == 0


async def test_memory_backend_uses_its_clock_and_refuses_bad_sizes() -> None:
    """Expiry follows the injected clock; a non-positive max_size is refused."""
    now = [100.0]
    backend = MemoryBackend(clock=lambda: now[0])
    cache = CacheManager(backend, key_prefix="clock")
    await cache.set("k", "v", expire=10)
    now[0] += 9.9
    assert await cache.get("k") == "v"
    now[0] += 0.2
    assert await cache.get("k") is None
    with pytest.raises(CacheError):
        MemoryBackend(max_size=0)


async def test_memory_backend_incr_on_non_integer_is_an_error() -> None:
    """Incrementing a non-integer value raises CacheError, as Redis does."""
    cache = CacheManager(MemoryBackend(), key_prefix="x")
    await cache.set("text", "abc")
    with pytest.raises(CacheError):
        await cache.incr("text")


async def test_delete_pattern_uses_scan_never_keys(redis_server_factory: Callable[[], Any]) -> None:
    """delete_pattern walks the keyspace with SCAN and never sends the blocking KEYS command."""
    server = redis_server_factory()
    client = _client(server.port)
    try:
        cache = CacheManager(client, key_prefix="scan")
        await cache.set_many({f"user:{i}": i for i in range(1_200)})
        await cache.set("device:1", 1)
        await client.config_resetstat()
        assert await cache.delete_pattern("user:*") == 1_200
        calls = {name.removeprefix("cmdstat_") for name in await client.info("commandstats")}
        assert "scan" in calls
        assert "keys" not in calls
        assert await cache.get("device:1") == 1
    finally:
        await client.aclose()
