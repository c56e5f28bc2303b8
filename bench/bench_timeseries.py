"""Time-series store vs a plain indexed PostgreSQL table, on >= 10 million meter readings.

    python bench/bench_timeseries.py            1,000 meters x 105 days of 15-minute readings (10.08 M)
                                                + one 1-second meter (1,000,100 readings)
    python bench/bench_timeseries.py --quick    100 meters x 30 days (0.29 M) + 200,100 hot readings

Both sides get the same rows, generated here and loaded with COPY in batches of 10,000
(per day, the store and the plain table take turns in shuffled order: interleaved rounds):

    store   ``TimeSeriesStore`` (daily range partitions, hourly + daily rollups, duplicate
            suppression on; rows are tuples).
    plain   one table ``(device_id, ts, power_w, voltage_v, energy_kwh)`` with the primary
            key ``(device_id, ts)``, loaded by raw asyncpg ``copy_records_to_table``; its
            queries are the best hand-written SQL for it, run with raw asyncpg ``fetch``
            (prepared statements), after ``VACUUM ANALYZE``.

Reported (medians of interleaved rounds; ratio > 1 means the store is faster):

    ingest      rows/s of the store vs raw COPY (target >= 0.8x), and the rollup refresh
                the store runs afterwards (its deferred cost), and a batch with 1 %
                redelivered readings (store: careful path) vs plain COPY into a temp table
                + ``INSERT ... ON CONFLICT DO NOTHING``.
    daily       daily energy (max - min of the cumulative counter) of one meter over the
                whole range: store (daily rollup) vs ``GROUP BY day`` over the raw rows.
    hourly      a month of hourly mean power for 100 meters: store (hourly rollup) vs
                ``GROUP BY device_id, hour``.
    pages       the hot meter's 100 readings at page 1 and page 10,000: keyset (``range``
                with ``before``) vs ``LIMIT 100 OFFSET 999900`` on the plain table.
    retention   dropping the oldest 30 days: store (``apply_retention`` drops partitions)
                vs ``DELETE ... WHERE ts < cutoff``: time, table size and dead tuples after.

Every result is checked against the other side before it is timed (floats to 1e-9
relative: sums are added in another order). The database is created and dropped here
(127.0.0.1); the machine is shared, so the figures are noisy: read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from energy_common.database import Database
from energy_common.timeseries import SeriesSpec, TimeSeriesStore

ADMIN_DSN = os.environ.get("ENERGY_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres").replace(
    "postgresql+asyncpg://", "postgresql://"
)
HOUR, DAY, STEP = 3_600_000, 86_400_000, 15 * 60_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BATCH = 10_000
COLUMNS = ["device_id", "ts", "power_w", "voltage_v", "energy_kwh"]
PLAIN_DDL = (
    "CREATE TABLE plain (device_id VARCHAR(64) NOT NULL, ts BIGINT NOT NULL, power_w DOUBLE PRECISION, "
    "voltage_v DOUBLE PRECISION, energy_kwh DOUBLE PRECISION, PRIMARY KEY (device_id, ts))"
)
DAILY_SQL = (
    "SELECT ts - ts % 86400000 AS day, max(energy_kwh) - min(energy_kwh) AS kwh FROM plain "
    "WHERE device_id = $1 AND ts >= $2 AND ts < $3 GROUP BY 1 ORDER BY 1"
)
HOURLY_SQL = (
    "SELECT device_id, ts - ts % 3600000 AS hour, avg(power_w) AS power FROM plain "
    "WHERE device_id = ANY($1::varchar[]) AND ts >= $2 AND ts < $3 GROUP BY 1, 2 ORDER BY 1, 2"
)
PAGE_SQL = (
    "SELECT device_id, ts, power_w, voltage_v, energy_kwh FROM plain WHERE device_id = $1 "
    "ORDER BY ts DESC LIMIT 100 OFFSET $2"
)


def day_rows(meters: int, day: int, energy: list[float], rng: random.Random) -> list[tuple[Any, ...]]:
    """The 15-minute readings of every meter for one day (energy counters carried over)."""
    rows = []
    base = T0 + day * DAY
    for m in range(meters):
        name = f"m{m:04d}"
        total = energy[m]
        for i in range(96):
            power = rng.uniform(50.0, 4000.0)
            total += power * 0.25 / 1000
            rows.append((name, base + i * STEP, round(power, 3), 230.0 + rng.uniform(-5, 5), round(total, 6)))
        energy[m] = total
    return rows


def hot_rows(count: int) -> list[tuple[Any, ...]]:
    """One meter reporting every second."""
    return [("hot", T0 + i * 1000, float(i % 5000), 230.0, i / 3600.0) for i in range(count)]


async def timed(call: Callable[[], Awaitable[Any]], repeat: int) -> float:
    """Median seconds of ``repeat`` awaited calls."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def close(a: float | None, b: float | None) -> bool:
    """Equal, or both floats within 1e-9 relative."""
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


