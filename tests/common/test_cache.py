"""CacheManager behaviour, run by the same test bodies on the memory backend and on real Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import energy_common.cache as cache_pkg
import pytest
from energy_common.cache import (
    CacheBackend,
    CacheManager,
    MemoryBackend,
    RedisBackend,
    cached,
    create_cache,
    make_key,
)
from energy_common.exceptions import CacheError, ConfigurationError
from pydantic import BaseModel
from redis.asyncio.cluster import RedisCluster


class Reading(BaseModel):
    device: str
    value: float
    at: datetime


@pytest.fixture
async def cluster_client(cluster_port: int) -> AsyncIterator[RedisCluster]:
    """A redis.asyncio RedisCluster client of the private cluster."""
    client = RedisCluster(host="127.0.0.1", port=cluster_port)
    await client.initialize()
    yield client
    await client.aclose()


@pytest.fixture(params=["memory", "redis", "cluster"])
def backend(request: pytest.FixtureRequest) -> CacheBackend:
    """The in-memory backend, Redis on the shared server (keys namespaced per test) or a Redis Cluster."""
    if request.param == "memory":
        return MemoryBackend(max_size=1_000)
    if request.param == "cluster":
        return RedisBackend(request.getfixturevalue("cluster_client"))
    return RedisBackend(request.getfixturevalue("redis_client"))


@pytest.fixture
def cache(backend: CacheBackend, redis_key_prefix: str) -> CacheManager:
    """A CacheManager under this test's unique key prefix."""
    return CacheManager(backend, key_prefix=f"{redis_key_prefix}c", default_ttl=60)


def test_public_api_is_pinned() -> None:
    """The package's public names stay stable and sorted."""
    assert cache_pkg.__all__ == sorted(cache_pkg.__all__)
    assert {"CacheManager", "RateLimitCache", "MemoryBackend", "RedisBackend", "cached", "create_cache"} <= set(
        cache_pkg.__all__
    )


@pytest.mark.parametrize(
    "value",
    [
        {"name": "John", "tags": ["a", "b"]},
        [1, 2.5, None, True],
        "plain string",
        42,
        {"nested": {"deep": [{"x": 1}]}},
    ],
)
async def test_set_get_roundtrip(cache: CacheManager, value: Any) -> None:
    """JSON values come back equal; a write reports success."""
    assert await cache.set("user:123", value, expire=3600) is True
    assert await cache.get("user:123") == value


