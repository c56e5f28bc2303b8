"""``SeriesSpec``: a series table declared once (names, partition size, rollups, retention)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from energy_common.exceptions import ValidationError
from energy_common.timeseries._grid import DAY, Grid, grid_for, parse_duration

__all__ = ["AGGREGATES", "Level", "SeriesSpec"]

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")
#: Aggregates a bucketed query can ask for, per value column.
AGGREGATES = ("avg", "count", "first", "last", "max", "min", "sum")


def _name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValidationError(f"{what} {str(value)[:64]!r} must be lower-case letters, digits and _ (at most 40).")
    return value


@dataclass(frozen=True, slots=True)
class Level:
    """One rollup level: its name (``"1h"``), grid and table."""

    name: str
    grid: Grid
    table: str


@dataclass(frozen=True)
class SeriesSpec:
    """What a series table holds and how the store keeps it.

    Time is epoch **milliseconds** (BIGINT): the meters' wire format, exact as a
    duplicate key, and bucketed with the same integer arithmetic on every engine.

    Args:
        table: Raw table name; rollups are ``<table>_1h``/``<table>_1d``, state ``<table>_state``.
        values: Value columns (double precision, nullable).
        key: Series key column (a string such as ``device_id``).
        time: Time column (epoch ms).
        key_length: Longest key accepted.
        partition: PostgreSQL partition size (``"1d"``, ``"7d"``...).
        premake: Partitions created ahead of the current time.
        rollups: Rollup levels, finest first (``"1h"``, ``"1d"``; each a multiple of the previous).
        timezone: Whose calendar days the daily rollup follows.
        lag: Readings newer than this stay raw-only until the next refresh (late data is
            merged into rollups when it arrives, so this only bounds the raw tail).
        raw_retention: Keep raw readings this long (None: forever).
        rollup_retention: Keep rollup rows this long (None: forever).

    Example:
        >>> spec = SeriesSpec("readings", ("power_w", "energy_kwh"), key="device_id", raw_retention="90d")
        >>> [level.table for level in spec.levels]
        ['readings_1h', 'readings_1d']
    """

    table: str
    values: tuple[str, ...]
    key: str = "device_id"
    time: str = "ts"
    key_length: int = 64
    partition: str = "1d"
    premake: int = 3
    rollups: tuple[str, ...] = ("1h", "1d")
    timezone: str = "UTC"
    lag: str = "1h"
    raw_retention: str | None = None
    rollup_retention: str | None = None
    levels: tuple[Level, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _name(self.table, "Table name")
        names = [_name(self.key, "Key column"), _name(self.time, "Time column")]
        values = tuple(self.values)
        if not values:
            raise ValidationError("A series needs at least one value column.")
        names += [_name(value, "Value column") for value in values]
        if len(set(names)) != len(names) or {"n", "bucket", "first_ts", "last_ts"} & set(names):
            raise ValidationError("Column names must be distinct and not n, bucket, first_ts or last_ts.")
        object.__setattr__(self, "values", values)
        if parse_duration(self.partition) % 3_600_000:
            raise ValidationError("The partition size must be whole hours ('1d', '7d', '12h').")
        for duration in (self.lag, self.raw_retention, self.rollup_retention):
            if duration is not None:
                parse_duration(duration)
        levels: list[Level] = []
        for name in self.rollups:
            grid = grid_for(name, self.timezone)
            size = parse_duration(name)
            if levels and size % parse_duration(levels[-1].name):
                raise ValidationError("Each rollup must be a multiple of the previous one, finest first.")
            if size > DAY:
                raise ValidationError("Rollups go up to one day; longer buckets are read from the daily rollup.")
            levels.append(Level(name, grid, f"{self.table}_{name}"))
        object.__setattr__(self, "levels", tuple(levels))

    @property
    def columns(self) -> tuple[str, ...]:
        """Raw columns in COPY order: key, time, values."""
        return (self.key, self.time, *self.values)

    @property
    def state_table(self) -> str:
        """Name of the table holding each rollup's watermark."""
        return f"{self.table}_state"

    @property
    def partition_ms(self) -> int:
        """Partition size in milliseconds."""
        return parse_duration(self.partition)

    def partition_name(self, start: int) -> str:
        """Name of the partition starting at ``start`` (epoch ms; ``m`` marks negatives)."""
        return f"{self.table}_p{'m' if start < 0 else ''}{abs(start)}"
