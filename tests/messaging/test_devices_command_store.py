"""CommandStore behaviour, run by the same test bodies on memory, Redis, Redis Cluster, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from energy_messaging.devices import Command, CommandStore, InMemoryCommandStore
from energy_messaging.errors import CommandLimitError

STORES = ["memory", "redis", "cluster", "sqlite", "postgres"]


async def sql_store(url: str) -> AsyncIterator[CommandStore]:
    """An SQLCommandStore on ``url`` with its table, disposed afterwards."""
    from energy_common.database import Database
    from energy_messaging.sql_commands import SQLCommandStore

    db = Database(url)
    store = SQLCommandStore(db)
    await store.create_table()
    try:
        yield store
    finally:
        await db.dispose()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[CommandStore]:
    """The SQL store on a fresh SQLite file."""
    async for store in sql_store(f"sqlite+aiosqlite:///{tmp_path / 'commands.db'}"):
        yield store


@pytest.fixture
async def postgres_store(postgres_url: str) -> AsyncIterator[CommandStore]:
    """The SQL store on the session's PostgreSQL database."""
    async for store in sql_store(postgres_url):
        yield store


@pytest.fixture
async def cluster_store(cluster_port: int) -> AsyncIterator[CommandStore]:
    """The Redis store on the private Redis Cluster, under a hash-tagged prefix of its own."""
    from energy_messaging.redis_commands import RedisCommandStore
    from redis.asyncio.cluster import RedisCluster

    cluster = RedisCluster(host="127.0.0.1", port=cluster_port)
    await cluster.initialize()
    try:
        yield RedisCommandStore(cluster, prefix=f"{{cmd-{uuid.uuid4().hex[:8]}}}:")
    finally:
        await cluster.aclose()


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> CommandStore:
    """Each command store on its real engine (keys and device ids unique to the test)."""
    kind = request.param
    if kind == "memory":
        return InMemoryCommandStore()
    if kind == "redis":
        from energy_messaging.redis_commands import RedisCommandStore

        prefix = request.getfixturevalue("redis_key_prefix")
        return RedisCommandStore(request.getfixturevalue("redis_client"), prefix=f"{{{prefix}cmd}}:")
    store: CommandStore = request.getfixturevalue(f"{kind}_store")
    return store


@pytest.fixture
def device() -> str:
    """A device id unique to the test (the PostgreSQL table is shared by the session)."""
    return f"m-{uuid.uuid4().hex[:10]}"


def new(device_id: str, key: str | None = None, **changes: Any) -> Command:
    """A queued command for ``device_id``."""
    cmd = Command(device_id, "ping", {"n": 1}, idempotency_key=key, **changes)
    cmd.move("queued")
    return cmd


async def finish(store: CommandStore, cmd: Command, state: Any = "succeeded") -> Command:
    """Move ``cmd`` to a final state through the store's compare-and-set."""
    current = await store.get(cmd.command_id)
    assert current is not None
    expected = current.version
    current.move(state)
    assert await store.replace(current, expected)
    return current


async def test_create_and_get_round_trip(store: CommandStore, device: str) -> None:
    """A stored command comes back equal, at version 1, with its history and parameters."""
    cmd, created = await store.create(new(device, deliver_when_online=True, expires_at=1e10))
    assert created
    got = await store.get(cmd.command_id)
    assert got is not None
    assert got.to_dict() == cmd.to_dict()
    assert (got.version, got.state, got.params, got.deliver_when_online) == (1, "queued", {"n": 1}, True)
    assert await store.get("no-such-command") is None


async def test_idempotency_key_returns_the_first_command(store: CommandStore, device: str) -> None:
    """The same key for the same device returns the first command; another device's key is its own."""
    first, created = await store.create(new(device, "key-1"))
    again, created_again = await store.create(new(device, "key-1"))
    other, created_other = await store.create(new(f"{device}-b", "key-1"))
    assert created
    assert not created_again
    assert created_other
    assert again.command_id == first.command_id
    assert other.command_id != first.command_id


