"""SQL of the store, built from the spec: one aggregate-state shape for raw rows and rollups.

Every source (raw readings, a rollup table, freshly inserted rows) is read as *partial
aggregates* with the same columns (``n, first_ts, last_ts`` and per value ``_n, _sum,
_min, _max, _first, _last``). Combining partials into coarser buckets, refreshing a
rollup and merging late readings into one are then the same few expressions, so a query
over rollups plus the raw tail gives the answer the raw rows give.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from energy_common.timeseries._ddl import q, state_columns
from energy_common.timeseries._grid import DayGrid, FixedGrid, Grid
from energy_common.timeseries._spec import SeriesSpec

__all__ = ["Segment", "bucket_expr", "combine_sql", "finals", "grid_serves", "merge_set", "replace_set", "source_sql"]


@dataclass(frozen=True, slots=True)
class Segment:
    """Read ``[lo, hi)`` from ``table`` (a rollup) or from the raw rows (``table`` None)."""

    lo: int
    hi: int
    table: str | None


def bucket_expr(column: str, grid: Grid) -> str:
    """SQL of the bucket start holding ``column`` (epoch ms) on ``grid``; day grids bind ``:tz``."""
    if isinstance(grid, DayGrid):
        return f"energy_local_day({column}, :tz)"
    size = grid.size
    return f"({column} - ((({column} % {size}) + {size}) % {size}))"


def source_sql(spec: SeriesSpec, segment: Segment, where: str, relation: str | None = None) -> str:
    """SELECT of one source as partials: ``key, t, <state columns>``.

    Args:
        spec: The series.
        segment: Time range (bound as ``:lo_<i>``/``:hi_<i>`` by the caller via ``where``).
        where: Extra WHERE text (the key filter and the range on ``t``'s column).
        relation: Raw-shaped relation to read instead of the raw table (e.g. a CTE of
            freshly inserted rows).
    """
    key, time = q(spec.key), q(spec.time)
    if segment.table is not None:
        columns = ", ".join(q(c) for c in state_columns(spec))
        return f"SELECT {key} AS k, {q('bucket')} AS t, {columns} FROM {q(segment.table)} WHERE {where}"
    parts = [f"{key} AS k", f"{time} AS t", "1 AS n", f"{time} AS first_ts", f"{time} AS last_ts"]
    for value in spec.values:
        v = q(value)
        parts += [f"CASE WHEN {v} IS NULL THEN 0 ELSE 1 END AS {q(value + '_n')}"]
        parts += [f"{v} AS {q(value + suffix)}" for suffix in ("_sum", "_min", "_max", "_first", "_last")]
    return f"SELECT {', '.join(parts)} FROM {relation or q(spec.table)} WHERE {where}"


def combine_sql(spec: SeriesSpec, dialect: str, sources: Sequence[str], grid: Grid) -> str:
    """Combine partial sources into buckets of ``grid``: ``k, bucket, <state columns>``.

    First/last values follow ``first_ts``/``last_ts``: on PostgreSQL the minimum (maximum)
    of ``ARRAY[time, value]`` pairs, whose order is decided by the time (unique within a
    series; epoch ms are exact in float8 up to 2**53); on SQLite ``FIRST_VALUE`` windows.
    """
    union = " UNION ALL ".join(f"SELECT * FROM ({source}) AS s{i}" for i, source in enumerate(sources))
    bucket = bucket_expr("t", grid)
    pg = dialect == "postgresql"
    # Counts stay BIGINT (PostgreSQL's SUM(bigint) is NUMERIC).
    parts = ["k", "bucket", "CAST(SUM(n) AS BIGINT) AS n", "MIN(first_ts) AS first_ts", "MAX(last_ts) AS last_ts"]
    windows: list[str] = []
    for value in spec.values:
        n, total, low, high = (q(value + s) for s in ("_n", "_sum", "_min", "_max"))
        first, last = q(value + "_first"), q(value + "_last")
        parts += [f"CAST(SUM({n}) AS BIGINT) AS {n}", f"SUM({total}) AS {total}"]
        parts += [f"MIN({low}) AS {low}", f"MAX({high}) AS {high}"]
        if pg:  # min/max of [time, value] pairs: plain (hashable) aggregates, no per-group sort
            parts.append(f"(MIN(ARRAY[first_ts::float8, {first}]))[2] AS {first}")
            parts.append(f"(MAX(ARRAY[last_ts::float8, {last}]))[2] AS {last}")
        else:  # every row of a bucket carries its first/last value; MAX picks it (NULL stays NULL)
            parts += [f"MAX({q(value + '_fw')}) AS {first}", f"MAX({q(value + '_lw')}) AS {last}"]
            windows.append(
                f"FIRST_VALUE({first}) OVER (PARTITION BY k, bucket ORDER BY first_ts) AS {q(value + '_fw')}"
            )
            windows.append(
                f"FIRST_VALUE({last}) OVER (PARTITION BY k, bucket ORDER BY last_ts DESC) AS {q(value + '_lw')}"
            )
    inner = f"SELECT p.*, {bucket} AS bucket FROM ({union}) AS p"
    if windows:
        inner = f"SELECT b.*, {', '.join(windows)} FROM ({inner}) AS b"
    return f"SELECT {', '.join(parts)} FROM ({inner}) AS w GROUP BY k, bucket"


def finals(spec: SeriesSpec, aggregates: dict[str, tuple[str, ...]], bucket: str = "bucket") -> list[str]:
    """SELECT list turning state columns into the asked aggregates (``power_w_avg``...)."""
    out = [f"k AS {q('key')}", f"{bucket} AS {q('bucket')}", f"n AS {q('count')}"]
    for value, names in aggregates.items():
        for agg in names:
            column = q(f"{value}_{'n' if agg == 'count' else agg}")
            if agg == "avg":
                n, total = q(value + "_n"), q(value + "_sum")
                column = f"CASE WHEN {n} > 0 THEN {total} / {n} END"
            out.append(f"{column} AS {q(f'{value}_{agg}')}")
    return out


def replace_set(spec: SeriesSpec) -> str:
    """``ON CONFLICT DO UPDATE SET`` overwriting a rollup row (a refresh recomputes it whole)."""
    return ", ".join(f"{q(c)} = excluded.{q(c)}" for c in state_columns(spec))


def merge_set(spec: SeriesSpec, table: str) -> str:
    """``ON CONFLICT DO UPDATE SET`` merging late readings' partials into a rollup row."""
    t = q(table)

    def pick(column: str, op: str, on: str | None = None) -> str:
        on = on or column
        old, new = f"{t}.{q(column)}", f"excluded.{q(column)}"
        return f"CASE WHEN {t}.{q(on)} IS NULL OR excluded.{q(on)} {op} {t}.{q(on)} THEN {new} ELSE {old} END"

    def add(column: str) -> str:
        old, new = f"{t}.{q(column)}", f"excluded.{q(column)}"
        return f"CASE WHEN {old} IS NULL THEN {new} WHEN {new} IS NULL THEN {old} ELSE {old} + {new} END"

    parts = [f"{q('n')} = {add('n')}", f"{q('first_ts')} = {pick('first_ts', '<')}"]
    parts.append(f"{q('last_ts')} = {pick('last_ts', '>')}")
    for value in spec.values:
        parts += [f"{q(value + '_n')} = {add(value + '_n')}", f"{q(value + '_sum')} = {add(value + '_sum')}"]
        parts += [f"{q(value + '_min')} = {pick(value + '_min', '<')}"]
        parts += [f"{q(value + '_max')} = {pick(value + '_max', '>')}"]
        parts += [f"{q(value + '_first')} = {pick(value + '_first', '<', 'first_ts')}"]
        parts += [f"{q(value + '_last')} = {pick(value + '_last', '>', 'last_ts')}"]
    return ", ".join(parts)


def grid_serves(level: Grid, wanted: Grid, edges: list[int] | None) -> bool:
    """Whether every bucket of ``level`` lies inside one bucket of ``wanted``."""
    if isinstance(wanted, FixedGrid):
        return isinstance(level, FixedGrid) and wanted.size % level.size == 0
    if isinstance(level, DayGrid):
        return level.tz == wanted.tz
    return edges is not None and level.divides(edges)
