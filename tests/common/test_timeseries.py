"""TimeSeriesStore on real PostgreSQL and SQLite: partitions, duplicates, rollups, retention, queries."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from energy_common.database import Database
from energy_common.exceptions import OutOfRangeError, ValidationError
from energy_common.timeseries import SeriesSpec, TimeSeriesStore, series_ddl
from energy_common.timeseries._grid import DayGrid, FixedGrid
from energy_common.timeseries._plan import plan_segments, usable_levels

HOUR, DAY = 3_600_000, 86_400_000
T0 = int(datetime(2026, 3, 27, tzinfo=UTC).timestamp() * 1000)  # spans Europe/Paris' DST change on 29 March
AGGS = {"power_w": ("avg", "count", "first", "last", "max", "min", "sum"), "energy_kwh": ("first", "last", "max")}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'ts.db'}"
    return str(request.getfixturevalue("postgres_url"))


def _spec(**options: Any) -> SeriesSpec:
    return SeriesSpec(f"ts_{uuid.uuid4().hex[:8]}", ("power_w", "energy_kwh"), **options)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """The database of each engine."""
    database = Database(db_url, pool_size=4, max_overflow=4)
    try:
        yield database
    finally:
        await database.dispose()


async def _store(db: Database, **options: Any) -> TimeSeriesStore:
    store = TimeSeriesStore(db, _spec(**options))
    await store.create(now=T0)
    return store


def _rows(meters: int, start: int, count: int, step: int = 15 * 60_000) -> list[tuple[Any, ...]]:
    rng = random.Random(start)
    rows = []
    for m in range(meters):
        energy = 0.0
        for i in range(count):
            energy += rng.random()
            power = None if i % 17 == 5 else round(rng.uniform(0, 5000), 3)
            rows.append((f"m{m}", start + i * step + m, power, round(energy, 6)))
    return rows


def _oracle(rows: list[tuple[Any, ...]], grid: FixedGrid | DayGrid, lo: int, hi: int) -> list[dict[str, Any]]:
    """Aggregates computed in Python from the unique raw rows: what every query must equal."""
    groups: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
    for row in sorted({(r[0], r[1]): r for r in rows}.values(), key=lambda r: (r[0], r[1])):
        if lo <= row[1] < hi:
            groups.setdefault((row[0], grid.floor(row[1])), []).append(row)
    out = []
    for (key, start), members in sorted(groups.items()):
        powers = [r[2] for r in members if r[2] is not None]
        out.append(
            {
                "key": key,
                "bucket": start,
                "count": len(members),
                "power_w_avg": sum(powers) / len(powers) if powers else None,
                "power_w_count": len(powers),
                "power_w_first": members[0][2],
                "power_w_last": members[-1][2],
                "power_w_max": max(powers) if powers else None,
                "power_w_min": min(powers) if powers else None,
                "power_w_sum": sum(powers) if powers else None,
                "energy_kwh_first": members[0][3],
                "energy_kwh_last": members[-1][3],
                "energy_kwh_max": max(r[3] for r in members),
            }
        )
    return out


def _same(got: Sequence[Mapping[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert len(got) == len(expected)
    for record, want in zip(got, expected, strict=True):
        row = dict(record)
        assert row.keys() == want.keys()
        for name, value in want.items():
            assert row[name] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value), name


def test_public_api_is_pinned() -> None:
    """The package's public names stay stable and sorted."""
    import energy_common.timeseries as package

    assert package.__all__ == [
        "AGGREGATES",
        "MAX_TS",
        "MIN_TS",
        "RangePage",
        "RetentionReport",
        "SeriesSpec",
        "TimeSeriesStore",
        "drop_ddl",
        "parse_duration",
        "partition_ddl",
        "series_ddl",
    ]


async def test_ddl_is_available_for_migrations(db: Database) -> None:
    """The store's DDL is a list of plain statements (partitioned on PostgreSQL) an Alembic migration can run."""
    spec = _spec()
    statements = series_ddl(spec, db.dialect)
    assert statements == TimeSeriesStore(db, spec).ddl()
    assert ("PARTITION BY RANGE" in statements[0]) is db.is_postgres


async def test_partitions_ahead_and_on_demand(db: Database) -> None:
    """Partitions exist ahead of now, and inserts far in the future or past create theirs on demand."""
    store = await _store(db)
    try:
        if store.partitions is not None:
            bounds = await store.partitions.bounds()
            assert {T0 + i * DAY for i in range(4)} <= set(bounds)
        far = [
            ("m1", int(datetime(2150, 6, 1, tzinfo=UTC).timestamp() * 1000), 1.0, 1.0),
            ("m1", int(datetime(1975, 1, 1, tzinfo=UTC).timestamp() * 1000), 2.0, 0.5),
            ("m1", T0 + 5, 3.0, 2.0),
        ]
        assert await store.ingest(far) == far
        latest = await store.latest(["m1", "nobody"])
        assert latest["m1"]["power_w"] == 1.0
        assert "nobody" not in latest
        page = await store.range("m1", far[1][1], far[0][1] + 1, limit=10, descending=False)
        assert [row["ts"] for row in page.items] == [far[1][1], far[2][1], far[0][1]]
        with pytest.raises(OutOfRangeError):
            await store.ingest([("m1", 2**62, 1.0, 1.0)])
        with pytest.raises(OutOfRangeError):
            await store.range("m1", 0, 253_402_300_800_000)
        with pytest.raises(OutOfRangeError):
            await store.range("m1", T0, T0 + DAY, offset=2**63)
    finally:
        await store.drop()


