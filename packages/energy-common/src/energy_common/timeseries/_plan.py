"""Query planning: which rollup answers which part of a range, and the raw rows for the rest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from energy_common.timeseries._grid import DayGrid, Grid
from energy_common.timeseries._spec import Level
from energy_common.timeseries._sql import Segment, grid_serves

__all__ = ["plan_segments", "usable_levels"]


def usable_levels(
    levels: Sequence[Level], watermarks: Mapping[str, int | None], wanted: Grid, lo: int, hi: int
) -> list[Level]:
    """Rollup levels, coarsest first, whose buckets fit ``wanted``'s and that hold data."""
    edges = wanted.edges(lo, hi) if isinstance(wanted, DayGrid) else None
    found = [
        level for level in levels if watermarks.get(level.name) is not None and grid_serves(level.grid, wanted, edges)
    ]
    return found[::-1]


def plan_segments(lo: int, hi: int, levels: Sequence[Level], watermarks: Mapping[str, int | None]) -> list[Segment]:
    """Cover ``[lo, hi)`` with the coarsest rollups that are complete there, raw rows elsewhere.

    A level ``L`` answers ``[ceil_L(lo), min(floor_L(hi), watermark_L))``: whole buckets
    it has rolled up. What is left at both ends goes to the next finer level, and
    finally to the raw rows (the tail since the last refresh, and partial buckets).

    Example:
        >>> from energy_common.timeseries._grid import FixedGrid
        >>> hour = Level("1h", FixedGrid(3_600_000), "r_1h")
        >>> [(s.lo, s.hi, s.table) for s in plan_segments(1_000, 10_800_000, [hour], {"1h": 7_200_000})]
        [(1000, 3600000, None), (3600000, 7200000, 'r_1h'), (7200000, 10800000, None)]
    """
    if lo >= hi:
        return []
    if not levels:
        return [Segment(lo, hi, None)]
    level, finer = levels[0], levels[1:]
    watermark = watermarks[level.name]
    assert watermark is not None  # noqa: S101 - usable_levels keeps levels with data only
    start = level.grid.ceil(lo)
    end = min(level.grid.floor(hi), watermark)
    if start >= end:
        return plan_segments(lo, hi, finer, watermarks)
    return [
        *plan_segments(lo, start, finer, watermarks),
        Segment(start, end, level.table),
        *plan_segments(end, hi, finer, watermarks),
    ]
