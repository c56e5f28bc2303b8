"""``TimeSeriesStore``: partitioned raw readings, rollups, bucketed queries and retention."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import event, text

from energy_common.database import Database, translating_errors_async
from energy_common.exceptions import ConfigurationError, OutOfRangeError, ValidationError
from energy_common.timeseries._ddl import drop_ddl, q, series_ddl
from energy_common.timeseries._grid import DayGrid, check_ts, grid_for
from energy_common.timeseries._ingest import Ingestor
from energy_common.timeseries._maintenance import Maintenance, RetentionReport, now_ms, segment_sources
from energy_common.timeseries._partitions import Partitions
from energy_common.timeseries._plan import plan_segments, usable_levels
from energy_common.timeseries._reader import Reader
from energy_common.timeseries._spec import AGGREGATES, SeriesSpec
from energy_common.timeseries._sql import combine_sql, finals

__all__ = ["RangePage", "TimeSeriesStore"]

RowT = TypeVar("RowT")
_MAX_KEYS = 1000
_MAX_CELLS = 2_000_000  # buckets x keys one aggregate query may return
_MAX_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class RangePage:
    """Raw readings of one series over a range.

    Attributes:
        items: Rows as dicts of the spec's columns, in the requested order.
        total: Rows in the whole range (only when asked with ``total=True``).
        next_before: With ``descending``, pass as ``before`` for the next page (None at the end).
    """

    items: list[dict[str, Any]]
    total: int | None
    next_before: int | None


def _sqlite_local_day(ms: int, tz: str) -> int:
    return DayGrid(tz).floor(int(ms))


def _sqlite_functions(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    if not record.info.get("energy_timeseries"):
        dbapi_connection.create_function("energy_local_day", 2, _sqlite_local_day, deterministic=True)
        record.info["energy_timeseries"] = True


class TimeSeriesStore:
    """One series on PostgreSQL (range partitions) or SQLite (one table), same API.

    Args:
        db: The database.
        spec: The series declaration.

    Example:
        >>> store = TimeSeriesStore(db, SeriesSpec("readings", ("power_w", "energy_kwh")))  # doctest: +SKIP
        >>> await store.create()  # doctest: +SKIP
        >>> new = await store.ingest([("m1", 1767225600000, 230.0, 12.5)])  # doctest: +SKIP
        >>> days = await store.aggregate(
        ...     ["m1"], start, end, bucket="1d", tz="Europe/Paris", aggregates={"energy_kwh": ("first", "last")}
        ... )  # doctest: +SKIP
    """

    def __init__(self, db: Database, spec: SeriesSpec) -> None:
        self.db = db
        self.spec = spec
        self._pg = db.is_postgres
        self.partitions = Partitions(db.engine, spec) if self._pg else None
        self._ingestor = Ingestor(db.engine, spec, self.partitions)
        self._maintenance = Maintenance(db.engine, spec, self.partitions)
        self._reader = Reader(db.engine, spec)
        if not self._pg and not event.contains(db.engine.sync_engine, "checkout", _sqlite_functions):
            event.listen(db.engine.sync_engine, "checkout", _sqlite_functions)
        self._columns = ", ".join(q(c) for c in spec.columns)

    # ------------------------------------------------------------------ schema

    def ddl(self) -> list[str]:
        """The statements :meth:`create` runs (for an Alembic migration: ``op.execute`` each)."""
        return series_ddl(self.spec, self.db.dialect)

    async def create(self, *, now: int | None = None) -> None:
        """Create the tables (idempotent) and, on PostgreSQL, the partitions around ``now``.

        Raises:
            ConfigurationError: On PostgreSQL, the raw table exists but is not partitioned.
        """
        async with translating_errors_async(), self.db.engine.begin() as conn:
            if self._pg:  # concurrent CREATE ... IF NOT EXISTS can still collide in the catalog
                await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:t))"), {"t": self.spec.table})
            for statement in self.ddl():
                await conn.exec_driver_sql(statement)
            if self._pg:
                kind = await conn.execute(
                    text("SELECT relkind::text FROM pg_class WHERE oid = to_regclass(:t)"), {"t": q(self.spec.table)}
                )
                if kind.scalar() != "p":
                    raise ConfigurationError(
                        f"Table {self.spec.table!r} exists but is not partitioned (made before the time-series "
                        "store); migrate it: rename it, create() the store, then INSERT ... SELECT the rows over."
                    )
        await self.ensure_partitions(now=now)

    async def drop(self) -> None:
        """Drop every table of the series (tests, teardown)."""
        async with translating_errors_async(), self.db.engine.begin() as conn:
            for statement in drop_ddl(self.spec):
                await conn.exec_driver_sql(statement)
        if self.partitions is not None:
            self.partitions = Partitions(self.db.engine, self.spec)
            self._ingestor = Ingestor(self.db.engine, self.spec, self.partitions)
            self._maintenance = Maintenance(self.db.engine, self.spec, self.partitions)
        self._reader.forget_watermarks()

    async def ensure_partitions(
        self, start: int | None = None, end: int | None = None, *, now: int | None = None
    ) -> int:
        """Create the partitions covering ``[start, end)`` (default: the current one and ``premake`` ahead).

        Returns:
            The number of partitions created (always 0 on SQLite).
        """
        if self.partitions is None:
            return 0
        moment = now if now is not None else now_ms()
        lo = check_ts(start if start is not None else moment, "start")
        hi = check_ts(end if end is not None else moment + (self.spec.premake + 1) * self.spec.partition_ms, "end")
        return await self.partitions.ensure(self.partitions.starts_between(lo, hi))

    # ------------------------------------------------------------------ writes

    async def ingest(self, rows: Sequence[RowT]) -> list[RowT]:
        """Store readings once each; return the rows that were new.

        Args:
            rows: Tuples in the spec's column order (``key, time, *values``) or mappings
                with those keys. Tuples are the fast path (no per-row conversion).

        Returns:
            ``rows`` itself when every reading was new, else the new ones (first
            occurrence of each ``(key, time)``) in their order.

        Raises:
            ValidationError: A time outside years 1000..9000, a key too long or a value of the wrong type.
            DatabaseError: The database failed (nothing of the batch is stored).
        """
        records = self._ingestor.records(rows)  # type: ignore[arg-type]
        if not records:
            return []
        stored = await self._ingestor.write(records)
        if stored is None:
            return list(rows)
        out: list[RowT] = []
        for row, record in zip(rows, records, strict=True):
            identity = (record[0], record[1])
            if identity in stored:
                stored.discard(identity)
                out.append(row)
        return out

    # ------------------------------------------------------------------ reads

    async def watermarks(self) -> dict[str, int | None]:
        """Each rollup level's watermark: buckets before it are rolled up (None: not yet)."""
        return await self._reader.watermarks(fresh=True)

    async def latest(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The newest reading of each series in ``keys`` (series without readings are left out)."""
        keys = self._keys(keys)
        key, time, raw = q(self.spec.key), q(self.spec.time), q(self.spec.table)
        if self._pg:
            sql = (
                f"SELECT r.* FROM unnest(CAST(:keys AS VARCHAR[])) AS x(k) CROSS JOIN LATERAL "
                f"(SELECT {self._columns} FROM {raw} WHERE {key} = x.k ORDER BY {time} DESC LIMIT 1) AS r"
            )
        else:
            sql = (
                f"SELECT {self._columns} FROM {raw} WHERE ({key}, {time}) IN "
                f"(SELECT {key}, MAX({time}) FROM {raw} WHERE {self._reader.key_filter} GROUP BY {key})"
            )
        rows = await self._reader.fetch(sql, {"keys": keys})
        return {row[self.spec.key]: dict(row) for row in rows}

    async def range(
        self,
        key: str,
        start: int,
        end: int,
        *,
        limit: int = 100,
        before: int | None = None,
        offset: int = 0,
        descending: bool = True,
        total: bool = False,
    ) -> RangePage:
        """Raw readings of one series with ``start <= time < end``.

        Keyset paging: pass the page's ``next_before`` as ``before``; each page is one
        index range scan of the partitions it touches. ``offset`` stays for old clients.

        Raises:
            ValidationError: Bad limit/offset, or ``start >= end``.
            OutOfRangeError: A time outside years 1000..9000 or an offset past int64.
        """
        lo, hi = self._span(start, end)
        if not isinstance(limit, int) or not 1 <= limit <= _MAX_LIMIT:
            raise ValidationError(f"limit must be between 1 and {_MAX_LIMIT}.", {"field": "limit"})
        if not isinstance(offset, int) or offset < 0:
            raise ValidationError("offset must be a non-negative integer.", {"field": "offset"})
        if offset >= 2**63:
            raise OutOfRangeError("offset is out of range: use a value below 2**63.", {"field": "offset"})
        params: dict[str, Any] = {"k": key, "lo": lo, "hi": hi, "limit": limit, "offset": offset}
        time = q(self.spec.time)
        where = f"{q(self.spec.key)} = :k AND {time} >= :lo AND {time} < :hi"
        if before is not None:
            params["before"] = check_ts(before, "before")
            where += f" AND {time} {'<' if descending else '>'} :before"
        counted = ", COUNT(*) OVER () AS _total" if total else ""
        sql = (
            f"SELECT {self._columns}{counted} FROM {q(self.spec.table)} WHERE {where} "
            f"ORDER BY {time} {'DESC' if descending else 'ASC'} LIMIT :limit OFFSET :offset"
        )
        rows = await self._reader.fetch(sql, params)
        count: int | None = None
        if total:
            if rows:
                count = int(rows[0]["_total"])
            else:
                counted_rows = await self._reader.fetch(
                    f"SELECT COUNT(*) AS n FROM {q(self.spec.table)} WHERE {where}", params
                )
                count = int(counted_rows[0]["n"])
        items = [{name: row[name] for name in self.spec.columns} for row in rows]
        after = items[-1][self.spec.time] if len(items) == limit else None
        return RangePage(items=items, total=count, next_before=after)

    async def aggregate(
        self,
        keys: Sequence[str],
        start: int,
        end: int,
        *,
        bucket: str = "1h",
        aggregates: Mapping[str, Sequence[str]],
        tz: str = "UTC",
    ) -> Sequence[Mapping[str, Any]]:
        """Bucketed aggregates of ``keys`` over ``[start, end)``, from rollups and the raw tail.

        The range is split by :func:`plan_segments`: whole buckets a rollup already holds
        come from it (the coarsest that fits), the rest (partial buckets at the ends and
        the readings since the last refresh) from the raw rows; all of it is combined in
        one statement, so the answer equals the one over raw rows alone.

        Args:
            keys: Series keys (at most 1000).
            start: Range start, epoch ms (inclusive).
            end: Range end, epoch ms (exclusive).
            bucket: ``"15m"``, ``"1h"``, ``"1d"``, ``"7d"``...
            aggregates: Value column → aggregates among ``avg count first last max min sum``.
            tz: Time zone of day buckets (calendar days, DST aware).

        Returns:
            One read-only mapping per series and non-empty bucket (asyncpg records on
            PostgreSQL: no per-row conversion), ordered by key then bucket:
            ``key``, ``bucket`` (start, epoch ms), ``count`` (readings) and
            ``<column>_<aggregate>`` for each one asked.

        Raises:
            ValidationError: Unknown column, aggregate, bucket or zone, too many keys/buckets.
            OutOfRangeError: A time outside years 1000..9000.
        """
        keys = self._keys(keys)
        lo, hi = self._span(start, end)
        grid = grid_for(bucket, tz)
        wanted = self._aggregates(aggregates)
        size = 86_400_000 if isinstance(grid, DayGrid) else grid.size
        if (hi - lo) // size * len(keys) > _MAX_CELLS:
            raise ValidationError("Too many buckets for one query; use a coarser bucket or a shorter range.")
        marks = await self._reader.watermarks()
        segments = plan_segments(lo, hi, usable_levels(self.spec.levels, marks, grid, lo, hi), marks)
        sources, params = segment_sources(self.spec, segments, f"{self._reader.key_filter} AND ")
        params.update(keys=keys, tz=tz)
        level = next((lv for lv in self.spec.levels if segments and lv.table == segments[0].table), None)
        if len(segments) == 1 and level is not None and level.grid == grid:
            sql = f"SELECT {', '.join(finals(self.spec, wanted, 't'))} FROM ({sources[0]}) AS c ORDER BY 1, 2"
        else:
            combined = combine_sql(self.spec, self.db.dialect, sources, grid)
            sql = f"SELECT {', '.join(finals(self.spec, wanted))} FROM ({combined}) AS c ORDER BY 1, 2"
        return await self._reader.fetch(sql, params)

    # ------------------------------------------------------------------ maintenance

    async def refresh(self, *, now: int | None = None) -> dict[str, int]:
        """Roll up complete buckets older than ``now - lag`` (see ``Maintenance.refresh``)."""
        try:
            return await self._maintenance.refresh(now)
        finally:
            self._reader.forget_watermarks()

    async def apply_retention(self, *, now: int | None = None, detach: bool = False) -> RetentionReport:
        """Drop raw data past ``raw_retention`` and rollups past ``rollup_retention`` (one replica at a time)."""
        return await self._maintenance.retention(now, detach=detach)

    async def maintain(self, *, now: int | None = None) -> RetentionReport:
        """The scheduled job: partitions ahead, rollup refresh, then retention."""
        await self.ensure_partitions(now=now)
        await self.refresh(now=now)
        return await self.apply_retention(now=now)

    # ------------------------------------------------------------------ checks

    def _keys(self, keys: Sequence[str]) -> list[str]:
        if isinstance(keys, str) or not keys or len(keys) > _MAX_KEYS:
            raise ValidationError(f"Give between 1 and {_MAX_KEYS} series keys as a list.", {"field": "keys"})
        out = list(keys)
        if not all(isinstance(k, str) and 0 < len(k) <= self.spec.key_length for k in out):
            raise ValidationError(
                f"Series keys are strings of 1..{self.spec.key_length} characters.", {"field": "keys"}
            )
        return out

    @staticmethod
    def _span(start: int, end: int) -> tuple[int, int]:
        lo, hi = check_ts(start, "start"), check_ts(end, "end")
        if lo >= hi:
            raise ValidationError("'start' must be before 'end'.", {"field": "start"})
        return lo, hi

    def _aggregates(self, aggregates: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        for column, names in aggregates.items():
            if column not in self.spec.values:
                raise ValidationError(
                    f"Unknown value column {str(column)[:64]!r}.", {"allowed": list(self.spec.values)}
                )
            picked = tuple(names)
            bad = [name for name in picked if name not in AGGREGATES]
            if bad or not picked:
                raise ValidationError(f"Unknown aggregate {str(bad[:1])[:64]}.", {"allowed": list(AGGREGATES)})
            out[column] = picked
        return out