async def test_concurrent_requests_with_one_key_create_one_command(store: CommandStore, device: str) -> None:
    """Eight concurrent creates with one idempotency key store exactly one command."""
    results = await asyncio.gather(*(store.create(new(device, "same")) for _ in range(8)))
    assert sum(created for _, created in results) == 1
    assert len({cmd.command_id for cmd, _ in results}) == 1
    assert len(await store.open_commands(device)) == 1


async def test_in_flight_limit_per_device(store: CommandStore, device: str) -> None:
    """Past max_in_flight unfinished commands a device's create raises CommandLimitError; a finished one frees a slot."""
    first, _ = await store.create(new(device), max_in_flight=2)
    await store.create(new(device), max_in_flight=2)
    with pytest.raises(CommandLimitError) as info:
        await store.create(new(device), max_in_flight=2)
    assert (info.value.status_code, info.value.details["limit"]) == (429, 2)
    await store.create(new(f"{device}-other"), max_in_flight=2)  # another device is not limited
    await finish(store, first)
    _, created = await store.create(new(device), max_in_flight=2)
    assert created


async def test_concurrent_creates_respect_the_limit(store: CommandStore, device: str) -> None:
    """Ten concurrent creates against a limit of three store exactly three."""
    outcomes = await asyncio.gather(
        *(store.create(new(device), max_in_flight=3) for _ in range(10)), return_exceptions=True
    )
    assert sum(isinstance(item, tuple) for item in outcomes) == 3
    assert all(isinstance(item, (tuple, CommandLimitError)) for item in outcomes)


async def test_replace_is_a_compare_and_set(store: CommandStore, device: str) -> None:
    """A write with a stale version is refused; of two concurrent writers only one wins."""
    cmd, _ = await store.create(new(device))
    a = Command.from_dict(cmd.to_dict())
    b = Command.from_dict(cmd.to_dict())
    a.move("sent")
    b.move("cancelled")
    results = await asyncio.gather(store.replace(a, 1), store.replace(b, 1))
    assert sorted(results) == [False, True]
    got = await store.get(cmd.command_id)
    assert got is not None
    assert got.version == 2
    assert got.state == ("sent" if results[0] else "cancelled")
    assert not await store.replace(a, 1)
    missing = new(device)
    assert not await store.replace(missing, 1)


async def test_open_commands_lists_unfinished_oldest_first(store: CommandStore, device: str) -> None:
    """open_commands returns the unfinished commands (per device or all), oldest first, never finished ones."""
    one, _ = await store.create(new(device))
    two, _ = await store.create(new(device))
    other, _ = await store.create(new(f"{device}-x"))
    await finish(store, two, "timed_out")
    assert [c.command_id for c in await store.open_commands(device)] == [one.command_id]
    every = {c.command_id for c in await store.open_commands()}
    assert {one.command_id, other.command_id} <= every
    assert two.command_id not in every
    finished = await store.get(two.command_id)
    assert finished is not None
    assert [s for s, _ in finished.history] == ["queued", "timed_out"]


@pytest.mark.slow
async def test_sqlite_store_waits_out_a_held_write_lock(tmp_path: Path, device: str) -> None:
    """A create while another writer holds SQLite's lock past busy_timeout (5 s) is retried and stored once."""
    import sqlite3

    from energy_common.database import Database
    from energy_messaging.sql_commands import SQLCommandStore

    path = tmp_path / "locked.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    sql = SQLCommandStore(db)
    await sql.create_table()
    holder = sqlite3.connect(path, timeout=1)
    try:
        holder.execute("BEGIN IMMEDIATE")

        async def release() -> None:
            await asyncio.sleep(6.0)
            holder.rollback()

        (cmd, created), _ = await asyncio.gather(sql.create(new(device, "k")), release())
        assert created
        assert [c.command_id for c in await sql.open_commands(device)] == [cmd.command_id]
    finally:
        holder.close()
        await db.dispose()