async def test_duplicates_are_stored_once(db: Database) -> None:
    """A redelivered batch stores nothing; a batch mixing new and stored readings returns only the new."""
    store = await _store(db)
    try:
        rows = _rows(3, T0, 10)
        assert len(await store.ingest(rows)) == 30
        assert await store.ingest(rows) == []
        mixed = [*rows[:5], ("m9", T0, 1.0, None), ("m9", T0, 2.0, None), {"device_id": "x"}]
        with pytest.raises((KeyError, ValidationError)):
            await store.ingest(mixed)
        fresh = await store.ingest([*rows[:5], ("m9", T0, 1.0, None), ("m9", T0, 2.0, None)])
        assert fresh == [("m9", T0, 1.0, None)]
        page = await store.range("m9", T0, T0 + DAY, total=True)
        assert page.total == 1
        dicts = [{"device_id": "m8", "ts": T0 + 1, "power_w": 5.0, "energy_kwh": 1.0}]
        assert await store.ingest(dicts) == dicts
    finally:
        await store.drop()


@pytest.mark.parametrize(("bucket", "tz"), [("1h", "UTC"), ("1d", "UTC"), ("1d", "Europe/Paris"), ("15m", "UTC")])
async def test_rollups_equal_raw_after_late_and_redelivered(db: Database, bucket: str, tz: str) -> None:
    """Queries served by rollups plus the raw tail equal the raw aggregates, after late readings and redeliveries."""
    store = await _store(db, timezone="Europe/Paris", lag="2h")
    try:
        rows = _rows(3, T0, 4 * 96 + 10)  # four days and a bit of 15-minute readings
        for i in range(0, len(rows), 250):
            await store.ingest(rows[i : i + 250])
        now = T0 + 4 * DAY + 2 * HOUR
        marks = await store.refresh(now=now)
        assert marks["1h"] == T0 + 4 * DAY
        late = [("m0", T0 + DAY + 7, 9999.0, 0.0), ("m2", T0 + 3, None, 0.1)]
        redelivered = rows[100:140]
        assert await store.ingest([*late, *redelivered]) == late
        rows += late
        grid = (
            DayGrid(tz)
            if bucket == "1d" and tz != "UTC"
            else FixedGrid(HOUR if bucket == "1h" else DAY if bucket == "1d" else 900_000)
        )
        lo, hi = T0 - DAY, T0 + 6 * DAY
        got = await store.aggregate(["m0", "m1", "m2"], lo, hi, bucket=bucket, tz=tz, aggregates=AGGS)
        _same(got, _oracle(rows, grid, lo, hi))
        odd = await store.aggregate(["m1"], T0 + 7 * 60_000, T0 + 3 * DAY + 5, bucket=bucket, tz=tz, aggregates=AGGS)
        _same(odd, [r for r in _oracle(rows, grid, T0 + 7 * 60_000, T0 + 3 * DAY + 5) if r["key"] == "m1"])
    finally:
        await store.drop()


def test_long_ranges_read_rollups_and_the_raw_tail() -> None:
    """The planner takes whole days from the daily rollup, hours from the hourly one and the tail from raw rows."""
    spec = _spec()
    marks = {"1h": T0 + 10 * DAY + 5 * HOUR, "1d": T0 + 10 * DAY}
    levels = usable_levels(spec.levels, marks, FixedGrid(DAY), T0, T0 + 11 * DAY)
    segments = plan_segments(T0 - HOUR, T0 + 10 * DAY + 7 * HOUR + 5, levels, marks)
    assert [(s.lo, s.hi, s.table) for s in segments] == [
        (T0 - HOUR, T0, spec.levels[0].table),
        (T0, T0 + 10 * DAY, spec.levels[1].table),
        (T0 + 10 * DAY, T0 + 10 * DAY + 5 * HOUR, spec.levels[0].table),
        (T0 + 10 * DAY + 5 * HOUR, T0 + 10 * DAY + 7 * HOUR + 5, None),
    ]


