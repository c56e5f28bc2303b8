"""Data plane: cache and rate limiting on Redis, bulk inserts on PostgreSQL and SQLite.

    python bench/bench_data.py            5 interleaved rounds (100,000 rows per bulk insert)
    python bench/bench_data.py --quick    3 rounds, smaller sizes (20,000 rows)

Comparisons (ratios of medians, energy / reference; > 1 means energy is faster):

    cache get+set   ``CacheManager.set`` + ``get`` of a small JSON dict vs raw redis-py
                    ``SET``/``GET`` with ``json.dumps``/``json.loads`` (target >= 0.85x).
    rate limit      ``RateLimitCache.check_rate_limit`` (one EVALSHA) vs the ``limits``
                    library's moving-window ``hit`` on the same Redis, with its redis-py
                    and its default coredis implementation (target >= 1.0x). ``hit``
                    answers only allowed/denied; "+ stats" adds ``get_window_stats``,
                    what ``limits`` needs to also know remaining and reset (our check
                    returns all of it from its one round trip).
    create_many     ``BaseRepository.create_many`` of telemetry rows vs SQLAlchemy Core
                    ``conn.execute(table.insert(), rows)`` on the same engine, PostgreSQL
                    and SQLite (target >= 0.9x).
    COPY            ``BaseRepository.copy_many`` (tuples) vs raw asyncpg
                    ``copy_records_to_table`` (target >= 0.8x).

Each request is awaited one after another (as a request handler does). Variants of a
comparison run in the same round in shuffled order; per variant the median of the
rounds' wall-clock throughput and CPU time of this process (``time.process_time``) per
operation is reported. PostgreSQL runs in a throwaway database created and dropped
here (on 127.0.0.1); Redis keys live under a unique prefix and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import redis.asyncio as redis_asyncio
from energy_common.cache import CacheManager, RateLimitCache
from energy_common.database import BaseRepository, Database
from sqlalchemy import BigInteger, DateTime, Float, Integer, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

REDIS_URL = os.environ.get("ENERGY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN_DSN = os.environ.get("ENERGY_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres").replace(
    "postgresql+asyncpg://", "postgresql://"
)

Result = tuple[float, float]  # (wall seconds, cpu seconds) for one round
Variant = Callable[[], Awaitable[Result]]


class _Base(DeclarativeBase):
    pass


class Telemetry(_Base):
    """A telemetry row as the ingestion service stores it."""

    __tablename__ = "bench_telemetry"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kwh: Mapped[float] = mapped_column(Float)
    voltage: Mapped[float] = mapped_column(Float)


COLUMNS = ["device_id", "ts", "kwh", "voltage"]


def telemetry_rows(n: int) -> list[dict[str, object]]:
    """N telemetry rows for 100 devices, one reading per second."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {"device_id": f"sensor{i % 100:03d}", "ts": start + timedelta(seconds=i), "kwh": i * 0.001, "voltage": 230.0}
        for i in range(n)
    ]


