"""Time grids in epoch milliseconds: durations, fixed buckets and time-zone days (pure functions)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from energy_common.exceptions import OutOfRangeError, ValidationError

__all__ = ["MAX_TS", "MIN_TS", "DayGrid", "FixedGrid", "Grid", "check_ts", "grid_for", "parse_duration"]

_UNITS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
_DURATION = re.compile(r"^([1-9][0-9]{0,5})([smhdw])$")
#: Readings are stored for years 1000..9000: every bucket and partition bound of them fits.
MIN_TS = int(datetime(1000, 1, 1, tzinfo=UTC).timestamp() * 1000)
MAX_TS = int(datetime(9000, 1, 1, tzinfo=UTC).timestamp() * 1000)
DAY = _UNITS["d"]


def parse_duration(text: str) -> int:
    """Return ``"15m"``, ``"1h"``, ``"1d"``, ``"90d"``... in milliseconds.

    Raises:
        ValidationError: Not a positive count followed by s, m, h, d or w.
    """
    found = _DURATION.match(text) if isinstance(text, str) else None
    if found is None:
        raise ValidationError(f"Invalid duration {str(text)[:32]!r}; use e.g. '15m', '1h', '1d' or '90d'.")
    return int(found.group(1)) * _UNITS[found.group(2)]


def check_ts(value: object, field: str) -> int:
    """Return ``value`` as epoch milliseconds within the stored range.

    Raises:
        ValidationError: Not an integer.
        OutOfRangeError: Before year 1000 or after year 9000.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(f"{field} must be epoch milliseconds (an integer).", {"field": field})
    if not MIN_TS <= value <= MAX_TS:
        raise OutOfRangeError(f"{field} is out of range: use a time between years 1000 and 9000.", {"field": field})
    return value


@dataclass(frozen=True, slots=True)
class FixedGrid:
    """Buckets of ``size`` ms aligned on the Unix epoch (UTC), like ``time_bucket``."""

    size: int

    def floor(self, ts: int) -> int:
        """Start of the bucket holding ``ts``."""
        return ts - ts % self.size

    def ceil(self, ts: int) -> int:
        """First bucket start at or after ``ts``."""
        return -((-ts) // self.size) * self.size

    def next(self, start: int) -> int:
        """Start of the bucket after the one starting at ``start``."""
        return start + self.size

    def divides(self, edges: list[int]) -> bool:
        """Whether every one of ``edges`` is a bucket start of this grid."""
        return all(edge % self.size == 0 for edge in edges)


@dataclass(frozen=True, slots=True)
class DayGrid:
    """Calendar days of a time zone (23, 24 or 25 hours long around DST changes)."""

    tz: str

    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def floor(self, ts: int) -> int:
        """Epoch ms of local midnight starting the day of ``ts``."""
        local = datetime.fromtimestamp(ts / 1000, UTC).astimezone(self._zone())
        midnight = datetime(local.year, local.month, local.day, tzinfo=self._zone())
        return int(midnight.timestamp() * 1000)

    def next(self, start: int) -> int:
        """Local midnight of the day after the one starting at ``start``."""
        local = datetime.fromtimestamp(start / 1000, UTC).astimezone(self._zone()).date() + timedelta(days=1)
        return int(datetime(local.year, local.month, local.day, tzinfo=self._zone()).timestamp() * 1000)

    def ceil(self, ts: int) -> int:
        """First local midnight at or after ``ts``."""
        start = self.floor(ts)
        return start if start == ts else self.next(start)

    def edges(self, lo: int, hi: int) -> list[int]:
        """Local midnights in ``[floor(lo), hi]``."""
        out = [self.floor(lo)]
        while out[-1] < hi:
            out.append(self.next(out[-1]))
        return out

    def divides(self, edges: list[int]) -> bool:
        """Whether every one of ``edges`` is a local midnight of this zone."""
        return all(self.floor(edge) == edge for edge in edges)


Grid = FixedGrid | DayGrid


def grid_for(bucket: str, tz: str = "UTC") -> Grid:
    """Return the grid of ``bucket`` (``"15m"``, ``"1h"``, ``"1d"``...) in time zone ``tz``.

    Day buckets follow ``tz``'s calendar days; shorter buckets are epoch-aligned (whole
    hours are the same instants in every zone with whole-hour offsets).

    Raises:
        ValidationError: Unknown zone, or a multi-day bucket outside UTC.
    """
    size = parse_duration(bucket)
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"Unknown time zone {tz[:64]!r}; use an IANA name such as 'Europe/Paris'.") from exc
    if size == DAY and tz != "UTC":
        return DayGrid(tz)
    if size > DAY and tz != "UTC" and size % DAY == 0:
        raise ValidationError("Buckets longer than a day are only available in UTC.", {"field": "bucket"})
    return FixedGrid(size)
