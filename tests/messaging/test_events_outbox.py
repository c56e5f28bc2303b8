"""The transactional outbox on real PostgreSQL and SQLite, relayed to real buses."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from energy_common.database import Database, Outbox, OutboxMessage
from energy_common.exceptions import ValidationError
from energy_messaging.events import InMemoryEventBus, decode_event
from energy_messaging.events._errors import EventBusConfigurationError
from energy_messaging.events.outbox import EventBusPublisher, OutboxRecord, OutboxRelay, add_event


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a database of either engine."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A database of either engine."""
    database = Database(db_url)
    try:
        yield database
    finally:
        await database.engine.dispose()


@pytest.fixture
async def outbox(db: Database) -> AsyncIterator[Outbox]:
    """A fresh outbox table of its own."""
    box = Outbox(f"outbox_{uuid.uuid4().hex[:8]}")
    async with db.engine.begin() as conn:
        await box.create(conn)
    yield box
    async with db.engine.begin() as conn:
        await conn.run_sync(box.table.drop)


async def _stream(bus: InMemoryEventBus, event_type: str) -> list[Any]:
    entries = await bus.streams.range(bus.stream_for(event_type), 100_000)
    return [decode_event(fields["event"]) for _, fields in entries]


async def test_rolled_back_transaction_publishes_nothing(db: Database, outbox: Outbox) -> None:
    """An event added in a transaction that rolls back is never written, so never published."""
    async with InMemoryEventBus() as bus:
        relay = OutboxRelay(db, outbox, EventBusPublisher(bus))

        async def failing_change() -> None:
            async with db.session() as session:
                await add_event(outbox, session, "reading.recorded", {"n": 1}, key="m1")
                raise RuntimeError("the change failed")

        with pytest.raises(RuntimeError):
            await failing_change()
        assert await relay.relay_once() == 0
        async with db.engine.connect() as conn:
            assert await outbox.unsent_count(conn) == 0
        assert await _stream(bus, "reading.recorded") == []


async def test_committed_events_are_relayed_once_in_order(db: Database, outbox: Outbox) -> None:
    """Committed events reach the bus in insertion order with their ids, and are marked sent."""
    async with InMemoryEventBus() as bus:
        async with db.session() as session:
            ids = [(await add_event(outbox, session, "reading.recorded", {"n": n}, key="m1")).id for n in range(5)]
        async with OutboxRelay(db, outbox, EventBusPublisher(bus), poll_interval=0.02) as relay:
            for _ in range(200):
                if relay.stats.relayed == 5:
                    break
                await asyncio.sleep(0.02)
        assert [event.id for event in await _stream(bus, "reading.recorded")] == ids
        async with db.engine.connect() as conn:
            assert await outbox.unsent_count(conn) == 0
        assert await relay.relay_once() == 0


async def test_publish_failure_keeps_order_and_counts_attempts(db: Database, outbox: Outbox) -> None:
    """A failing publish stops the batch there; the rest is published later, in order."""
    async with InMemoryEventBus() as bus:
        real = EventBusPublisher(bus)
        failing = {"left": 1}

        class FlakyOnThird:
            async def send(self, record: OutboxRecord) -> None:
                if record.payload and decode_event(record.payload).data["n"] == 2 and failing["left"]:
                    failing["left"] -= 1
                    raise ConnectionError("backend down")
                await real.send(record)

        async with db.session() as session:
            for n in range(5):
                await add_event(outbox, session, "reading.recorded", {"n": n}, key="m1")
        relay = OutboxRelay(db, outbox, FlakyOnThird())
        with pytest.raises(ConnectionError):
            await relay.relay_once()
        assert [e.data["n"] for e in await _stream(bus, "reading.recorded")] == [0, 1]
        assert await relay.relay_once() == 3
        assert [e.data["n"] for e in await _stream(bus, "reading.recorded")] == [0, 1, 2, 3, 4]
        async with db.engine.connect() as conn:
            attempts = (await conn.execute(outbox.table.select().order_by(outbox.table.c.id))).all()
        assert [row.attempts for row in attempts] == [0, 0, 1, 0, 0]


