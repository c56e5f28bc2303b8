"""Ingest: COPY straight into the series when nothing is late or duplicated, a careful path otherwise.

The fast path is one transaction: lock the rollup watermarks ``FOR SHARE`` (so a refresh
cannot roll up a range this batch writes into before it commits), then ``COPY`` the
batch into the partitioned table. A batch holding a reading that is stored already
(a QoS 1 redelivery), one for a missing partition, or one older than a rollup's
watermark (late) takes the careful path: stage the rows, insert ``ON CONFLICT DO
NOTHING RETURNING`` and merge the partial aggregates of the *inserted* late rows into
the rollups in the same statement, so a redelivered reading is neither stored nor
counted twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from energy_common.database import translate_error
from energy_common.exceptions import ValidationError
from energy_common.timeseries._ddl import q
from energy_common.timeseries._grid import check_ts
from energy_common.timeseries._partitions import Partitions
from energy_common.timeseries._spec import SeriesSpec
from energy_common.timeseries._sql import Segment, combine_sql, merge_set, source_sql
from energy_common.timeseries._tx import write_transaction

__all__ = ["Ingestor", "Record"]

Record = tuple[Any, ...]
_DUPLICATE, _NO_PARTITION = "23505", "23514"


class _CarefulPathError(Exception):
    """The batch needs the careful path."""


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    for candidate in (exc, orig, getattr(orig, "__cause__", None), exc.__cause__):
        state = getattr(candidate, "sqlstate", None)
        if isinstance(state, str):
            return state
    return None


class Ingestor:
    """Writes batches of one series (see the module doc).

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
        s, cols = spec, ", ".join(q(c) for c in spec.columns)
        self._lock = text(
            f"SELECT {q('level')}, {q('watermark')} FROM {q(s.state_table)} ORDER BY 1"
            + (" FOR SHARE" if self._pg else "")
        )
        self._stage = f"{s.table}_stage"
        marks = ", ".join("?" for _ in spec.columns)
        self._insert = f"INSERT INTO {q(s.table)} ({cols}) VALUES ({marks})"
        self._cols = cols

    def records(self, rows: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]]) -> list[Record]:
        """Rows as tuples in the spec's column order (mappings are converted)."""
        if not rows:
            return []
        if isinstance(rows[0], Mapping):
            pick = itemgetter(*self._spec.columns)
            return [pick(row) for row in rows]
        return [tuple(row) for row in rows] if not isinstance(rows[0], tuple) else list(rows)  # type: ignore[arg-type]

    async def write(self, records: list[Record]) -> set[tuple[Any, Any]] | None:
        """Store ``records``; return the keys ``(key, time)`` stored, or None when all of them were."""
        try:
            await self._fast(records)
            return None
        except _CarefulPathError as why:
            missing = why.args == (_NO_PARTITION,)
        unique = list({(r[0], r[1]): r for r in reversed(records)}.values())
        while True:
            if missing and self._partitions is not None:
                await self._partitions.ensure(self._partitions.starts_for(r[1] for r in unique))
            try:
                async with write_transaction(self._engine) as conn:
                    watermarks = await self._watermarks(conn)
                    if self._pg:
                        return await self._careful_pg(conn, unique, watermarks)
                    return await self._careful_sqlite(conn, unique, watermarks)
            except Exception as exc:
                if _sqlstate(exc) == _NO_PARTITION and not missing:  # a late reading of a missing partition
                    missing = True
                    continue
                raise self._translate(exc) from exc

    def _translate(self, exc: Exception) -> Exception:
        state = _sqlstate(exc)
        if state is not None and state.startswith("22"):
            return ValidationError(
                f"A reading does not fit the {self._spec.table} columns (key too long or a wrong type); fix the batch.",
                {"sqlstate": state},
            )
        return translate_error(exc)

    async def _watermarks(self, conn: AsyncConnection) -> dict[str, int | None]:
        return {str(level): mark for level, mark in (await conn.execute(self._lock)).all()}

    async def _fast(self, records: list[Record]) -> None:
        times = list(map(itemgetter(1), records))
        try:
            first, last = min(times), max(times)
        except TypeError as exc:
            raise ValidationError(f"{self._spec.time} must be epoch milliseconds (integers).") from exc
        check_ts(first, self._spec.time)
        check_ts(last, self._spec.time)
        try:
            async with write_transaction(self._engine) as conn:
                marks = [m for m in (await self._watermarks(conn)).values() if m is not None]
                if marks and first < max(marks):
                    raise _CarefulPathError
                if self._pg:
                    raw = await conn.get_raw_connection()
                    driver: Any = raw.driver_connection
                    await driver.copy_records_to_table(
                        self._spec.table, records=records, columns=list(self._spec.columns)
                    )
                else:
                    await conn.exec_driver_sql(self._insert, records)
        except _CarefulPathError:
            raise
        except Exception as exc:
            state = _sqlstate(exc)
            if state in (_DUPLICATE, _NO_PARTITION) or (not self._pg and "UNIQUE" in str(exc)):
                raise _CarefulPathError(state) from exc
            raise self._translate(exc) from exc

    def _merges(self, relation: str, watermarks: dict[str, int | None]) -> list[tuple[str, dict[str, Any]]]:
        """Statements merging the late rows of ``relation`` into each rollup they belong to."""
        spec, out = self._spec, []
        for level in spec.levels:
            mark = watermarks.get(level.name)
            if mark is None:
                continue
            source = source_sql(spec, Segment(0, 0, None), f"{q(spec.time)} < :w_{level.name}", relation=relation)
            combined = combine_sql(spec, "postgresql" if self._pg else "sqlite", [source], level.grid)
            sql = (
                f"INSERT INTO {q(level.table)} SELECT * FROM ({combined}) AS c WHERE true "
                f"ON CONFLICT ({q(spec.key)}, {q('bucket')}) DO UPDATE SET {merge_set(spec, level.table)}"
            )
            out.append((sql, {f"w_{level.name}": mark, "tz": spec.timezone}))
        return out

    async def _careful_pg(
        self, conn: AsyncConnection, records: list[Record], watermarks: dict[str, int | None]
    ) -> set[tuple[Any, Any]]:
        stage = q(self._stage)
        await conn.exec_driver_sql(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {q(self._spec.table)}) ON COMMIT DELETE ROWS"
        )
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.copy_records_to_table(self._stage, records=records, columns=list(self._spec.columns))
        ctes = [f"ins AS (INSERT INTO {q(self._spec.table)} SELECT * FROM {stage} ON CONFLICT DO NOTHING RETURNING *)"]
        params: dict[str, Any] = {}
        for i, (sql, bound) in enumerate(self._merges("ins", watermarks)):
            ctes.append(f"m{i} AS ({sql} RETURNING 1)")
            params.update(bound)
        statement = f"WITH {', '.join(ctes)} SELECT {q(self._spec.key)}, {q(self._spec.time)} FROM ins"
        rows = (await conn.execute(text(statement), params)).all()
        return {(row[0], row[1]) for row in rows}

    async def _careful_sqlite(
        self, conn: AsyncConnection, records: list[Record], watermarks: dict[str, int | None]
    ) -> set[tuple[Any, Any]]:
        spec, stage = self._spec, q(self._stage)
        columns = ", ".join(f"{q(c)}" for c in spec.columns)
        await conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {stage} ({columns})")
        await conn.exec_driver_sql(f"DELETE FROM {stage}")
        marks = ", ".join("?" for _ in spec.columns)
        await conn.exec_driver_sql(f"INSERT INTO {stage} ({self._cols}) VALUES ({marks})", records)
        key, time = q(spec.key), q(spec.time)
        await conn.exec_driver_sql(
            f"DELETE FROM {stage} WHERE EXISTS (SELECT 1 FROM {q(spec.table)} AS r "
            f"WHERE r.{key} = {stage}.{key} AND r.{time} = {stage}.{time})"
        )
        await conn.exec_driver_sql(f"INSERT INTO {q(spec.table)} ({self._cols}) SELECT {self._cols} FROM {stage}")
        for sql, bound in self._merges(stage, watermarks):
            await conn.execute(text(sql), bound)
        rows: list[Any] = list((await conn.exec_driver_sql(f"SELECT {key}, {time} FROM {stage}")).all())
        await conn.exec_driver_sql(f"DELETE FROM {stage}")
        return {(row[0], row[1]) for row in rows}