async def ingest(store: TimeSeriesStore, pool: asyncpg.Pool, meters: int, days: int, hot: int) -> dict[str, float]:
    """Load the same rows into both sides, taking turns per day; return rows/s per side."""
    rng = random.Random(7)
    energy = [0.0] * meters
    seconds = {"store": 0.0, "plain": 0.0}
    rates: dict[str, list[float]] = {"store": [], "plain": []}
    chunks = [("day", d) for d in range(days)] + [("hot", i) for i in range(0, hot, 100_000)]
    hot_all = hot_rows(hot)
    for kind, index in chunks:
        rows = day_rows(meters, index, energy, rng) if kind == "day" else hot_all[index : index + 100_000]

        async def to_store(rows: list[tuple[Any, ...]] = rows) -> None:
            for i in range(0, len(rows), BATCH):
                await store.ingest(rows[i : i + BATCH])

        async def to_plain(rows: list[tuple[Any, ...]] = rows) -> None:
            async with pool.acquire() as conn:
                for i in range(0, len(rows), BATCH):
                    await conn.copy_records_to_table("plain", records=rows[i : i + BATCH], columns=COLUMNS)

        order = [("store", to_store), ("plain", to_plain)]
        random.shuffle(order)
        for name, run in order:
            started = time.perf_counter()
            await run()
            took = time.perf_counter() - started
            seconds[name] += took
            rates[name].append(len(rows) / took)
    return {name: statistics.median(values) for name, values in rates.items()} | {
        f"{name}_seconds": value for name, value in seconds.items()
    }


async def redeliveries(store: TimeSeriesStore, pool: asyncpg.Pool, day: int, rounds: int) -> tuple[float, float]:
    """Batches of new rows holding 1 % already stored: store vs temp-table COPY + ON CONFLICT."""
    rng = random.Random(11)
    store_s, plain_s = [], []
    for r in range(rounds):
        fresh = [("dup", T0 + (day * DAY) + (r * BATCH + i) * 1000, 1.0, 230.0, 1.0) for i in range(BATCH - 100)]
        old = [(f"m{rng.randrange(10):04d}", T0 + rng.randrange(96) * STEP, 1.0, 230.0, 1.0) for _ in range(100)]
        batch = fresh + old

        async def to_store(batch: list[tuple[Any, ...]] = batch, new: int = len(set(fresh))) -> None:
            stored = await store.ingest(batch)
            assert len(stored) == new, "the store kept a redelivered reading"

        async def to_plain(batch: list[tuple[Any, ...]] = batch) -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("CREATE TEMP TABLE IF NOT EXISTS stage (LIKE plain) ON COMMIT DELETE ROWS")
                await conn.copy_records_to_table("stage", records=batch, columns=COLUMNS)
                await conn.execute("INSERT INTO plain SELECT * FROM stage ON CONFLICT DO NOTHING")

        for name, run in random.sample([("store", to_store), ("plain", to_plain)], 2):
            started = time.perf_counter()
            await run()
            (store_s if name == "store" else plain_s).append(time.perf_counter() - started)
    return BATCH / statistics.median(store_s), BATCH / statistics.median(plain_s)


def store_side(store: TimeSeriesStore, hundred: list[str], span: tuple[int, int, int], hot_end: int) -> list[Any]:
    """The store's four queries (daily, hourly, page 1, deep page via ``before``) as callables."""
    lo, hi, month_hi = span

    async def daily() -> list[Any]:
        rows = await store.aggregate(["m0042"], lo, hi, bucket="1d", aggregates={"energy_kwh": ("min", "max")})
        return [(r["bucket"], r["energy_kwh_max"] - r["energy_kwh_min"]) for r in rows]

    async def hourly() -> list[Any]:
        rows = await store.aggregate(hundred, lo, month_hi, bucket="1h", aggregates={"power_w": ("avg",)})
        return [(r["key"], r["bucket"], r["power_w_avg"]) for r in rows]

    def keyset(before: int | None) -> Callable[[], Awaitable[list[Any]]]:
        async def run() -> list[Any]:
            page = await store.range("hot", T0, hot_end, limit=100, before=before)
            return [tuple(r.values()) for r in page.items]

        return run

    return [daily, hourly, keyset]


