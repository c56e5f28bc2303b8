"""PostgreSQL partitions of a series: created ahead, on demand, listed and dropped."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from energy_common.database import translating_errors_async
from energy_common.timeseries._ddl import partition_ddl, q
from energy_common.timeseries._grid import FixedGrid, check_ts
from energy_common.timeseries._spec import SeriesSpec

__all__ = ["Partitions", "lock_key"]

_BOUNDS = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")
_MAX_NEW = 10_000  # partitions one call may create: a guard against a runaway range


def lock_key(spec: SeriesSpec, purpose: str) -> int:
    """A stable signed 64-bit advisory lock key for ``purpose`` on this series."""
    digest = hashlib.sha256(f"energy-timeseries:{spec.table}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Partitions:
    """Tracks and creates the partitions of one series (PostgreSQL only).

    Creation is serialised across replicas by an advisory transaction lock, and each
    partition is ``CREATE TABLE IF NOT EXISTS``, so two replicas never race.

    Args:
        engine: The database engine.
        spec: The series.
    """

    def __init__(self, engine: AsyncEngine, spec: SeriesSpec) -> None:
        self._engine = engine
        self._spec = spec
        self._grid = FixedGrid(spec.partition_ms)
        self._known: set[int] = set()

    def starts_for(self, timestamps: Iterable[int]) -> set[int]:
        """Partition starts holding ``timestamps`` (checked to lie within years 1000..9000)."""
        return {self._grid.floor(check_ts(ts, self._spec.time)) for ts in timestamps}

    def starts_between(self, lo: int, hi: int) -> set[int]:
        """Partition starts covering ``[lo, hi)``."""
        return set(range(self._grid.floor(lo), hi, self._spec.partition_ms))

    async def ensure(self, starts: Iterable[int]) -> int:
        """Create the partitions starting at ``starts`` that are missing; return how many were new."""
        wanted = sorted(set(starts) - self._known)
        if not wanted:
            return 0
        if len(wanted) > _MAX_NEW:
            wanted = wanted[:_MAX_NEW]
        async with translating_errors_async(), self._engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(self._spec, "ddl")})
            existing = await self._list(conn)
            created = 0
            for start in wanted:
                if start not in existing:
                    await conn.exec_driver_sql(partition_ddl(self._spec, start))
                    created += 1
        self._known.update(existing)
        self._known.update(wanted)
        return created

    async def bounds(self) -> dict[int, int]:
        """Return ``{start: end}`` of every partition (epoch ms)."""
        async with translating_errors_async(), self._engine.connect() as conn:
            return {start: end for start, (end, _) in (await self._list(conn)).items()}

    async def _list(self, conn: AsyncConnection) -> dict[int, tuple[int, str]]:
        rows = await conn.execute(
            text(
                "SELECT pg_get_expr(c.relpartbound, c.oid), c.relname FROM pg_inherits i "
                "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = CAST(:parent AS regclass)"
            ),
            {"parent": q(self._spec.table)},
        )
        bounds: dict[int, tuple[int, str]] = {}
        for expression, name in rows:
            found = _BOUNDS.search(str(expression))
            if found:
                bounds[int(found.group(1))] = (int(found.group(2)), str(name))
        return bounds

    async def drop_before(self, conn: AsyncConnection, cutoff: int, *, detach: bool) -> list[str]:
        """Drop (or only detach) the partitions ending at or before ``cutoff``, in ``conn``'s transaction."""
        dropped: list[str] = []
        for start, (end, name) in sorted((await self._list(conn)).items()):
            if end > cutoff:
                continue
            if detach:
                await conn.exec_driver_sql(f"ALTER TABLE {q(self._spec.table)} DETACH PARTITION {q(name)}")
            else:
                await conn.exec_driver_sql(f"DROP TABLE {q(name)}")
            self._known.discard(start)
            dropped.append(name)
        return dropped
