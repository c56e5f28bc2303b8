"""The API key stores (memory, Redis, SQLite, PostgreSQL) by the same bodies: hashed at rest, last use, expiry, rotation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from energy_auth import (
    APIKeyAuthenticator,
    InMemoryAPIKeyStore,
    InvalidAPIKeyError,
    MutableAPIKeyStore,
    generate_api_key,
    rotate_api_key,
)
from energy_common.exceptions import ResourceNotFoundError

from .conftest import Clock

STORES = [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=STORES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Any]:
    """Which store, and its engine: a Redis client or a database URL (resolved outside the event loop)."""
    if request.param == "redis":
        return "redis", request.getfixturevalue("redis_client")
    if request.param == "sqlite":
        return "sql", f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    if request.param == "postgres":
        return "sql", request.getfixturevalue("postgres_url")
    return "memory", None


@pytest.fixture
async def store(engine: tuple[str, Any], clock: Clock, redis_key_prefix: str) -> AsyncIterator[Any]:
    """Each API key store we ship, empty, namespaced for this test."""
    kind, target = engine
    if kind == "memory":
        yield InMemoryAPIKeyStore()
    elif kind == "redis":
        from energy_auth.api_keys_redis import RedisAPIKeyStore

        yield RedisAPIKeyStore(target, key_prefix=redis_key_prefix, clock=clock)
    else:
        from energy_auth.api_keys_sql import API_KEYS_TABLE, SQLAPIKeyStore
        from energy_common.database import Database

        async with Database(target) as database:
            sql_store = SQLAPIKeyStore(database)
            await sql_store.create_table()
            try:
                yield sql_store
            finally:
                async with database.engine.begin() as connection:
                    await connection.execute(API_KEYS_TABLE.delete())


async def test_stores_round_trip_records_and_never_hold_the_key(store: Any, clock: Clock) -> None:
    """A stored record comes back equal; what is stored is the digest, never the key."""
    assert isinstance(store, MutableAPIKeyStore)
    new = generate_api_key("sensor-001", permissions=["readings:write"], roles=["device"], expires_at=clock.now + 3600)
    await store.add(new.record)
    assert await store.get(new.record.key_id) == new.record
    assert new.key not in repr(await store.get(new.record.key_id))
    assert await store.get("0000000000000000") is None
    assert await store.remove(new.record.key_id)
    assert not await store.remove(new.record.key_id)
    assert await store.get(new.record.key_id) is None


async def test_authentication_records_last_use_at_most_once_per_interval(store: Any, clock: Clock) -> None:
    """A successful use sets last_used_at; uses within touch_interval write nothing more."""
    new = generate_api_key("sensor-002")
    await store.add(new.record)
    authenticator = APIKeyAuthenticator(store, clock=clock, touch_interval=60)
    assert (await authenticator.authenticate(new.key)).subject == "sensor-002"
    first = (await store.get(new.record.key_id)).last_used_at
    assert first == clock.now
    clock.advance(30)
    await authenticator.authenticate(new.key)
    assert (await store.get(new.record.key_id)).last_used_at == first
    clock.advance(31)
    await authenticator.authenticate(new.key)
    assert (await store.get(new.record.key_id)).last_used_at == clock.now
    await store.remove(new.record.key_id)
    await store.touch(new.record.key_id, clock.now)  # a removed key does not come back
    assert await store.get(new.record.key_id) is None


async def test_expired_removed_and_wrong_keys_are_refused(store: Any, clock: Clock) -> None:
    """Expired, removed, tampered and unknown keys all get the same InvalidAPIKeyError."""
    expiring = generate_api_key("svc", kind="service", expires_at=clock.now + 60)
    kept = generate_api_key("svc")
    await store.add(expiring.record)
    await store.add(kept.record)
    authenticator = APIKeyAuthenticator(store, clock=clock)
    assert (await authenticator.authenticate(expiring.key)).kind == "service"
    clock.advance(61)
    for key in [expiring.key, kept.key[:-1] + ("A" if kept.key[-1] != "A" else "B"), "ek_ffffffffffffffff_nope"]:
        with pytest.raises(InvalidAPIKeyError):
            await authenticator.authenticate(key)
    await store.remove(kept.record.key_id)
    with pytest.raises(InvalidAPIKeyError):
        await authenticator.authenticate(kept.key)


async def test_rotation_keeps_grants_and_ends_the_old_key_after_the_grace(store: Any, clock: Clock) -> None:
    """rotate_api_key stores a new key with the same grants; the old key works for the grace period, then not."""
    old = generate_api_key("meter-7", permissions=["readings:write"], roles=["device"])
    await store.add(old.record)
    new = await rotate_api_key(store, old.record.key_id, grace=300, clock=clock)
    assert new.record.key_id != old.record.key_id
    assert (new.record.subject, new.record.permissions, new.record.roles) == (
        "meter-7",
        old.record.permissions,
        old.record.roles,
    )
    authenticator = APIKeyAuthenticator(store, clock=clock)
    assert (await authenticator.authenticate(old.key)).subject == "meter-7"
    assert (await authenticator.authenticate(new.key)).subject == "meter-7"
    clock.advance(301)
    with pytest.raises(InvalidAPIKeyError):
        await authenticator.authenticate(old.key)
    assert (await authenticator.authenticate(new.key)).permissions == frozenset({"readings:write"})
    with pytest.raises(ResourceNotFoundError):
        await rotate_api_key(store, "0000000000000000", clock=clock)


async def test_redis_record_is_a_hash_of_digests(clock: Clock, redis_client: Any, redis_key_prefix: str) -> None:
    """On Redis a key is one hash whose fields hold the digest and grants, with an expiry after the key's own."""
    from energy_auth.api_keys_redis import RedisAPIKeyStore

    store = RedisAPIKeyStore(redis_client, key_prefix=redis_key_prefix, clock=clock)
    new = generate_api_key("sensor-9", permissions=["b", "a"], expires_at=clock.now + 3600)
    await store.add(new.record)
    raw = await redis_client.hgetall(redis_key_prefix + new.record.key_id)
    assert raw[b"key_hash"].decode() == new.record.key_hash
    assert json.loads(raw[b"permissions"]) == ["a", "b"]
    assert new.key.encode() not in b"".join(raw.values())
    assert 0 < await redis_client.pttl(redis_key_prefix + new.record.key_id) <= (3600 + 86_400) * 1000