async def timed(body: Callable[[], Awaitable[None]]) -> Result:
    """Run ``body`` once; return its wall and process CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    await body()
    return time.perf_counter() - wall, time.process_time() - cpu


Medians = dict[str, tuple[float, float]]  # variant -> (ops per second, CPU seconds per op)


async def run_rounds(title: str, variants: dict[str, Variant], rounds: int, ops: int, unit: str) -> Medians:
    """Run variants interleaved in shuffled order; print and return median throughput and CPU per op."""
    walls: dict[str, list[float]] = {name: [] for name in variants}
    cpus: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        order = list(variants)
        random.shuffle(order)
        for name in order:
            wall, cpu = await variants[name]()
            walls[name].append(wall)
            cpus[name].append(cpu)
    print(f"\n-- {title} ({rounds} rounds, {ops:,} {unit} per round)")
    medians: Medians = {}
    for name in variants:
        rate = ops / statistics.median(walls[name])
        cpu = statistics.median(cpus[name]) / ops
        medians[name] = (rate, cpu)
        print(f"  {name:<22} {rate:>12,.0f} {unit}/s   {cpu * 1e6:8.2f} us CPU/{unit[:-1]}")
    return medians


def ratio(label: str, medians: Medians, energy: str, reference: str, target: float) -> None:
    """Print energy/reference by throughput (wall) and by CPU per op, against the target."""
    wall = medians[energy][0] / medians[reference][0]
    cpu = medians[reference][1] / medians[energy][1]
    marks = ["ok" if value >= target else "below" for value in (wall, cpu)]
    print(f"  ratio {label}: {wall:.2f}x throughput ({marks[0]}), {cpu:.2f}x CPU ({marks[1]}); target >= {target:.2f}x")


# --------------------------------------------------------------------------- Redis


async def bench_cache(rounds: int, n: int, prefix: str) -> None:
    """CacheManager JSON set+get vs raw redis-py SET/GET with json."""
    client = redis_asyncio.from_url(REDIS_URL)
    cache = CacheManager(client, key_prefix=f"{prefix}cache")
    value = {"device_id": "sensor001", "kwh": 12.5, "status": "online", "tags": ["a", "b"]}

    async def energy() -> None:
        for i in range(n):
            await cache.set(f"user:{i % 100}", value, expire=60)
            await cache.get(f"user:{i % 100}")

    async def raw() -> None:
        for i in range(n):
            await client.set(f"{prefix}raw:user:{i % 100}", json.dumps(value), ex=60)
            data = await client.get(f"{prefix}raw:user:{i % 100}")
            json.loads(data)

    try:
        medians = await run_rounds(
            "cache set+get (JSON)",
            {"energy CacheManager": lambda: timed(energy), "raw redis-py": lambda: timed(raw)},
            rounds,
            n * 2,
            "ops",
        )
        ratio("CacheManager / raw redis-py", medians, "energy CacheManager", "raw redis-py", 0.85)
    finally:
        await client.aclose()


async def bench_rate_limit(rounds: int, n: int, prefix: str) -> None:
    """RateLimitCache sliding window vs limits' moving window (redis-py and coredis)."""
    from limits import RateLimitItemPerHour
    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import MovingWindowRateLimiter

    client = redis_asyncio.from_url(REDIS_URL)
    energy_limiter = RateLimitCache(client, key_prefix=f"{prefix}rl")
    item = RateLimitItemPerHour(n * 2)  # every check is allowed: the full script path each time
    peers = {
        name: MovingWindowRateLimiter(RedisStorage(REDIS_URL, implementation=impl, key_prefix=f"{prefix}limits"))
        for name, impl in (("limits redispy", "redispy"), ("limits coredis", "coredis"))
    }

    def energy() -> Variant:
        async def body() -> None:
            key = uuid.uuid4().hex
            for _ in range(n):
                await energy_limiter.check_rate_limit(key, limit=n * 2, window_seconds=3600)

        return lambda: timed(body)

    def peer(limiter: MovingWindowRateLimiter) -> Variant:
        async def body() -> None:
            key = uuid.uuid4().hex
            for _ in range(n):
                await limiter.hit(item, key)

        return lambda: timed(body)

    def peer_with_stats(limiter: MovingWindowRateLimiter) -> Variant:
        # What it takes with `limits` to also know remaining and reset (RateLimit headers).
        async def body() -> None:
            key = uuid.uuid4().hex
            for _ in range(n):
                await limiter.hit(item, key)
                await limiter.get_window_stats(item, key)

        return lambda: timed(body)

    try:
        variants: dict[str, Variant] = {"energy RateLimitCache": energy()}
        variants.update({name: peer(limiter) for name, limiter in peers.items()})
        variants["limits redispy + stats"] = peer_with_stats(peers["limits redispy"])
        medians = await run_rounds("rate-limit checks", variants, rounds, n, "checks")
        ratio("RateLimitCache / limits (redispy)", medians, "energy RateLimitCache", "limits redispy", 1.0)
        ratio("RateLimitCache / limits (coredis)", medians, "energy RateLimitCache", "limits coredis", 1.0)
        ratio(
            "RateLimitCache / limits hit + get_window_stats",
            medians,
            "energy RateLimitCache",
            "limits redispy + stats",
            1.0,
        )
    finally:
        await client.aclose()


