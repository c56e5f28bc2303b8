"""Reads for the store's hot queries: asyncpg's prepared statements on PostgreSQL, SQLAlchemy on SQLite.

A dashboard query returns tens of thousands of buckets; building a SQLAlchemy ``Row``
and a dict for each costs more than PostgreSQL spends reading the rollup. On PostgreSQL
the statement therefore goes straight to the session's asyncpg connection (SQLAlchemy's
public ``driver_connection``), whose statement cache prepares it once per connection,
and the asyncpg ``Record`` objects (read-only mappings) are returned as they are.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine

from energy_common.database import translating_errors_async
from energy_common.timeseries._ddl import q
from energy_common.timeseries._spec import SeriesSpec

__all__ = ["Reader", "to_positional"]

_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")
_MARKS_TTL = 2.0  # seconds; a stale watermark is still correct (it only reads more raw rows)


def to_positional(sql: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """Rewrite ``:name`` parameters as asyncpg's ``$1, $2...``; return the SQL and the arguments.

    Example:
        >>> to_positional("SELECT :a + :b + :a", {"a": 1, "b": 2})
        ('SELECT $1 + $2 + $1', [1, 2])
    """
    index: dict[str, int] = {}
    args: list[Any] = []

    def number(found: re.Match[str]) -> str:
        name = found.group(1)
        if name not in index:
            args.append(params[name])
            index[name] = len(args)
        return f"${index[name]}"

    return _NAMED.sub(number, sql), args


class Reader:
    """Runs read statements of one series and caches its watermarks briefly.

    Args:
        engine: The database engine.
        spec: The series.
    """

    def __init__(self, engine: AsyncEngine, spec: SeriesSpec) -> None:
        self._engine = engine
        self._pg = engine.dialect.name == "postgresql"
        self._marks_sql = f"SELECT {q('level')}, {q('watermark')} FROM {q(spec.state_table)}"
        self._marks: tuple[float, dict[str, int | None]] | None = None
        self.key_filter = f"{q(spec.key)} = ANY(:keys)" if self._pg else f"{q(spec.key)} IN :keys"

    async def fetch(self, sql: str, params: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
        """Run ``sql`` (``:name`` parameters; ``:keys`` a list) and return its rows as mappings."""
        async with translating_errors_async(), self._engine.connect() as conn:
            if self._pg:
                statement, args = to_positional(sql, params)
                raw = await conn.get_raw_connection()
                driver: Any = raw.driver_connection
                return cast("Sequence[Mapping[str, Any]]", await driver.fetch(statement, *args))
            clause = text(sql)
            if "keys" in params:
                clause = clause.bindparams(bindparam("keys", expanding=True))
            used = {name: value for name, value in params.items() if f":{name}" in sql}
            return cast("Sequence[Mapping[str, Any]]", (await conn.execute(clause, used)).mappings().all())

    async def watermarks(self, *, fresh: bool = False) -> dict[str, int | None]:
        """Each level's watermark, cached for a couple of seconds unless ``fresh``."""
        now = time.monotonic()
        if not fresh and self._marks is not None and now - self._marks[0] < _MARKS_TTL:
            return self._marks[1]
        rows = await self.fetch(self._marks_sql, {})
        marks = {str(row["level"]): row["watermark"] for row in rows}
        self._marks = (now, marks)
        return marks

    def forget_watermarks(self) -> None:
        """Drop the cached watermarks (after a refresh or a drop)."""
        self._marks = None