async def queries(
    stores: dict[str, TimeSeriesStore], pool: asyncpg.Pool, *, meters: int, days: int, hot: int, rounds: int
) -> None:
    """Daily energy, hourly power and pages: check equal results, then time interleaved."""
    lo, hi = T0, T0 + days * DAY
    month_hi = T0 + min(30, days) * DAY
    hundred = [f"m{m:04d}" for m in range(0, meters, max(1, meters // 100))][:100]
    newest = hot_rows(hot)[-1][1] + 1
    deep_page = hot // 100 - 1  # 10,000 on the full run (1,000,100 readings)
    deep_offset = (deep_page - 1) * 100
    async with pool.acquire() as conn:
        deep_first = await conn.fetchval(
            "SELECT ts FROM plain WHERE device_id = 'hot' ORDER BY ts DESC LIMIT 1 OFFSET $1", deep_offset - 1
        )

    async def plain_daily() -> list[Any]:
        async with pool.acquire() as conn:
            return [(r[0], r[1]) for r in await conn.fetch(DAILY_SQL, "m0042", lo, hi)]

    async def plain_hourly() -> list[Any]:
        async with pool.acquire() as conn:
            return [(r[0], r[1], r[2]) for r in await conn.fetch(HOURLY_SQL, hundred, lo, month_hi)]

    def offset(skip: int) -> Callable[[], Awaitable[list[Any]]]:
        async def run() -> list[Any]:
            async with pool.acquire() as conn:
                return [tuple(r) for r in await conn.fetch(PAGE_SQL, "hot", skip)]

        return run

    names = ["daily energy, 1 meter, whole range", "hourly power, 100 meters, 30 days"]
    names += ["page 1 (keyset vs offset)", f"page {deep_page:,} (keyset vs offset)"]
    repeats = [20, 2, 50, 5]
    sides: dict[str, list[Callable[[], Awaitable[list[Any]]]]] = {"plain": [plain_daily, plain_hourly, offset(0)]}
    sides["plain"].append(offset(deep_offset))
    for label, store in stores.items():
        daily, hourly, keyset = store_side(store, hundred, (lo, hi, month_hi), newest)
        sides[label] = [daily, hourly, keyset(None), keyset(deep_first)]
    for index, name in enumerate(names):
        expected = await sides["plain"][index]()
        for label in stores:
            got = await sides[label][index]()
            assert got, f"{name}: no rows"
            assert len(got) == len(expected), f"{name}: {len(got)} vs {len(expected)} rows"
            for x, y in zip(got, expected, strict=True):
                assert all(close(p, q) if isinstance(p, float) else p == q for p, q in zip(x, y, strict=True)), name
    samples = {name: {label: [] for label in sides} for name in names}  # type: dict[str, dict[str, list[float]]]
    for _ in range(rounds):
        for index, name in enumerate(names):
            for label in random.sample(list(sides), len(sides)):
                samples[name][label].append(await timed(sides[label][index], repeats[index]))
    for name in names:
        ms = {label: statistics.median(values) * 1000 for label, values in samples[name].items()}
        cells = "   ".join(f"{label} {ms[label]:8.2f} ms ({ms['plain'] / ms[label]:5.1f}x)" for label in stores)
        print(f"  {name:<38} {cells}   plain {ms['plain']:8.2f} ms")


async def retention(store: TimeSeriesStore, pool: asyncpg.Pool, days: int) -> None:
    """Drop the oldest 30 days on both sides: time, size and dead tuples after."""
    span = min(30, days - 1)
    cutoff = T0 + span * DAY
    store = TimeSeriesStore(store.db, dataclasses.replace(store.spec, raw_retention=f"{days - span}d"))
    async with pool.acquire() as conn:
        plain_before = await conn.fetchval("SELECT pg_total_relation_size('plain')")
        store_before = await conn.fetchval(
            "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'bench_readings'::regclass"
        )
        started = time.perf_counter()
        deleted = await conn.execute("DELETE FROM plain WHERE ts < $1", cutoff)
        plain_s = time.perf_counter() - started
        await conn.execute("ANALYZE plain")
        plain_after = await conn.fetchval("SELECT pg_total_relation_size('plain')")
        dead = await conn.fetchval("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'plain'")
    started = time.perf_counter()
    report = await store.apply_retention(now=T0 + days * DAY)
    store_s = time.perf_counter() - started
    assert report.cutoff == cutoff, (report.cutoff, cutoff)
    async with pool.acquire() as conn:
        store_after = await conn.fetchval(
            "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'bench_readings'::regclass"
        )
        left = await conn.fetchval("SELECT count(*) FROM bench_readings WHERE ts < $1", cutoff)
    assert left == 0
    mb = 1024 * 1024
    print(
        f"  retention of {span} days ({deleted.split()[-1]} rows): store {store_s * 1000:,.0f} ms "
        f"({len(report.dropped)} partitions dropped, {store_before / mb:,.0f} -> {store_after / mb:,.0f} MB)   "
        f"plain DELETE {plain_s * 1000:,.0f} ms ({plain_before / mb:,.0f} -> {plain_after / mb:,.0f} MB, "
        f"{dead:,} dead tuples until VACUUM)   {plain_s / store_s:,.0f}x"
    )


async def main(quick: bool) -> int:
    """Create the database, run every comparison, drop the database."""
    meters, days, hot = (100, 30, 200_100) if quick else (1000, 105, 1_000_100)
    name = f"energy_bench_ts_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    try:
        db = Database(dsn.replace("postgresql://", "postgresql+asyncpg://"), pool_size=4)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        spec = SeriesSpec("bench_readings", ("power_w", "voltage_v", "energy_kwh"), partition="1d", lag="1h")
        store = TimeSeriesStore(db, spec)
        await store.create(now=T0)
        await store.ensure_partitions(T0, T0 + (days + 1) * DAY)
        async with pool.acquire() as conn:
            await conn.execute(PLAIN_DDL)
        total = meters * days * 96 + hot
        print(
            f"timeseries: {total:,} readings ({meters:,} meters x {days} days x 96 + {hot:,} of one meter), PostgreSQL"
        )
        rates = await ingest(store, pool, meters, days, hot)
        print(
            f"  ingest (COPY, {BATCH:,}-row batches)     store {rates['store']:10,.0f} rows/s   "
            f"plain {rates['plain']:10,.0f} rows/s   {rates['store'] / rates['plain']:7.2f}x"
        )
        started = time.perf_counter()
        await store.refresh(now=T0 + days * DAY + 2 * HOUR)
        refresh_s = time.perf_counter() - started
        with_refresh = total / (rates["store_seconds"] + refresh_s)
        print(
            f"  + rollup refresh of everything: {refresh_s:,.1f} s; ingest incl. refresh {with_refresh:,.0f} rows/s "
            f"= {with_refresh / (total / rates['plain_seconds']):.2f}x of plain COPY"
        )
        ours, theirs = await redeliveries(store, pool, days + 2, 5 if quick else 10)
        print(
            f"  batch with 1% redelivered              store {ours:10,.0f} rows/s   plain (temp + ON CONFLICT) "
            f"{theirs:10,.0f} rows/s   {ours / theirs:7.2f}x"
        )
        async with pool.acquire() as conn:
            await conn.execute("VACUUM ANALYZE plain")
            await conn.execute("VACUUM ANALYZE bench_readings")
            await conn.execute("VACUUM ANALYZE bench_readings_1h")
            await conn.execute("VACUUM ANALYZE bench_readings_1d")
        # The same store through a Database without pool_pre_ping: what its 3 round trips per
        # checkout (asyncpg: BEGIN, ";" and ROLLBACK) cost a millisecond query.
        lean_db = Database(
            dsn.replace("postgresql://", "postgresql+asyncpg://"), engine_options={"pool_pre_ping": False}
        )
        lean = TimeSeriesStore(lean_db, spec)
        stores = {"store": store, "store w/o pre-ping": lean}
        await queries(stores, pool, meters=meters, days=days, hot=hot, rounds=3 if quick else 5)
        await lean_db.dispose()
        await retention(store, pool, days)
        await pool.close()
        await db.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="0.5 M readings instead of 11 M")
    sys.exit(asyncio.run(main(parser.parse_args().quick)))
