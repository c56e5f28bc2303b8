"""RateLimitCache on the memory backend and real Redis: exactness, concurrency, failure policies."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as redis_asyncio
from energy_common.cache import CacheBackend, FailurePolicy, MemoryBackend, RateLimitCache, RedisBackend
from energy_common.exceptions import ConfigurationError, ServiceUnavailableError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


@pytest.fixture
async def pooled_client(redis_url: str) -> AsyncIterator[redis_asyncio.Redis]:
    """A client whose pool queues callers beyond 20 connections (the production setting)."""
    pool = redis_asyncio.BlockingConnectionPool.from_url(redis_url, max_connections=20, timeout=10)
    client = redis_asyncio.Redis.from_pool(pool)
    yield client
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> CacheBackend:
    """The in-memory backend, or a Redis backend on the shared server (keys removed by redis_client)."""
    if request.param == "memory":
        return MemoryBackend()
    request.getfixturevalue("redis_client")  # cleans this test's keys afterwards
    return RedisBackend(request.getfixturevalue("pooled_client"))


@pytest.fixture
def limiter(backend: CacheBackend, redis_key_prefix: str) -> RateLimitCache:
    """A limiter whose keys live under this test's prefix."""
    return RateLimitCache(backend, key_prefix=f"{redis_key_prefix}rl")


def _dead_client() -> redis_asyncio.Redis:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return redis_asyncio.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))


async def test_counts_down_then_denies(limiter: RateLimitCache) -> None:
    """The first `limit` checks pass with decreasing remaining; the next is denied with a retry time."""
    results = [await limiter.check_rate_limit("user:123", limit=3, window_seconds=60) for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0]
    denied = results[-1]
    assert 0 < denied.retry_after <= 60
    assert denied.reset_after == denied.retry_after
    assert results[0].retry_after == 0
    assert denied.headers()["Retry-After"] == str(int(-(-denied.retry_after // 1)))
    assert results[0].headers()["RateLimit-Limit"] == "3"
    assert "Retry-After" not in results[0].headers()


async def test_window_slides(limiter: RateLimitCache) -> None:
    """Once the oldest request leaves the window, a new one is allowed again."""
    for _ in range(2):
        assert (await limiter.check_rate_limit("k", limit=2, window_seconds=0.3)).allowed
    denied = await limiter.check_rate_limit("k", limit=2, window_seconds=0.3)
    assert not denied.allowed
    await asyncio.sleep(denied.retry_after + 0.05)
    assert (await limiter.check_rate_limit("k", limit=2, window_seconds=0.3)).allowed


async def test_concurrent_callers_never_exceed_the_limit(limiter: RateLimitCache) -> None:
    """200 concurrent checks against a limit of 50 allow exactly 50."""
    results = await asyncio.gather(
        *(limiter.check_rate_limit(("burst", "device-1"), limit=50, window_seconds=60) for _ in range(200))
    )
    assert sum(r.allowed for r in results) == 50
    assert limiter.stats.allowed == 50
    assert limiter.stats.denied == 150


async def test_keys_are_independent_and_escaped(limiter: RateLimitCache) -> None:
    """Different keys have separate windows, and tuple parts containing ':' never collide."""
    assert (await limiter.check_rate_limit(("user", "1:2"), limit=1, window_seconds=60)).allowed
    assert (await limiter.check_rate_limit(("user:1", "2"), limit=1, window_seconds=60)).allowed
    assert not (await limiter.check_rate_limit(("user", "1:2"), limit=1, window_seconds=60)).allowed


@pytest.mark.parametrize(("limit", "window"), [(0, 60), (-1, 60), (1.5, 60), (True, 60), (5, 0), (5, -1)])
async def test_bad_limits_are_configuration_errors(limiter: RateLimitCache, limit: Any, window: float) -> None:
    """A non-positive or non-integer limit, or a non-positive window, raises ConfigurationError."""
    with pytest.raises(ConfigurationError):
        await limiter.check_rate_limit("k", limit=limit, window_seconds=window)


async def test_fail_closed_is_the_default() -> None:
    """With Redis unreachable the default policy refuses with 503 ServiceUnavailableError."""
    client = _dead_client()
    try:
        limiter = RateLimitCache(client)
        assert limiter.failure_policy is FailurePolicy.CLOSED
        with pytest.raises(ServiceUnavailableError) as info:
            await limiter.check_rate_limit("login:1.2.3.4", limit=5, window_seconds=60)
        assert info.value.status_code == 503
        assert info.value.headers["Retry-After"] == "1"
        assert limiter.stats.failed_closed == 1
    finally:
        await client.aclose()


async def test_fail_open_allows_and_counts() -> None:
    """A fail-open limit (default or per call) allows the request, marks it degraded and counts it."""
    client = _dead_client()
    try:
        limiter = RateLimitCache(client, failure_policy="open")
        result = await limiter.check_rate_limit("read:1", limit=5, window_seconds=60)
        assert result.allowed
        assert result.degraded
        closed = RateLimitCache(client)
        assert (await closed.check_rate_limit("x", limit=1, window_seconds=1, failure_policy="open")).degraded
        assert limiter.stats.failed_open == 1
    finally:
        await client.aclose()


async def test_one_round_trip_per_check_and_noscript_recovery(redis_server_factory: Callable[[], Any]) -> None:
    """Each check is a single EVALSHA; after SCRIPT FLUSH the script is reloaded once."""
    server = redis_server_factory()
    client = redis_asyncio.Redis(host="127.0.0.1", port=server.port)
    try:
        limiter = RateLimitCache(client)
        await limiter.check_rate_limit("warm", limit=10, window_seconds=60)  # loads the script
        await client.config_resetstat()
        for _ in range(20):
            await limiter.check_rate_limit("k", limit=10, window_seconds=60)
        stats = await client.info("commandstats")
        calls = {name: data["calls"] for name, data in stats.items()}
        assert calls.pop("cmdstat_evalsha") == 20
        # Commands run inside the script are counted too; nothing else was sent by the client.
        inside_script = {"time", "zremrangebyscore", "zcard", "zadd", "pexpire", "zrange"}
        assert {name.removeprefix("cmdstat_") for name in calls} <= inside_script | {"config|resetstat"}
        assert calls["cmdstat_time"] == 20
        await client.script_flush()
        assert not (await limiter.check_rate_limit("k", limit=10, window_seconds=60)).allowed
        assert (await limiter.check_rate_limit("other", limit=10, window_seconds=60)).allowed
    finally:
        await client.aclose()


async def test_health_check(limiter: RateLimitCache) -> None:
    """health_check names the backend and reports counters."""
    await limiter.check_rate_limit("h", limit=1, window_seconds=10)
    report = await limiter.health_check()
    assert report["backend"] == limiter.backend.name
    assert report["allowed"] == 1