async def test_pydantic_models_and_datetimes(cache: CacheManager) -> None:
    """Pydantic models and aware datetimes are stored as JSON and can be read back as the model."""
    reading = Reading(device="d1", value=1.5, at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    await cache.set(("reading", "d1"), reading)
    assert await cache.get(("reading", "d1"), model=Reading) == reading
    plain = await cache.get(("reading", "d1"))
    assert plain == {"device": "d1", "value": 1.5, "at": "2026-01-02T03:04:05Z"}
    await cache.set("when", reading.at)
    assert await cache.get("when", model=datetime) == reading.at


async def test_values_are_json_never_pickle(cache: CacheManager) -> None:
    """The stored bytes are JSON; values without a JSON form are refused with CacheError."""
    await cache.set("k", {"a": 1})
    raw = await cache.backend.get(cache.full_key("k"))
    assert raw is not None
    assert json.loads(raw) == {"a": 1}
    with pytest.raises(CacheError):
        await cache.set("bad", object())


async def test_value_not_fitting_the_model_is_a_cache_error(cache: CacheManager) -> None:
    """Reading a value into a model it does not fit raises CacheError instead of returning garbage."""
    await cache.set("k", {"device": "d1"})
    with pytest.raises(CacheError):
        await cache.get("k", model=Reading)


async def test_miss_default_exists_delete(cache: CacheManager) -> None:
    """Misses return the default; exists and delete report what is there."""
    assert await cache.get("nope") is None
    assert await cache.get("nope", default="d") == "d"
    assert not await cache.exists("nope")
    await cache.set("a", 1)
    await cache.set("b", 2)
    assert await cache.exists("a")
    assert await cache.delete("a", "b", "c") == 2
    assert not await cache.exists("a")
    assert cache.stats.hits == 0
    assert cache.stats.misses == 2


async def test_ttl_expiry(cache: CacheManager) -> None:
    """A value disappears after its expiry (float seconds honoured)."""
    await cache.set("short", "v", expire=0.2)
    await cache.set("long", "v")
    assert await cache.get("short") == "v"
    for _ in range(40):
        if await cache.get("short") is None:
            break
        await asyncio.sleep(0.05)
    assert await cache.get("short") is None
    assert await cache.get("long") == "v"


async def test_get_many_set_many(cache: CacheManager) -> None:
    """set_many stores every item; get_many returns only the hits."""
    assert await cache.set_many({"a": 1, ("b", "x:y"): [2], "c": {"three": 3}}, expire=30)
    found = await cache.get_many(["a", ("b", "x:y"), "missing", "c"])
    assert found == {"a": 1, ("b", "x:y"): [2], "c": {"three": 3}}
    assert await cache.get_many([]) == {}


async def test_delete_pattern_stays_inside_prefix(backend: CacheBackend, redis_key_prefix: str) -> None:
    """delete_pattern removes matching keys under its own prefix only, even with glob characters in it."""
    odd = CacheManager(backend, key_prefix=f"{redis_key_prefix}o[*]")
    other = CacheManager(backend, key_prefix=f"{redis_key_prefix}o1")
    for i in range(30):
        await odd.set(f"user:{i}", i)
        await other.set(f"user:{i}", i)
    await odd.set("device:1", "d")
    assert await odd.delete_pattern("user:*") == 30
    assert await odd.get("device:1") == "d"
    assert await other.get("user:5") == 5
    assert await odd.delete_pattern("nothing:*") == 0


async def test_incr_counts_and_expires(cache: CacheManager) -> None:
    """incr creates a counter, adds to it, and a TTL given at creation expires it."""
    assert await cache.incr("hits") == 1
    assert await cache.incr("hits", 5) == 6
    assert await cache.incr("temp", expire=0.2) == 1
    for _ in range(40):
        if not await cache.exists("temp"):
            break
        await asyncio.sleep(0.05)
    assert not await cache.exists("temp")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("user", "1:2"), ("user:1", "2")),
        (("a", "*"), ("a", "x")),
        (("a", "%3A"), ("a", ":")),
        (("a", "b c"), ("a", "b%20c")),
    ],
)
async def test_escaped_key_parts_never_collide(
    cache: CacheManager, first: tuple[str, ...], second: tuple[str, ...]
) -> None:
    """Tuple keys are escaped part by part, so different parts never share a stored key."""
    assert make_key(*first) != make_key(*second)
    await cache.set(first, "first")
    await cache.set(second, "second")
    assert await cache.get(first) == "first"
    assert await cache.get(second) == "second"


async def test_get_or_set_stampede_runs_loader_once(cache: CacheManager) -> None:
    """100 concurrent get_or_set calls on a cold key run the loader exactly once."""
    calls = 0

    async def loader() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return {"answer": 42}

    results = await asyncio.gather(*(cache.get_or_set("hot", loader, expire=30) for _ in range(100)))
    assert calls == 1
    assert all(r == {"answer": 42} for r in results)
    assert await cache.get_or_set("hot", loader) == {"answer": 42}
    assert calls == 1


async def test_get_or_set_across_processes_uses_the_lock(backend: CacheBackend, redis_key_prefix: str) -> None:
    """Two managers (standing for two processes) share one load through the backend lock."""
    calls = 0

    async def loader() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.1)
        return "v"

    first = CacheManager(backend, key_prefix=f"{redis_key_prefix}p")
    second = CacheManager(backend, key_prefix=f"{redis_key_prefix}p")
    results = await asyncio.gather(
        *(manager.get_or_set("shared", loader) for manager in (first, second) for _ in range(20))
    )
    assert results == ["v"] * 40
    assert calls == 1


