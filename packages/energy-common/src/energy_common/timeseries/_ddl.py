"""DDL of a series: raw table (range-partitioned on PostgreSQL), rollups, state, helper function.

Pure functions returning SQL strings, so an Alembic migration can run exactly what
``TimeSeriesStore.create()`` runs::

    def upgrade() -> None:
        for statement in series_ddl(READINGS, "postgresql"):
            op.execute(statement)
"""

from __future__ import annotations

from energy_common.timeseries._spec import SeriesSpec

__all__ = ["drop_ddl", "partition_ddl", "q", "series_ddl", "state_columns"]

_LOCAL_DAY = """CREATE OR REPLACE FUNCTION energy_local_day(ms BIGINT, tz TEXT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT (extract(epoch FROM (date_trunc('day', to_timestamp(ms / 1000.0) AT TIME ZONE tz) AT TIME ZONE tz))
          * 1000)::BIGINT
$$"""


def q(name: str) -> str:
    """Quote an identifier (names are validated by ``SeriesSpec``; quoting spares reserved words)."""
    return f'"{name}"'


def state_columns(spec: SeriesSpec) -> list[str]:
    """Columns of a rollup row after key and bucket: the mergeable aggregate state."""
    columns = ["n", "first_ts", "last_ts"]
    for value in spec.values:
        columns += [f"{value}_n", f"{value}_sum", f"{value}_min", f"{value}_max", f"{value}_first", f"{value}_last"]
    return columns


def series_ddl(spec: SeriesSpec, dialect: str) -> list[str]:
    """Return the ``CREATE ... IF NOT EXISTS`` statements of a series on ``dialect``.

    Args:
        spec: The series.
        dialect: ``"postgresql"`` or ``"sqlite"``.

    Returns:
        Statements to run in order (idempotent). Partitions are not included: see
        :func:`partition_ddl` and ``TimeSeriesStore.ensure_partitions``.
    """
    pg = dialect == "postgresql"
    real = "DOUBLE PRECISION" if pg else "REAL"
    # Series keys are identifiers: byte order ("C") compares and sorts them several times
    # faster than a locale collation, in the primary keys and in every ORDER BY key.
    collate = ' COLLATE "C"' if pg else ""
    key = f"{q(spec.key)} VARCHAR({spec.key_length}){collate} NOT NULL"
    values = ", ".join(f"{q(value)} {real}" for value in spec.values)
    raw = (
        f"CREATE TABLE IF NOT EXISTS {q(spec.table)} ({key}, {q(spec.time)} BIGINT NOT NULL, {values}, "
        f"CONSTRAINT {q('pk_' + spec.table)} PRIMARY KEY ({q(spec.key)}, {q(spec.time)}))"
    )
    raw += f" PARTITION BY RANGE ({q(spec.time)})" if pg else " WITHOUT ROWID"
    statements = [raw]
    for level in spec.levels:
        state = []
        for column in state_columns(spec):
            kind = "BIGINT NOT NULL" if column in ("n", "first_ts", "last_ts") or column.endswith("_n") else real
            state.append(f"{q(column)} {kind}")
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {q(level.table)} ({key}, {q('bucket')} BIGINT NOT NULL, {', '.join(state)}, "
            f"CONSTRAINT {q('pk_' + level.table)} PRIMARY KEY ({q(spec.key)}, {q('bucket')}))"
            + ("" if pg else " WITHOUT ROWID")
        )
    statements.append(
        f"CREATE TABLE IF NOT EXISTS {q(spec.state_table)} "
        f"({q('level')} VARCHAR(8) NOT NULL PRIMARY KEY, {q('watermark')} BIGINT)"
    )
    statements += [
        f"INSERT INTO {q(spec.state_table)} ({q('level')}, {q('watermark')}) VALUES ('{level.name}', NULL) "
        "ON CONFLICT DO NOTHING"
        for level in spec.levels
    ]
    if pg:
        statements.append(_LOCAL_DAY)
    return statements


def partition_ddl(spec: SeriesSpec, start: int) -> str:
    """``CREATE TABLE IF NOT EXISTS`` of the PostgreSQL partition starting at ``start`` (epoch ms).

    The primary key (a B-tree on key and time) is created on the partition with it.
    """
    end = start + spec.partition_ms
    return (
        f"CREATE TABLE IF NOT EXISTS {q(spec.partition_name(start))} PARTITION OF {q(spec.table)} "
        f"FOR VALUES FROM ({start}) TO ({end})"
    )


def drop_ddl(spec: SeriesSpec) -> list[str]:
    """Statements dropping every table of the series (the downgrade of :func:`series_ddl`)."""
    tables = [spec.state_table, *(level.table for level in spec.levels), spec.table]
    return [f"DROP TABLE IF EXISTS {q(table)}" for table in tables]