async def test_retention_drops_only_the_policy_and_is_safe_twice(db: Database) -> None:
    """Two concurrent retention runs drop exactly the raw data past the policy, once, and keep rollups."""
    store = await _store(db, raw_retention="3d", lag="1h")
    try:
        rows = _rows(2, T0, 7 * 96)
        await store.ingest(rows)
        now = T0 + 7 * DAY
        await store.ensure_partitions(T0, now)
        await store.refresh(now=now)
        before = await store.aggregate(["m0", "m1"], T0, now, bucket="1d", aggregates=AGGS)
        reports = await asyncio.gather(store.apply_retention(now=now), store.apply_retention(now=now))
        cutoff = T0 + 4 * DAY
        assert {r.cutoff for r in reports if not r.skipped} == {cutoff}
        if store.partitions is not None:
            dropped = [name for r in reports for name in r.dropped]
            assert sorted(dropped) == sorted(store.spec.partition_name(T0 + i * DAY) for i in range(4))
            assert min(await store.partitions.bounds()) == cutoff
        else:
            assert sum(r.deleted_rows for r in reports) == sum(1 for r in rows if r[1] < cutoff)
        kept = await store.range("m0", T0, now, limit=10_000, descending=False)
        assert kept.items[0]["ts"] == cutoff
        assert len(kept.items) == sum(1 for r in rows if r[0] == "m0" and r[1] >= cutoff)
        after = await store.aggregate(["m0", "m1"], T0, now, bucket="1d", aggregates=AGGS)
        assert [dict(r) for r in after] == [dict(r) for r in before]  # the daily rollup outlives the raw partitions
    finally:
        await store.drop()


async def test_bad_queries_are_validation_errors(db: Database) -> None:
    """Unknown columns, aggregates, buckets, zones and key lists are refused before SQL."""
    store = await _store(db)
    try:
        for call in (
            {"aggregates": {"nope": ("avg",)}},
            {"aggregates": {"power_w": ("median",)}},
            {"aggregates": AGGS, "bucket": "7x"},
            {"aggregates": AGGS, "tz": "Mars/Olympus"},
        ):
            with pytest.raises(ValidationError):
                await store.aggregate(["m1"], T0, T0 + DAY, **call)
        with pytest.raises(ValidationError):
            await store.aggregate("m1", T0, T0 + DAY, aggregates=AGGS)
        with pytest.raises(ValidationError):
            await store.range("m1", T0 + DAY, T0)
        with pytest.raises(ValidationError):
            SeriesSpec("Bad Name;", ("v",))
    finally:
        await store.drop()


async def test_refresh_racing_ingest_loses_nothing(db: Database) -> None:
    """Rollups refreshed while batches (new, late and redelivered) keep arriving still equal the raw aggregates."""
    store = await _store(db, lag="1h")
    try:
        rows = _rows(4, T0, 3 * 96)
        rows.sort(key=lambda r: r[1])
        done = asyncio.Event()
        written = [T0]

        async def writer() -> None:
            for i in range(0, len(rows), 48):
                batch = rows[i : i + 48]
                await store.ingest([*batch, *rows[max(0, i - 60) : i - 50]])  # redeliveries ride along
                written[0] = batch[-1][1]
            done.set()

        async def refresher() -> None:  # the watermark chases the writer: batches land on both sides of it
            while not done.is_set():
                await store.refresh(now=written[0] + HOUR)
                await asyncio.sleep(0)

        await asyncio.gather(writer(), refresher())
        await store.refresh(now=T0 + 4 * DAY)
        for bucket, grid in (("1h", FixedGrid(HOUR)), ("1d", FixedGrid(DAY))):
            got = await store.aggregate(["m0", "m1", "m2", "m3"], T0, T0 + 3 * DAY, bucket=bucket, aggregates=AGGS)
            _same(got, _oracle(rows, grid, T0, T0 + 3 * DAY))
        marks = await store.watermarks()
        assert marks["1h"] == T0 + 4 * DAY - HOUR
    finally:
        await store.drop()


async def test_retention_can_detach_instead_of_drop(db: Database) -> None:
    """With detach=True old partitions leave the series but stay as tables (PostgreSQL); SQLite deletes rows."""
    store = await _store(db, raw_retention="1d")
    try:
        await store.ingest(_rows(1, T0, 3 * 96))
        await store.refresh(now=T0 + 3 * DAY)
        report = await store.apply_retention(now=T0 + 3 * DAY, detach=True)
        assert report.cutoff == T0 + 2 * DAY
        kept = await store.range("m0", T0, T0 + 3 * DAY, limit=1000, descending=False)
        assert kept.items[0]["ts"] == T0 + 2 * DAY
        if store.partitions is not None:
            assert report.dropped == [store.spec.partition_name(T0), store.spec.partition_name(T0 + DAY)]
            async with db.engine.connect() as conn:
                found = await conn.exec_driver_sql(f'SELECT count(*) FROM "{report.dropped[0]}"')  # noqa: S608 - a name the store made
                assert found.scalar() == 96
                await conn.exec_driver_sql(f'DROP TABLE "{report.dropped[0]}"')
                await conn.exec_driver_sql(f'DROP TABLE "{report.dropped[1]}"')
                await conn.commit()
        else:
            assert report.deleted_rows == 2 * 96
    finally:
        await store.drop()