async def test_get_or_set_loader_error_reaches_all_and_is_not_cached(cache: CacheManager) -> None:
    """A failing loader's error reaches every waiter, nothing is cached and the next call retries."""
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        if attempts == 1:
            raise RuntimeError("source down")
        return "ok"

    results = await asyncio.gather(*(cache.get_or_set("k", flaky) for _ in range(10)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await cache.get_or_set("k", flaky) == "ok"
    assert attempts == 2


async def test_cached_decorator(cache: CacheManager) -> None:
    """@cached memoises per argument set and shares concurrent calls."""
    calls: list[tuple[str, int]] = []

    @cached(cache, expire=30)
    async def lookup(device: str, *, scale: int = 1) -> dict[str, Any]:
        calls.append((device, scale))
        await asyncio.sleep(0.01)
        return {"device": device, "scale": scale}

    assert await lookup("d1") == {"device": "d1", "scale": 1}
    await asyncio.gather(*(lookup("d1") for _ in range(10)))
    assert await lookup("d1", scale=2) == {"device": "d1", "scale": 2}
    assert await lookup("d2") == {"device": "d2", "scale": 1}
    assert calls == [("d1", 1), ("d1", 2), ("d2", 1)]

    @cached(lambda: cache, key=lambda device: ("custom", device), model=Reading)
    async def reading(device: str) -> Reading:
        return Reading(device=device, value=2.0, at=datetime(2026, 1, 1, tzinfo=UTC))

    first = await reading("d9")
    assert await reading("d9") == first
    assert await cache.get(("custom", "d9"), model=Reading) == first


@pytest.mark.parametrize("key", ["", None, 5])
async def test_bad_keys_and_expiry_are_refused(cache: CacheManager, key: Any) -> None:
    """Empty or non-string keys and non-positive expiry raise CacheError."""
    with pytest.raises(CacheError):
        await cache.set(key, 1)
    with pytest.raises(CacheError):
        await cache.set("ok", 1, expire=0)


async def test_health_check_reports_backend(cache: CacheManager) -> None:
    """health_check names the backend and includes the counters."""
    report = await cache.health_check()
    assert report["backend"] == cache.backend.name
    assert "dropped_writes" in report
    assert await cache.ping() is True  # lets energy_common.health.RedisHealthCheck wrap a CacheManager


async def test_create_cache_by_scheme(redis_url: str, redis_key_prefix: str) -> None:
    """create_cache picks memory:// or redis:// and closes what it created."""
    async with create_cache("memory://?max_size=5", key_prefix="m") as memory:
        assert isinstance(memory.backend, MemoryBackend)
        assert memory.backend.max_size == 5
        await memory.set("a", 1)
        assert await memory.get("a") == 1
    async with create_cache(redis_url, key_prefix=f"{redis_key_prefix}r") as remote:
        assert isinstance(remote.backend, RedisBackend)
        await remote.set("a", 1, expire=5)
        assert await remote.get("a") == 1
        assert await remote.delete("a") == 1


@pytest.mark.parametrize("url", ["memcached://localhost", "memory://?max_size=lots", "http://x"])
def test_create_cache_refuses_unknown_urls(url: str) -> None:
    """Unknown schemes and bad options raise ConfigurationError."""
    with pytest.raises(ConfigurationError):
        create_cache(url)


def test_manager_refuses_foreign_clients() -> None:
    """Anything that is neither a redis client nor a CacheBackend is refused."""
    with pytest.raises(CacheError):
        CacheManager(object())  # type: ignore[arg-type]


async def test_seed_readme_cache_example(redis_client: Any, redis_key_prefix: str) -> None:
    """The seed README's cache and rate-limit example runs as written (new import path) on Redis."""
    from energy_common.cache import CacheManager, RateLimitCache

    user_data = {"id": 123, "name": "John"}
    cache = CacheManager(redis_client, key_prefix=f"{redis_key_prefix}users")
    await cache.set("user:123", user_data, expire=3600)
    assert await cache.get("user:123") == user_data

    rate_limit_cache = RateLimitCache(redis_client)
    result = await rate_limit_cache.check_rate_limit(f"{redis_key_prefix}user:123", limit=100, window_seconds=3600)
    assert (result.allowed, result.limit, result.remaining) == (True, 100, 99)


async def test_rate_limit_on_cluster(cluster_client: RedisCluster) -> None:
    """The sliding-window script runs on a Redis Cluster and stays exact under concurrency."""
    from energy_common.cache import RateLimitCache

    limiter = RateLimitCache(cluster_client)
    results = await asyncio.gather(*(limiter.check_rate_limit("burst", limit=20, window_seconds=30) for _ in range(60)))
    assert sum(r.allowed for r in results) == 20
