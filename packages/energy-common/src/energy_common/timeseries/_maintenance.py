"""Rollup refresh and retention: the jobs a service runs on a schedule, safe on many replicas."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from energy_common.database import translating_errors_async
from energy_common.timeseries._ddl import q
from energy_common.timeseries._grid import DAY, DayGrid, FixedGrid, parse_duration
from energy_common.timeseries._partitions import Partitions, lock_key
from energy_common.timeseries._plan import plan_segments, usable_levels
from energy_common.timeseries._spec import Level, SeriesSpec
from energy_common.timeseries._sql import Segment, combine_sql, replace_set, source_sql
from energy_common.timeseries._tx import write_transaction

__all__ = ["Maintenance", "RetentionReport", "now_ms", "segment_sources"]


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one retention run did.

    Attributes:
        skipped: Another replica held the retention lock; nothing was done.
        dropped: Raw partitions dropped (or detached), by name.
        deleted_rows: Raw rows deleted (SQLite, which has no partitions).
        rollup_rows: Rollup rows deleted past ``rollup_retention``.
        cutoff: Raw data before this instant (epoch ms) is gone.
    """

    skipped: bool = False
    dropped: list[str] = field(default_factory=list)
    deleted_rows: int = 0
    rollup_rows: int = 0
    cutoff: int | None = None


def segment_sources(spec: SeriesSpec, segments: Sequence[Segment], key_filter: str) -> tuple[list[str], dict[str, Any]]:
    """SELECTs (as partials) of planned segments, with their bound ``:lo_i``/``:hi_i``."""
    sources: list[str] = []
    params: dict[str, Any] = {}
    for i, segment in enumerate(segments):
        column = q(spec.time) if segment.table is None else q("bucket")
        where = f"{key_filter}{column} >= :lo_{i} AND {column} < :hi_{i}"
        sources.append(source_sql(spec, segment, where))
        params[f"lo_{i}"], params[f"hi_{i}"] = segment.lo, segment.hi
    return sources, params


class Maintenance:
    """Refreshes rollups and applies retention for one series.

    Args:
        engine: The database engine.
        spec: The series.
        partitions: Partition manager (PostgreSQL), None on SQLite.
    """

    def __init__(self, engine: AsyncEngine, spec: SeriesSpec, partitions: Partitions | None) -> None:
        self._engine = engine
        self._spec = spec
        self._partitions = partitions
        self._pg = partitions is not None

    async def _marks(self, conn: AsyncConnection) -> dict[str, int | None]:
        rows = await conn.execute(text(f"SELECT {q('level')}, {q('watermark')} FROM {q(self._spec.state_table)}"))
        return {str(level): mark for level, mark in rows.all()}

    async def refresh(self, now: int | None = None, *, max_steps: int = 1000) -> dict[str, int]:
        """Roll up every complete bucket older than ``now - lag``; return each level's new watermark.

        Each step is one transaction that locks the level's watermark row (``FOR NO KEY
        UPDATE``), waits for in-flight ingests to commit, aggregates one chunk (a day
        for sub-day levels, 31 days for daily ones) from the finer rollup where it can
        and the raw rows elsewhere, and moves the watermark. Two replicas refreshing at
        once serialise on that row; the second continues where the first stopped.
        """
        target_time = (now if now is not None else now_ms()) - parse_duration(self._spec.lag)
        result: dict[str, int] = {}
        for index, level in enumerate(self._spec.levels):
            for _ in range(max_steps):
                mark = await self._step(level, self._spec.levels[:index], target_time)
                if mark is None:
                    break
                result[level.name] = mark
        return result

    async def _step(self, level: Level, finer: tuple[Level, ...], target_time: int) -> int | None:
        spec, grid = self._spec, level.grid
        lock = " FOR NO KEY UPDATE" if self._pg else ""
        async with translating_errors_async(), write_transaction(self._engine) as conn:
            row = (
                await conn.execute(
                    text(f"SELECT {q('watermark')} FROM {q(spec.state_table)} WHERE {q('level')} = :l{lock}"),
                    {"l": level.name},
                )
            ).one()
            target = grid.floor(target_time)
            lo = row[0]
            if lo is None:
                first = (await conn.execute(text(f"SELECT MIN({q(spec.time)}) FROM {q(spec.table)}"))).scalar()
                if first is None:
                    return None
                lo = grid.floor(int(first))
            if lo >= target:
                return None
            chunk = 31 * DAY if isinstance(grid, DayGrid) or grid.size >= DAY else DAY
            hi = min(target, grid.floor(lo + chunk))
            if hi <= lo:
                hi = grid.next(lo) if isinstance(grid, DayGrid) else lo + grid.size
            marks = await self._marks(conn)
            segments = plan_segments(lo, hi, usable_levels(finer, marks, grid, lo, hi), marks)
            sources, params = segment_sources(spec, segments, "")
            combined = combine_sql(spec, "postgresql" if self._pg else "sqlite", sources, grid)
            await conn.execute(
                text(
                    f"INSERT INTO {q(level.table)} SELECT * FROM ({combined}) AS c WHERE true "
                    f"ON CONFLICT ({q(spec.key)}, {q('bucket')}) DO UPDATE SET {replace_set(spec)}"
                ),
                {**params, "tz": spec.timezone},
            )
            await conn.execute(
                text(f"UPDATE {q(spec.state_table)} SET {q('watermark')} = :w WHERE {q('level')} = :l"),
                {"w": hi, "l": level.name},
            )
            return int(hi)

    async def retention(self, now: int | None = None, *, detach: bool = False) -> RetentionReport:
        """Drop raw data older than ``raw_retention`` and rollup rows older than ``rollup_retention``.

        Raw data is only dropped once every rollup holds it (below each watermark), whole
        partitions at a time on PostgreSQL. One replica at a time: the run takes a
        ``pg_try_advisory_xact_lock``; a replica that finds it taken skips (``skipped``).
        """
        spec = self._spec
        moment = now if now is not None else now_ms()
        async with translating_errors_async(), write_transaction(self._engine) as conn:
            if self._pg:
                got = await conn.execute(
                    text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": lock_key(spec, "retention")}
                )
                if not got.scalar():
                    return RetentionReport(skipped=True)
            dropped: list[str] = []
            deleted = rollup_rows = 0
            cutoff: int | None = None
            if spec.raw_retention is not None:
                cutoff = FixedGrid(spec.partition_ms).floor(moment - parse_duration(spec.raw_retention))
                marks = await self._marks(conn)
                if spec.levels:
                    rolled = [marks.get(level.name) for level in spec.levels]
                    cutoff = min([cutoff, *(m if m is not None else -(2**62) for m in rolled)])
                if self._partitions is not None:
                    dropped = await self._partitions.drop_before(conn, cutoff, detach=detach)
                else:
                    result = await conn.execute(
                        text(f"DELETE FROM {q(spec.table)} WHERE {q(spec.time)} < :c"), {"c": cutoff}
                    )
                    deleted = int(getattr(result, "rowcount", 0) or 0)
            if spec.rollup_retention is not None:
                edge = moment - parse_duration(spec.rollup_retention)
                for level in spec.levels:
                    result = await conn.execute(
                        text(f"DELETE FROM {q(level.table)} WHERE {q('bucket')} < :c"), {"c": edge}
                    )
                    rollup_rows += int(getattr(result, "rowcount", 0) or 0)
        return RetentionReport(dropped=dropped, deleted_rows=deleted, rollup_rows=rollup_rows, cutoff=cutoff)
