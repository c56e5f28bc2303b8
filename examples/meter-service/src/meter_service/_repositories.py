"""Repositories: readings (batch store with exactly-once, time ranges, daily summary) and users."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from energy_common.database import BaseRepository, Page, translating_errors_async
from energy_common.exceptions import ConflictError
from sqlalchemy import bindparam, func, select, tuple_

from meter_service._models import Reading, User
from meter_service._schemas import DaySummary

__all__ = ["READING_COLUMNS", "ReadingRepository", "UserRepository"]

#: Column order of the rows the ingestion hands to :meth:`ReadingRepository.store_batch`.
READING_COLUMNS = ("device_id", "ts", "power_w", "voltage_v", "energy_kwh")
_DAY_MS = 86_400_000
RowT = TypeVar("RowT", bound=Mapping[str, Any])
_KEYS_PER_QUERY = 500  # (device_id, ts) pairs per IN list: 1,000 bound parameters

# The readings endpoint's statements, built once: Core columns (no ORM loading) and bound
# parameters, so a request only binds values. ``count(*) OVER ()`` gives the range's total
# with the page itself, in the same round trip.
_TABLE = Reading.__table__
_IN_RANGE = (
    _TABLE.c.device_id == bindparam("device_id"),
    _TABLE.c.ts >= bindparam("start_ms"),
    _TABLE.c.ts < bindparam("end_ms"),
)
_PAGE = (
    select(*(_TABLE.c[name] for name in READING_COLUMNS), func.count().over().label("total"))
    .where(*_IN_RANGE)
    .order_by(_TABLE.c.ts.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
_COUNT = select(func.count()).select_from(_TABLE).where(*_IN_RANGE)


class ReadingRepository(BaseRepository[Reading]):
    """Readings of meters; one instance per session.

    Example:
        >>> async def store(db: Database, rows: list[dict[str, Any]]) -> int:  # doctest: +SKIP
        ...     async with db.session() as session:
        ...         return await ReadingRepository(session).bulk_load(rows, copy=db.is_postgres)
    """

    max_page_size = 1000

    def __init__(self, session: Any) -> None:
        super().__init__(session, Reading)

    async def bulk_load(self, rows: Sequence[Mapping[str, Any]], *, copy: bool) -> int:
        """Store a batch in one statement: PostgreSQL ``COPY`` or ``create_many``.

        Raises:
            ConflictError: A reading of the batch is stored already (nothing of it is kept
                once the session rolls back); store it with :meth:`insert_new` instead.
        """
        if copy:
            return await self.copy_many(list(rows), columns=list(READING_COLUMNS))
        return await self.create_many(rows, batch_size=max(len(rows), 1))

    async def insert_new(self, rows: Sequence[RowT]) -> list[RowT]:
        """Store the readings that are not stored yet and return exactly those.

        Reads which keys are stored, then writes the others with
        ``create_many(on_conflict="ignore")``. If that skips any (another replica stored
        them in between), the caller's transaction must not commit: the rows written
        would not be the ones returned.

        Raises:
            ConflictError: Another writer stored some of these readings meanwhile; roll
                back and call again.
        """
        stored = await self._stored_keys(rows)
        new = [row for row in rows if (row["device_id"], row["ts"]) not in stored]
        if not new:
            return []
        written = await self.create_many(
            new, batch_size=len(new), on_conflict="ignore", conflict_columns=["device_id", "ts"]
        )
        if written != len(new):
            raise ConflictError(
                f"{len(new) - written} of {len(new)} readings were stored by another writer meanwhile; retry the batch.",
                {"skipped": len(new) - written},
            )
        return new

    async def _stored_keys(self, rows: Sequence[Mapping[str, Any]]) -> set[tuple[str, int]]:
        keys = list({(row["device_id"], row["ts"]) for row in rows})
        found: set[tuple[str, int]] = set()
        async with translating_errors_async():
            for start in range(0, len(keys), _KEYS_PER_QUERY):
                chunk = keys[start : start + _KEYS_PER_QUERY]
                stmt = select(Reading.device_id, Reading.ts).where(tuple_(Reading.device_id, Reading.ts).in_(chunk))
                found.update((row[0], row[1]) for row in (await self.session.execute(stmt)).all())
        return found

    async def in_range(
        self, device_id: str, start_ms: int, end_ms: int, *, page: int, limit: int
    ) -> Page[dict[str, Any]]:
        """Readings of one meter with ``start_ms <= ts < end_ms``, newest first.

        This is the API's hot path: one statement returns the page and the range's total
        (``count(*) OVER ()``); only a page past the end (no rows) needs a ``COUNT``. The
        items are plain dicts of :data:`READING_COLUMNS` (the shape of ``ReadingOut``):
        our own columns, so neither ORM objects nor pydantic models are built per row.
        """
        self._check_limit(limit)
        params = {"device_id": device_id, "start_ms": start_ms, "end_ms": end_ms}
        async with translating_errors_async():
            rows = (await self.session.execute(_PAGE, {**params, "limit": limit, "offset": (page - 1) * limit})).all()
            if rows:
                total = int(rows[0].total)
            elif page == 1:
                total = 0
            else:
                total = int((await self.session.execute(_COUNT, params)).scalar_one())
        items = [dict(zip(READING_COLUMNS, row, strict=False)) for row in rows]  # the last column is the total
        return Page(items=items, total=total, page=page, limit=limit)

    async def daily_summary(self, device_id: str, start_ms: int, end_ms: int) -> list[DaySummary]:
        """kWh (last minus first cumulative reading), peak and mean power per UTC day."""
        day_col = (Reading.ts // _DAY_MS).label("day")  # integer division on both engines
        stmt = (
            select(
                day_col,
                func.count(),
                func.max(Reading.power_w),
                func.avg(Reading.power_w),
                func.min(Reading.energy_kwh),
                func.max(Reading.energy_kwh),
            )
            .where(Reading.device_id == device_id, Reading.ts >= start_ms, Reading.ts < end_ms)
            .group_by(day_col)
            .order_by(day_col)
        )
        async with translating_errors_async():
            rows = (await self.session.execute(stmt)).all()
        return [
            DaySummary(
                day=_day(int(row[0])),
                readings=int(row[1]),
                peak_w=float(row[2]),
                avg_w=round(float(row[3]), 3),
                kwh=round(float(row[5] or 0.0) - float(row[4] or 0.0), 6),
            )
            for row in rows
        ]


def _day(index: int) -> date:
    return datetime.fromtimestamp(index * _DAY_MS / 1000, UTC).date()


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
