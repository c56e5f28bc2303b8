"""Storage: readings in the time-series store (batches, pages, daily summary, series) and users."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from energy_common.database import BaseRepository, CursorCodec
from energy_common.exceptions import EnergyError
from energy_common.timeseries import SeriesSpec, TimeSeriesStore

from meter_service._models import User
from meter_service._schemas import DaySummary, SeriesPoint

__all__ = ["READINGS", "READING_COLUMNS", "ReadingStore", "UserRepository"]

logger = logging.getLogger("meter_service.readings")

#: Column order of the rows the ingestion hands to :meth:`ReadingStore.store_batch`.
READING_COLUMNS = ("device_id", "ts", "power_w", "voltage_v", "energy_kwh")
#: The readings series: daily partitions, hourly and daily rollups (UTC days).
READINGS = SeriesSpec("readings", ("power_w", "voltage_v", "energy_kwh"), key="device_id", time="ts")
RowT = TypeVar("RowT", bound=Mapping[str, Any])
_POWER = ("avg", "max", "min")
_ENERGY = ("min", "max")


class ReadingStore:
    """The meter readings: one :class:`TimeSeriesStore` and the service's queries on it.

    Args:
        db: The database.
        cursor_key: Secret (>= 32 bytes) signing the readings cursors; the same on every replica.
        maintenance_interval: Seconds between two maintenance runs (partitions ahead,
            rollup refresh, retention); None runs none (tests drive it).
        spec: The series (default :data:`READINGS`).
    """

    def __init__(
        self,
        db: Any,
        cursor_key: str | bytes,
        *,
        maintenance_interval: float | None = 60.0,
        spec: SeriesSpec = READINGS,
    ) -> None:
        self.series = TimeSeriesStore(db, spec)
        self._cursors = CursorCodec(cursor_key)
        self._interval = maintenance_interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Create the tables and partitions, then start the maintenance task."""
        await self.series.create()
        if self._interval is not None and self._task is None:
            self._task = asyncio.create_task(self._maintain(self._interval), name="meter-readings-maintenance")

    async def aclose(self) -> None:
        """Stop the maintenance task."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _maintain(self, interval: float) -> None:
        while True:
            try:
                await self.series.maintain()
            except EnergyError as exc:  # a database outage: try again next round
                logger.warning("readings maintenance failed: %s", exc.message)
            await asyncio.sleep(interval)

    async def store_batch(self, rows: Sequence[RowT]) -> list[RowT]:
        """Store a batch once per ``(device_id, ts)``; return the readings that were new."""
        return await self.series.ingest(rows)

    async def page(
        self, device_id: str, start_ms: int, end_ms: int, *, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A keyset page, newest first, and the cursor of the next one (None at the end).

        Raises:
            ValidationError: The cursor was forged, altered or made for another meter or range.
        """
        query = f"readings|{device_id}|{start_ms}|{end_ms}"
        before = self._cursors.decode(cursor, query)[0] if cursor else None
        found = await self.series.range(device_id, start_ms, end_ms, limit=limit, before=before)
        following = None if found.next_before is None else self._cursors.encode([found.next_before], query)
        return found.items, following

    async def page_by_number(
        self, device_id: str, start_ms: int, end_ms: int, *, page: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """An offset page, newest first, with the range's total (same statement)."""
        found = await self.series.range(device_id, start_ms, end_ms, limit=limit, offset=(page - 1) * limit, total=True)
        return found.items, found.total or 0

    async def daily_summary(self, device_id: str, start_ms: int, end_ms: int) -> list[DaySummary]:
        """kWh (last minus first cumulative reading), peak and mean power per UTC day, from the daily rollup."""
        days = await self.series.aggregate(
            [device_id], start_ms, end_ms, bucket="1d", aggregates={"power_w": ("max", "avg"), "energy_kwh": _ENERGY}
        )
        return [
            DaySummary(
                day=datetime.fromtimestamp(row["bucket"] / 1000, UTC).date(),
                readings=int(row["count"]),
                peak_w=float(row["power_w_max"]),
                avg_w=round(float(row["power_w_avg"]), 3),
                kwh=round(float(row["energy_kwh_max"] or 0.0) - float(row["energy_kwh_min"] or 0.0), 6),
            )
            for row in days
        ]

    async def series_points(
        self, device_id: str, start_ms: int, end_ms: int, *, bucket: str, tz: str
    ) -> list[SeriesPoint]:
        """Power (mean, min, max) and energy per bucket of one meter, for a dashboard."""
        rows = await self.series.aggregate(
            [device_id], start_ms, end_ms, bucket=bucket, tz=tz, aggregates={"power_w": _POWER, "energy_kwh": _ENERGY}
        )
        return [
            SeriesPoint(
                start=datetime.fromtimestamp(row["bucket"] / 1000, UTC),
                readings=int(row["count"]),
                avg_w=None if row["power_w_avg"] is None else round(float(row["power_w_avg"]), 3),
                min_w=row["power_w_min"],
                max_w=row["power_w_max"],
                kwh=None
                if row["energy_kwh_max"] is None
                else round(float(row["energy_kwh_max"]) - float(row["energy_kwh_min"]), 6),
            )
            for row in rows
        ]


class UserRepository(BaseRepository[User]):
    """API users."""

    def __init__(self, session: Any) -> None:
        super().__init__(session, User)

    async def by_username(self, username: str) -> User | None:
        """Return the user or None."""
        return await self.find_one_by(username=username)

    async def ensure(
        self, username: str, password_hash: str, *, roles: list[str], permissions: list[str], reset: bool
    ) -> bool:
        """Create the user (or, with ``reset``, set its password); return whether it was written.

        One ``INSERT ... ON CONFLICT`` statement, so replicas starting together do not race.
        """
        if not reset and await self.exists(username=username):
            return False
        await self.upsert(
            conflict_columns=["username"],
            update_columns=["password_hash", "roles", "permissions"] if reset else [],
            username=username,
            password_hash=password_hash,
            roles=roles,
            permissions=permissions,
        )
        return True
