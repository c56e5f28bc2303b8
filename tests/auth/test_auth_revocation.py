"""Tests for the revocation stores, in memory and on Redis, by the same parametrised bodies."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from energy_auth import InMemoryRevocationStore, RevocationStore, TokenManager, TokenRevokedError
from energy_common.exceptions import CacheConnectionError

from .conftest import Clock


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, clock: Clock) -> RevocationStore:
    """Each revocation store we ship, on the fake clock (Redis namespaced by redis_key_prefix)."""
    if request.param == "memory":
        return InMemoryRevocationStore(clock=clock)
    from energy_auth.redis import RedisRevocationStore

    client: Any = request.getfixturevalue("redis_client")
    prefix: str = request.getfixturevalue("redis_key_prefix")
    return RedisRevocationStore(client, key_prefix=prefix, clock=clock)


async def test_store_satisfies_the_protocol(store: RevocationStore) -> None:
    """Both stores implement the RevocationStore protocol."""
    assert isinstance(store, RevocationStore)


async def test_revoke_then_is_revoked(store: RevocationStore, clock: Clock) -> None:
    """A revoked jti is reported revoked; another jti is not."""
    assert not await store.is_revoked("jti-a")
    assert await store.revoke("jti-a", clock.now + 60) is True
    assert await store.is_revoked("jti-a")
    assert not await store.is_revoked("jti-b")


async def test_second_revoke_reports_already_revoked(store: RevocationStore, clock: Clock) -> None:
    """Revoking twice returns False the second time (single-use refresh tokens rely on it)."""
    assert await store.revoke("jti-once", clock.now + 60)
    assert not await store.revoke("jti-once", clock.now + 60)


async def test_concurrent_revokes_have_one_winner(store: RevocationStore, clock: Clock) -> None:
    """Of racing revocations of one jti exactly one wins."""
    results = await asyncio.gather(*(store.revoke("jti-race", clock.now + 60) for _ in range(10)))
    assert results.count(True) == 1


async def test_refresh_token_is_single_use_across_replicas(store: RevocationStore, secret: str, clock: Clock) -> None:
    """Two managers (replicas) sharing a store accept a refresh token once between them."""
    replica_a = TokenManager(secret, revocation_store=store, clock=clock)
    replica_b = TokenManager(secret, revocation_store=store, clock=clock)
    pair = replica_a.create_token_pair("user-1")
    await replica_a.refresh(pair.refresh_token)
    with pytest.raises(TokenRevokedError):
        await replica_b.refresh(pair.refresh_token)


async def test_revoked_access_token_is_refused_everywhere(store: RevocationStore, secret: str, clock: Clock) -> None:
    """An access token revoked on one replica is refused on the other."""
    replica_a = TokenManager(secret, revocation_store=store, clock=clock)
    replica_b = TokenManager(secret, revocation_store=store, clock=clock)
    token = replica_a.create_access_token({"sub": "u"})
    assert (await replica_b.verify_token_async(token))["sub"] == "u"
    await replica_a.revoke(token)
    with pytest.raises(TokenRevokedError):
        await replica_b.verify_token_async(token)


async def test_memory_entries_expire_with_the_token(clock: Clock) -> None:
    """In memory, an entry disappears once its token would have expired."""
    store = InMemoryRevocationStore(clock=clock)
    await store.revoke("jti-exp", clock.now + 30)
    clock.advance(29)
    assert await store.is_revoked("jti-exp")
    clock.advance(2)
    assert not await store.is_revoked("jti-exp")
    assert len(store) == 0


async def test_redis_entries_expire_with_the_token(redis_client: Any, redis_key_prefix: str, clock: Clock) -> None:
    """On Redis, the key's TTL ends when the token expires, and the key then vanishes."""
    from energy_auth.redis import RedisRevocationStore

    store = RedisRevocationStore(redis_client, key_prefix=redis_key_prefix, clock=clock)
    await store.revoke("jti-long", clock.now + 3600)
    assert 3_590_000 < await redis_client.pttl(redis_key_prefix + "jti-long") <= 3_600_000
    await store.revoke("jti-past", clock.now - 10)  # already expired: kept for the minimum of one second
    assert 0 < await redis_client.pttl(redis_key_prefix + "jti-past") <= 1000
    for _ in range(50):
        if not await store.is_revoked("jti-past"):
            break
        await asyncio.sleep(0.1)
    assert not await store.is_revoked("jti-past")


async def test_unreachable_redis_fails_closed(secret: str) -> None:
    """With Redis down, verification raises CacheConnectionError (503) instead of accepting the token."""
    pytest.importorskip("redis")
    import redis.asyncio as redis_asyncio
    from energy_auth.redis import RedisRevocationStore
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = redis_asyncio.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    try:
        manager = TokenManager(secret, revocation_store=RedisRevocationStore(client))
        with pytest.raises(CacheConnectionError) as info:
            await manager.verify_token_async(manager.create_access_token({"sub": "u"}))
        assert info.value.status_code == 503
    finally:
        await client.aclose()