async def test_failed_batch_publish_marks_nothing_sent(db: Database, outbox: Outbox) -> None:
    """When a batch publisher fails, no row of the batch is marked sent; the retry sends them all in order."""
    async with InMemoryEventBus() as bus:
        real = EventBusPublisher(bus)
        calls = {"n": 0}

        class FailsFirstBatch(EventBusPublisher):
            async def send_many(self, records: Sequence[OutboxRecord]) -> None:
                calls["n"] += 1
                if calls["n"] == 1:
                    await real.send(records[0])  # part of it went out before the failure
                    raise ConnectionError("pipeline broke")
                await real.send_many(records)

        async with db.session() as session:
            for n in range(4):
                await add_event(outbox, session, "reading.recorded", {"n": n}, key="m1")
        relay = OutboxRelay(db, outbox, FailsFirstBatch(bus))
        with pytest.raises(ConnectionError):
            await relay.relay_once()
        async with db.engine.connect() as conn:
            assert await outbox.unsent_count(conn) == 4
        assert await relay.relay_once() == 4
        assert [e.data["n"] for e in await _stream(bus, "reading.recorded")] == [0, 0, 1, 2, 3]


async def test_add_many_skips_ids_present_already(db: Database, outbox: Outbox) -> None:
    """Adding the same event id again (a retried write) stores it once."""
    messages = [OutboxMessage(f"id-{n}", "m1", "reading.recorded", b"{}") for n in range(3)]
    async with db.session() as session:
        await outbox.add_many(session, messages[:2])
    async with db.session() as session:
        await outbox.add_many(session, messages)
    async with db.engine.connect() as conn:
        assert await outbox.unsent_count(conn) == 3


def test_bad_messages_and_options_are_typed_errors() -> None:
    """A bad key, destination or payload, and out-of-range relay options, raise typed errors."""
    with pytest.raises(ValidationError):
        OutboxMessage("id", "", "t", b"x")
    with pytest.raises(ValidationError):
        OutboxMessage("id", "k", "t", b"x", destination="smtp")
    with pytest.raises(ValidationError):
        OutboxMessage("id", "k", "t", "text")  # type: ignore[arg-type]
    with pytest.raises(EventBusConfigurationError):
        OutboxRelay(Database("sqlite+aiosqlite://"), Outbox(), EventBusPublisher(InMemoryEventBus()), batch_size=0)


# --------------------------------------------------------------------------- PostgreSQL + Redis


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[tuple[Database, Outbox]]:
    """A PostgreSQL database with a fresh outbox table."""
    database = Database(postgres_url)
    box = Outbox(f"outbox_{uuid.uuid4().hex[:8]}")
    async with database.engine.begin() as conn:
        await box.create(conn)
    try:
        yield database, box
    finally:
        async with database.engine.begin() as conn:
            await conn.run_sync(box.table.drop)
        await database.engine.dispose()


async def _fill(db: Database, outbox: Outbox, keys: int, per_key: int) -> None:
    async with db.session() as session:
        for n in range(per_key):
            for k in range(keys):
                await add_event(outbox, session, "meter.changed", {"key": f"k{k}", "n": n}, key=f"k{k}")


def _check_order(events: list[Any], keys: int, per_key: int) -> None:
    """Every event seen, and per key the first sightings come in order with no gap."""
    first: dict[str, list[int]] = {}
    seen: set[str] = set()
    for event in events:
        if event.id in seen:
            continue
        seen.add(event.id)
        first.setdefault(event.data["key"], []).append(event.data["n"])
    assert first == {f"k{k}": list(range(per_key)) for k in range(keys)}


async def test_two_relays_share_the_keys_and_keep_order_per_key(
    pg: tuple[Database, Outbox], redis_url: str, redis_key_prefix: str
) -> None:
    """Two relays running at once publish every event, each key's events in order."""
    from energy_messaging.events.redis_streams import RedisStreamsEventBus

    db, outbox = pg
    other = Database(db.url)
    await _fill(db, outbox, keys=8, per_key=30)
    namespace = f"{redis_key_prefix}events"
    async with RedisStreamsEventBus(redis_url, namespace=namespace) as bus:
        relays = [
            OutboxRelay(db, outbox, EventBusPublisher(bus), name="a", batch_size=7, poll_interval=0.01),
            OutboxRelay(other, outbox, EventBusPublisher(bus), name="b", batch_size=7, poll_interval=0.01),
        ]
        async with relays[0], relays[1]:
            for _ in range(500):
                if sum(r.stats.relayed for r in relays) >= 240:
                    break
                await asyncio.sleep(0.02)
        entries = await bus.client.xrange(bus.stream_for("meter.changed"))
        await bus.client.delete(bus.stream_for("meter.changed"))
    await other.engine.dispose()
    assert all(r.stats.relayed > 0 for r in relays), [r.stats for r in relays]
    events = [decode_event(fields[b"event"]) for _, fields in entries]
    assert len(events) == 240  # no crash: exactly once
    _check_order(events, 8, 30)