async def cleanup_redis(prefix: str) -> None:
    """Delete every key the benchmark created."""
    client = redis_asyncio.from_url(REDIS_URL)
    try:
        for pattern in (f"{prefix}*", f"*{prefix}*"):
            keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
            if keys:
                await client.delete(*keys)
    finally:
        await client.aclose()


# --------------------------------------------------------------------------- databases


async def bench_database(label: str, db: Database, rounds: int, rows: list[dict[str, object]]) -> None:
    """create_many vs Core executemany on one engine (table emptied before each run)."""
    table = Telemetry.__table__
    await db.drop_all(_Base.metadata)
    await db.create_all(_Base.metadata)

    async def empty() -> None:
        async with db.engine.begin() as conn:
            await conn.execute(table.delete())

    async def energy() -> Result:
        await empty()

        async def body() -> None:
            async with db.session() as session:
                await BaseRepository(session, Telemetry).create_many(rows, batch_size=len(rows))

        return await timed(body)

    async def core() -> Result:
        await empty()

        async def body() -> None:
            async with db.engine.begin() as conn:
                await conn.execute(table.insert(), rows)

        return await timed(body)

    medians = await run_rounds(
        f"bulk insert on {label}",
        {"energy create_many": energy, "Core executemany": core},
        rounds,
        len(rows),
        "rows",
    )
    ratio(f"create_many / Core executemany ({label})", medians, "energy create_many", "Core executemany", 0.9)


async def bench_copy(db: Database, dsn: str, rounds: int, rows: list[dict[str, object]]) -> None:
    """copy_many (tuples) vs raw asyncpg copy_records_to_table."""
    records = [tuple(row[c] for c in COLUMNS) for row in rows]
    raw_conn = await asyncpg.connect(dsn)

    async def empty() -> None:
        await raw_conn.execute("TRUNCATE bench_telemetry")

    async def energy() -> Result:
        await empty()

        async def body() -> None:
            async with db.session() as session:
                await BaseRepository(session, Telemetry).copy_many(records, columns=COLUMNS)

        return await timed(body)

    async def raw() -> Result:
        await empty()

        async def body() -> None:
            async with raw_conn.transaction():
                await raw_conn.copy_records_to_table("bench_telemetry", records=records, columns=COLUMNS)

        return await timed(body)

    try:
        medians = await run_rounds(
            "COPY on PostgreSQL", {"energy copy_many": energy, "raw asyncpg COPY": raw}, rounds, len(rows), "rows"
        )
        ratio("copy_many / asyncpg copy_records_to_table", medians, "energy copy_many", "raw asyncpg COPY", 0.8)
    finally:
        await raw_conn.close()


async def main(quick: bool) -> int:
    """Run every comparison once; return the exit status."""
    rounds = 3 if quick else 5
    cache_ops, rl_checks, row_count = (1_000, 1_000, 20_000) if quick else (3_000, 3_000, 100_000)
    prefix = f"bench:data:{uuid.uuid4().hex[:8]}:"
    try:
        await bench_cache(rounds, cache_ops, prefix)
        await bench_rate_limit(rounds, rl_checks, prefix)
    finally:
        await cleanup_redis(prefix)

    rows = telemetry_rows(row_count)
    name = f"energy_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
        async with Database(dsn.replace("postgresql://", "postgresql+asyncpg://", 1)) as pg:
            await bench_database("PostgreSQL", pg, rounds, rows)
            await bench_copy(pg, dsn, rounds, rows)
        with tempfile.TemporaryDirectory() as tmp:
            async with Database(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}") as lite:
                await bench_database("SQLite", lite, rounds, rows)
                async with lite.session() as session:
                    await session.execute(text("SELECT 1"))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and smaller sizes")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.quick)))
