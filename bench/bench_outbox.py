"""Outbox throughput: events relayed from PostgreSQL to Redis Streams vs publishing directly.

    python bench/bench_outbox.py            5 interleaved rounds, 5,000 events each
    python bench/bench_outbox.py --quick    3 rounds, 1,000 events each

Each round puts N small CloudEvents on one Redis stream (fresh keys, deleted afterwards)
and checks the stream holds exactly those N ids before it counts. Variants:

    direct          ``RedisStreamsEventBus.publish`` one by one, each awaited (what a
                    service does after its commit; loses the event if it dies between).
    relay-100       N events committed to the outbox table beforehand (not timed), then
                    one ``OutboxRelay`` publishes them: batches of 100 rows locked per
                    key partition (``pg_try_advisory_xact_lock``), one pipelined XADD
                    round trip per batch, ``UPDATE ... sent_at`` and COMMIT.
    relay-1000      the same with batches of 1,000.
    write+relay-100 end to end: N events added in transactions of 100 (one INSERT per
                    ``add_event``, then COMMIT) while the relay publishes them; ends
                    when the relay has marked the N-th sent.

Reported: median events/s (wall clock) and CPU microseconds per event of this process
(PostgreSQL's and Redis's CPU not included). Ratios are of medians, against ``direct``.
No Python peer ships an outbox relay to compare with (Debezium's outbox router runs
in Kafka Connect, on the JVM).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

from energy_common.database import Database, Outbox
from energy_messaging.events import decode_event
from energy_messaging.events.outbox import EventBusPublisher, OutboxRelay, add_event
from energy_messaging.events.redis_streams import RedisStreamsEventBus

REDIS_URL = os.environ.get("ENERGY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_URL = os.environ.get("ENERGY_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
EVENT = "reading.recorded"

Result = tuple[float, float]  # (wall seconds, cpu seconds)
Variant = Callable[[Database, int], Awaitable[Result]]


def payload(i: int) -> dict[str, object]:
    """A reading-like event body."""
    return {"device_id": f"meter{i % 100:03d}", "ts": 1_700_000_000_000 + i, "power_w": 1250.5}


async def _check(bus: RedisStreamsEventBus, n: int) -> None:
    """Fail unless the stream holds exactly ``n`` distinct events."""
    entries = await bus.client.xrange(bus.stream_for(EVENT))
    ids = {decode_event(fields[b"event"]).id for _, fields in entries}
    if len(entries) != n or len(ids) != n:
        raise AssertionError(f"expected {n} events on the stream, found {len(entries)}")


async def _fill(db: Database, outbox: Outbox, n: int, per_commit: int = 500) -> None:
    for start in range(0, n, per_commit):
        async with db.session() as session:
            for i in range(start, min(n, start + per_commit)):
                await add_event(outbox, session, EVENT, payload(i), key=f"meter{i % 100:03d}")


async def _fresh(db: Database) -> tuple[Outbox, RedisStreamsEventBus, str]:
    prefix = f"bench:outbox:{uuid.uuid4().hex[:8]}"
    outbox = Outbox(f"bench_outbox_{uuid.uuid4().hex[:8]}")
    async with db.engine.begin() as conn:
        await outbox.create(conn)
    return outbox, RedisStreamsEventBus(REDIS_URL, namespace=prefix, maxlen=1_000_000), prefix


async def _drop(db: Database, outbox: Outbox, bus: RedisStreamsEventBus) -> None:
    await bus.client.delete(bus.stream_for(EVENT))
    await bus.aclose()
    async with db.engine.begin() as conn:
        await conn.run_sync(outbox.table.drop)


async def direct(db: Database, n: int) -> Result:
    """Publish one by one."""
    outbox, bus, _ = await _fresh(db)
    try:
        await bus.start()
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            await bus.publish(EVENT, payload(i))
        result = time.perf_counter() - wall, time.process_time() - cpu
        await _check(bus, n)
        return result
    finally:
        await _drop(db, outbox, bus)


async def _relay(db: Database, n: int, batch: int, *, write: bool) -> Result:
    outbox, bus, _ = await _fresh(db)
    try:
        await bus.start()
        if not write:
            await _fill(db, outbox, n)
        relay = OutboxRelay(db, outbox, EventBusPublisher(bus), batch_size=batch, poll_interval=0.001)
        wall, cpu = time.perf_counter(), time.process_time()
        async with relay:
            if write:
                await _fill(db, outbox, n, per_commit=100)
            deadline = time.monotonic() + 120
            while relay.stats.relayed < n and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a counter
                await asyncio.sleep(0.001)
            result = time.perf_counter() - wall, time.process_time() - cpu
        await _check(bus, n)
        return result
    finally:
        await _drop(db, outbox, bus)


async def relay_100(db: Database, n: int) -> Result:
    """Relay a filled outbox in batches of 100."""
    return await _relay(db, n, 100, write=False)


async def relay_1000(db: Database, n: int) -> Result:
    """Relay a filled outbox in batches of 1,000."""
    return await _relay(db, n, 1000, write=False)


async def write_and_relay(db: Database, n: int) -> Result:
    """Add in transactions of 100 while the relay runs."""
    return await _relay(db, n, 100, write=True)


VARIANTS: dict[str, Variant] = {
    "direct": direct,
    "relay-100": relay_100,
    "relay-1000": relay_1000,
    "write+relay-100": write_and_relay,
}


async def run(rounds: int, n: int) -> dict[str, list[Result]]:
    """Warm up, then run every variant once per round in a shuffled order."""
    db = Database(PG_URL, pool_size=4)
    try:
        for variant in VARIANTS.values():
            await variant(db, min(n, 300))
        samples: dict[str, list[Result]] = {name: [] for name in VARIANTS}
        for _ in range(rounds):
            order = list(VARIANTS)
            random.shuffle(order)
            for name in order:
                samples[name].append(await VARIANTS[name](db, n))
        return samples
    finally:
        await db.engine.dispose()


def report(samples: dict[str, list[Result]], n: int) -> str:
    """Format medians and ratios against ``direct``."""
    rate = {name: statistics.median(n / wall for wall, _ in values) for name, values in samples.items()}
    cpu_us = {name: statistics.median(cpu / n * 1e6 for _, cpu in values) for name, values in samples.items()}
    lines = [f"{'variant':<16} {'events/s':>10} {'CPU us/event':>13} {'vs direct':>10}"]
    lines += [
        f"{name:<16} {rate[name]:>10,.0f} {cpu_us[name]:>13.1f} {rate[name] / rate['direct']:>9.2f}x"
        for name in samples
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 1,000 events")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--events", type=int, default=None)
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    n = args.events or (1_000 if args.quick else 5_000)
    samples = asyncio.run(run(rounds, n))
    print(f"outbox relay, {n:,} events x {rounds} rounds (medians); PostgreSQL and Redis on 127.0.0.1")
    print(report(samples, n))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
