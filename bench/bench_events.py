"""Event-bus throughput: energy bus on Redis Streams vs a raw redis-py loop; in-process bus.

    python bench/bench_events.py            7 interleaved rounds, 10,000 events each
    python bench/bench_events.py --quick    3 rounds, 2,000 events each

Every variant publishes N small JSON events one by one (each publish awaited, as a
service does) while a consumer in the same event loop handles them; a round ends when
the N-th event is handled. Reported per variant: median events/s end to end (wall
clock, publisher and consumer running together) and median CPU microseconds per
event of this process (``time.process_time``; the Redis server's CPU is not included).

Variants:
    redis-energy  ``RedisStreamsEventBus``: CloudEvents envelope (id, time, correlation
                  id, trace context), XADD with MAXLEN ~, XREADGROUP (batches of 100),
                  envelope validation, correlation/trace restore around the handler, XACK
                  per batch.
    redis-raw     redis-py alone: ``json.dumps`` payload, XADD with MAXLEN ~, XREADGROUP
                  (batches of 100), ``json.loads``, handler call, XACK per batch.
    memory-energy ``InMemoryEventBus`` (same envelope and group semantics, no network).
    *-metrics     the energy variant given an energy-monitoring ``MetricsRegistry``
                  (``metrics=``): published/consumed counters and the handler histogram
                  per event, lag and pending sampled every second; the run is checked
                  against the registry (N published, N consumed ``ok``).
    memory-raw    an ``asyncio.Queue`` with ``json.dumps``/``json.loads``: the floor.

Variants run in interleaved rounds in a shuffled order, each round on fresh stream keys
(deleted afterwards). Ratios are of medians: energy / raw.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as redis_asyncio
from energy_messaging.events import InMemoryEventBus
from energy_messaging.events.redis_streams import RedisStreamsEventBus
from energy_monitoring.metrics import MetricsRegistry

REDIS_URL = os.environ.get("ENERGY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MAXLEN = 100_000
BATCH = 100

Result = tuple[float, float]  # (wall seconds, cpu seconds)
Variant = Callable[[int], Awaitable[Result]]


def payload(i: int) -> dict[str, object]:
    """A telemetry-like event body."""
    return {"device_id": f"sensor{i % 100:03d}", "kw": 1.25, "seq": i}


async def _cleanup(prefix: str) -> None:
    client = redis_asyncio.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def _countdown(n: int) -> tuple[Callable[[object], Awaitable[None]], asyncio.Event]:
    """A handler that counts the events it gets, and the event it sets at the ``n``-th."""
    done = asyncio.Event()
    count = 0

    async def handler(_event: object) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set()

    return handler, done


async def _elapsed_when(done: asyncio.Event, wall: float, cpu: float) -> Result:
    """Wait for ``done``; return the wall and CPU seconds since ``wall``/``cpu``."""
    await asyncio.wait_for(done.wait(), 120)
    return time.perf_counter() - wall, time.process_time() - cpu


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel a consumer task and wait for it to end."""
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _check_metrics(registry: MetricsRegistry | None, n: int) -> None:
    """Fail the run unless the registry counted every event published and consumed."""
    if registry is None:
        return
    sample = registry.collector_registry.get_sample_value
    published = sample("bench_events_published_total", {"event_type": "reading.stored"})
    ok = sample("bench_events_consumed_total", {"event_type": "reading.stored", "group": "bench", "outcome": "ok"})
    if published != n or ok != n:
        raise SystemExit(f"metrics counted {published} published / {ok} consumed of {n}; no figures")


async def redis_energy(n: int, *, metrics: bool = False) -> Result:
    """End-to-end run of RedisStreamsEventBus (with a metrics registry if ``metrics``)."""
    prefix = f"bench:events:{uuid.uuid4().hex[:8]}"
    handler, done = _countdown(n)
    registry = MetricsRegistry("bench") if metrics else None

    bus = RedisStreamsEventBus(
        REDIS_URL, namespace=prefix, group="bench", maxlen=MAXLEN, batch_size=BATCH, block=0.5, metrics=registry
    )
    bus.subscribe("reading.stored", handler)
    try:
        async with bus:
            wall, cpu = time.perf_counter(), time.process_time()
            for i in range(n):
                await bus.publish("reading.stored", payload(i))
            result = await _elapsed_when(done, wall, cpu)
    finally:
        await _cleanup(prefix)
    _check_metrics(registry, n)
    return result