_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from energy_common.database import Database, Outbox
    from energy_messaging.events.outbox import EventBusPublisher, OutboxRelay
    from energy_messaging.events.redis_streams import RedisStreamsEventBus

    class Slow(EventBusPublisher):
        async def send_many(self, records):
            for record in records:  # one by one: the parent kills us in the middle of a batch
                await self.send(record)
                await asyncio.sleep(0.01)

    async def main() -> None:
        db = Database(sys.argv[1])
        async with RedisStreamsEventBus(sys.argv[3], namespace=sys.argv[4]) as bus:
            async with OutboxRelay(db, Outbox(sys.argv[2]), Slow(bus), batch_size=50):
                print("ready", flush=True)
                await asyncio.sleep(60)

    asyncio.run(main())
    """
)


@pytest.mark.slow
async def test_relay_killed_mid_batch_loses_nothing(
    pg: tuple[Database, Outbox], redis_url: str, redis_key_prefix: str
) -> None:
    """A relay SIGKILL'd mid-batch leaves its batch unsent; the next relay publishes all of it."""
    from energy_messaging.events.redis_streams import RedisStreamsEventBus

    db, outbox = pg
    await _fill(db, outbox, keys=4, per_key=50)
    namespace = f"{redis_key_prefix}events"
    child = subprocess.Popen(  # noqa: ASYNC220 - killed below, never awaited blocking
        [sys.executable, "-c", _CHILD, str(db.url.render_as_string(hide_password=False)), outbox.name, redis_url,
         namespace],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    async with RedisStreamsEventBus(redis_url, namespace=namespace) as bus:
        stream = bus.stream_for("meter.changed")
        try:
            for _ in range(1000):
                if await bus.client.xlen(stream) >= 75:  # inside the second batch of 50
                    break
                await asyncio.sleep(0.005)
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait(10)
            if child.stdout is not None:
                child.stdout.close()  # else its pipe is left to the garbage collector (ResourceWarning)
        published_by_child = await bus.client.xlen(stream)
        assert 50 <= published_by_child < 200
        async with db.engine.connect() as conn:
            assert await outbox.unsent_count(conn) > 200 - published_by_child  # the killed batch is unsent
        async with OutboxRelay(db, outbox, EventBusPublisher(bus), poll_interval=0.01) as relay:
            for _ in range(500):
                async with db.engine.connect() as conn:
                    if await outbox.unsent_count(conn) == 0:
                        break
                await asyncio.sleep(0.02)
        assert relay.stats.relayed > 0
        entries = await bus.client.xrange(stream)
        await bus.client.delete(stream)
    events = [decode_event(fields[b"event"]) for _, fields in entries]
    assert len({event.id for event in events}) == 200
    _check_order(events, 4, 50)


async def test_mqtt_records_are_published_to_their_topic(
    db: Database, outbox: Outbox, make_manager: Any, mqtt_topic_prefix: str
) -> None:
    """An ``mqtt`` outbox row reaches its topic byte for byte through MQTTPublisher, then is marked sent."""
    from energy_messaging import MQTTMessage
    from energy_messaging.events.outbox import MQTTPublisher

    topic = f"{mqtt_topic_prefix}/meter/m1/tariff"
    got: list[bytes] = []

    async def on_message(message: MQTTMessage) -> None:
        got.append(bytes(message.raw))

    async with make_manager() as subscriber, make_manager() as publisher:
        await subscriber.subscribe(topic, on_message, qos=1, decode=False)
        async with db.session() as session:
            await outbox.add(session, OutboxMessage("t-1", "m1", topic, b'{"tariff":"night"}', destination="mqtt"))
        relay = OutboxRelay(db, outbox, MQTTPublisher(publisher))
        assert await relay.relay_once() == 1
        for _ in range(500):
            if got:
                break
            await asyncio.sleep(0.01)
    assert got == [b'{"tariff":"night"}']
    async with db.engine.begin() as conn:
        assert await outbox.unsent_count(conn) == 0
        assert await outbox.purge_sent(conn, older_than=timedelta(days=1)) == 0  # sent just now: kept
        assert await outbox.purge_sent(conn, older_than=timedelta(0)) == 1


async def test_a_publisher_refuses_records_of_another_destination(db: Database, outbox: Outbox) -> None:
    """An event-bus publisher given an ``mqtt`` row fails with a typed error and leaves it unsent."""
    async with InMemoryEventBus() as bus:
        async with db.session() as session:
            await outbox.add(session, OutboxMessage("t-2", "m1", "a/b", b"x", destination="mqtt"))
        relay = OutboxRelay(db, outbox, EventBusPublisher(bus))
        with pytest.raises(EventBusConfigurationError):
            await relay.relay_once()
        async with db.engine.connect() as conn:
            assert await outbox.unsent_count(conn) == 1
