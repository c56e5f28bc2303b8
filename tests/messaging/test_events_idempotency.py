"""Idempotency stores (in-memory and Redis) and the idempotent() handler wrapper."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from energy_messaging.events import (
    Event,
    EventInProgressError,
    IdempotencyStore,
    InMemoryIdempotencyStore,
    idempotent,
)


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[IdempotencyStore]:
    """Both stores: in-memory, and Redis under this test's key prefix."""
    if request.param == "memory":
        yield InMemoryIdempotencyStore()
        return
    from energy_messaging.events.redis_streams import RedisIdempotencyStore

    client = request.getfixturevalue("redis_client")
    prefix = request.getfixturevalue("redis_key_prefix")
    yield RedisIdempotencyStore(client, prefix=f"{prefix}idem:")


def make_event(event_id: str = "evt-1") -> Event:
    """Return a minimal event with the given id."""
    return Event(event_id, "t.x", "urn:test", datetime.now(UTC), None)


async def test_store_states(store: IdempotencyStore) -> None:
    """begin reports new, then in_progress; after complete it reports done."""
    assert isinstance(store, IdempotencyStore)
    assert await store.begin("k", lease=10) == "new"
    assert await store.begin("k", lease=10) == "in_progress"
    await store.complete("k", ttl=10)
    assert await store.begin("k", lease=10) == "done"


async def test_abandon_frees_only_in_progress_marks(store: IdempotencyStore) -> None:
    """abandon releases an in-progress mark but never erases a done one."""
    await store.begin("a", lease=10)
    await store.abandon("a")
    assert await store.begin("a", lease=10) == "new"
    await store.complete("a", ttl=10)
    await store.abandon("a")
    assert await store.begin("a", lease=10) == "done"


async def test_lease_and_ttl_expire(store: IdempotencyStore) -> None:
    """An expired lease (crashed processor) or done mark lets the key be processed again."""
    assert await store.begin("lease", lease=0.05) == "new"
    await store.complete("done", ttl=0.05)
    await asyncio.sleep(0.15)
    assert await store.begin("lease", lease=10) == "new"
    assert await store.begin("done", lease=10) == "new"


async def test_idempotent_runs_handler_once_per_event_id(store: IdempotencyStore) -> None:
    """A second delivery of the same event id is skipped; another id runs."""
    calls: list[str] = []

    @idempotent(store, namespace="h")
    async def handler(event: Event) -> None:
        calls.append(event.id)

    await handler(make_event("e1"))
    await handler(make_event("e1"))
    await handler(make_event("e2"))
    assert calls == ["e1", "e2"]


async def test_idempotent_failure_allows_retry(store: IdempotencyStore) -> None:
    """When the handler raises, the mark is released so the redelivery runs it again."""
    calls: list[int] = []

    @idempotent(store)
    async def handler(event: Event) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await handler(make_event())
    await handler(make_event())
    await handler(make_event())
    assert len(calls) == 2


async def test_idempotent_concurrent_delivery_raises_in_progress(store: IdempotencyStore) -> None:
    """A delivery while another is still processing raises EventInProgressError (retried later)."""
    entered = asyncio.Event()
    release = asyncio.Event()

    @idempotent(store)
    async def handler(event: Event) -> None:
        entered.set()
        await release.wait()

    first = asyncio.create_task(handler(make_event()))
    await entered.wait()
    with pytest.raises(EventInProgressError) as info:
        await handler(make_event())
    assert info.value.error_code == "EVENT_IN_PROGRESS"
    release.set()
    await first


async def test_namespaces_are_independent(store: IdempotencyStore) -> None:
    """Two handlers with different namespaces each process the same event."""
    calls: list[str] = []

    def make(name: str) -> Any:
        @idempotent(store, namespace=name)
        async def handler(event: Event) -> None:
            calls.append(name)

        return handler

    first, second = make("a"), make("b")
    await first(make_event())
    await second(make_event())
    await first(make_event())
    assert calls == ["a", "b"]


async def test_memory_store_prunes_expired_marks() -> None:
    """The in-memory store drops expired marks once it holds more than max_keys."""
    store = InMemoryIdempotencyStore(max_keys=10)
    for i in range(20):
        await store.complete(f"k{i}", ttl=0.01)
    await asyncio.sleep(0.05)
    assert await store.begin("fresh", lease=10) == "new"
    assert len(store._marks) == 1