async def redis_raw(n: int) -> Result:
    """End-to-end run of a plain redis-py XADD / XREADGROUP / XACK loop."""
    prefix = f"bench:events:{uuid.uuid4().hex[:8]}"
    stream = f"{prefix}:stream:reading.stored"
    client = redis_asyncio.from_url(REDIS_URL)
    reader = redis_asyncio.from_url(REDIS_URL)
    handler, done = _countdown(n)

    async def consume() -> None:
        while not done.is_set():
            reply = await reader.xreadgroup("bench", "c1", {stream: ">"}, count=BATCH, block=500)
            for name, messages in reply or []:
                ids = []
                for entry_id, fields in messages:
                    await handler(json.loads(fields[b"event"]))
                    ids.append(entry_id)
                if ids:
                    await reader.xack(name, "bench", *ids)

    try:
        await client.xgroup_create(stream, "bench", id="0", mkstream=True)
        task = asyncio.create_task(consume(), name="bench-raw-consumer")
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            body = json.dumps(payload(i), separators=(",", ":")).encode()
            await client.xadd(stream, {"event": body}, maxlen=MAXLEN, approximate=True)
        result = await _elapsed_when(done, wall, cpu)
        await _stop(task)
        return result
    finally:
        await client.aclose()
        await reader.aclose()
        await _cleanup(prefix)


async def memory_energy(n: int, *, metrics: bool = False) -> Result:
    """End-to-end run of InMemoryEventBus (with a metrics registry if ``metrics``)."""
    handler, done = _countdown(n)
    registry = MetricsRegistry("bench") if metrics else None

    bus = InMemoryEventBus(group="bench", maxlen=MAXLEN, batch_size=BATCH, block=0.5, metrics=registry)
    bus.subscribe("reading.stored", handler)
    async with bus:
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            await bus.publish("reading.stored", payload(i))
        result = await _elapsed_when(done, wall, cpu)
    _check_metrics(registry, n)
    return result


async def memory_raw(n: int) -> Result:
    """End-to-end run of an asyncio.Queue carrying JSON bytes."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    handler, done = _countdown(n)

    async def consume() -> None:
        while True:
            await handler(json.loads(await queue.get()))

    task = asyncio.create_task(consume(), name="bench-queue-consumer")
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        await queue.put(json.dumps(payload(i), separators=(",", ":")).encode())
        await asyncio.sleep(0)  # let the consumer run, as an awaited network call would
    result = await _elapsed_when(done, wall, cpu)
    await _stop(task)
    return result


VARIANTS: dict[str, Variant] = {
    "redis-energy": redis_energy,
    "redis-energy-metrics": functools.partial(redis_energy, metrics=True),
    "redis-raw": redis_raw,
    "memory-energy": memory_energy,
    "memory-energy-metrics": functools.partial(memory_energy, metrics=True),
    "memory-raw": memory_raw,
}


async def run(rounds: int, n: int) -> dict[str, list[Result]]:
    """Run every variant once per round, in a shuffled order; return the samples."""
    samples: dict[str, list[Result]] = {name: [] for name in VARIANTS}
    for name, variant in VARIANTS.items():  # warm-up (imports, connections, JIT-free caches)
        await variant(min(n, 500))
        del name
    for _ in range(rounds):
        order = list(VARIANTS)
        random.shuffle(order)
        for name in order:
            samples[name].append(await VARIANTS[name](n))
    return samples


def report(samples: dict[str, list[Result]], n: int) -> str:
    """Format medians and ratios."""
    rate = {name: statistics.median(n / wall for wall, _ in values) for name, values in samples.items()}
    cpu_us = {name: statistics.median(cpu / n * 1e6 for _, cpu in values) for name, values in samples.items()}
    lines = [f"{'variant':<22} {'events/s':>10} {'CPU us/event':>13}"]
    lines += [f"{name:<22} {rate[name]:>10,.0f} {cpu_us[name]:>13.1f}" for name in samples]
    for backend in ("redis", "memory"):
        energy, raw, metered = f"{backend}-energy", f"{backend}-raw", f"{backend}-energy-metrics"
        lines.append(
            f"{backend}: energy/raw throughput {rate[energy] / rate[raw]:.2f}x, "
            f"CPU per event {cpu_us[energy] / cpu_us[raw]:.2f}x; with metrics "
            f"{rate[metered] / rate[energy]:.2f}x throughput, {cpu_us[metered] - cpu_us[energy]:+.1f} us CPU per event"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 2,000 events")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--events", type=int, default=None)
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)
    n = args.events or (2_000 if args.quick else 10_000)
    samples = asyncio.run(run(rounds, n))
    print(f"event bus, {n:,} events x {rounds} rounds (medians), Redis at {REDIS_URL.split('@')[-1]}")
    print(report(samples, n))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
