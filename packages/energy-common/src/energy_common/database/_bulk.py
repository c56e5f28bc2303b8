"""Bulk paths: Core ``executemany`` inserts, PostgreSQL ``COPY`` and ON CONFLICT upserts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

from sqlalchemy import Executable, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper

from energy_common.database._errors import translating_errors_async
from energy_common.database._models import utcnow
from energy_common.exceptions import ValidationError

__all__ = ["copy_rows", "insert_rows", "upsert_statement"]


def _column_map(mapper: Mapper[Any]) -> dict[str, str]:
    """Attribute name → table column name for the mapped columns."""
    return {prop.key: prop.columns[0].name for prop in mapper.column_attrs}


def _batches(rows: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def _check_keys(mapper: Mapper[Any], batch: list[Mapping[str, Any]], columns: dict[str, str]) -> list[Any]:
    keys = batch[0].keys()
    unknown = [name for name in keys if name not in columns]
    if unknown:
        raise ValidationError(
            f"Unknown field {unknown[0][:64]!r} for {mapper.class_.__name__}; use one of its columns.",
            {"field": unknown[0][:64]},
        )
    for row in batch:
        if row.keys() != keys:
            raise ValidationError("Every row of a bulk insert must have the same fields.", {"fields": sorted(keys)})
    if all(columns[name] == name for name in keys):
        return batch
    return [{columns[name]: value for name, value in row.items()} for row in batch]


def _insert_ignoring_conflicts(session: AsyncSession, table: Table, conflict: list[str] | None) -> Executable:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING <pk>``: the returned rows count what was stored."""
    dialect = session.get_bind().dialect.name
    stmt: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        stmt = postgresql.insert(table)
    elif dialect == "sqlite":
        stmt = sqlite.insert(table)
    else:  # pragma: no cover - only the two supported engines
        raise ValidationError(f"on_conflict='ignore' is not supported on {dialect}.")
    return stmt.on_conflict_do_nothing(index_elements=conflict).returning(*table.primary_key.columns)


async def insert_rows(
    session: AsyncSession,
    mapper: Mapper[Any],
    rows: Iterable[Mapping[str, Any]],
    *,
    batch_size: int,
    ignore_conflicts: bool = False,
    conflict_columns: Sequence[str] | None = None,
) -> int:
    """Insert ``rows`` with Core ``executemany`` in the session's transaction.

    With ``ignore_conflicts`` a row that violates a unique constraint (``conflict_columns``,
    or any when None) is skipped instead of failing the batch.

    Returns:
        The number of rows stored.
    """
    if batch_size < 1:
        raise ValidationError("batch_size must be >= 1.", {"field": "batch_size"})
    table = mapper.local_table
    assert isinstance(table, Table)  # noqa: S101 - declarative models map one Table
    columns = _column_map(mapper)
    statement: Executable = table.insert()
    if ignore_conflicts:
        conflict = None
        if conflict_columns is not None:
            unknown = [name for name in conflict_columns if name not in columns]
            if unknown:
                raise ValidationError(
                    f"Unknown conflict column {unknown[0][:64]!r} for {mapper.class_.__name__}.",
                    {"field": unknown[0][:64]},
                )
            conflict = [columns[name] for name in conflict_columns]
        statement = _insert_ignoring_conflicts(session, table, conflict)
    total = 0
    async with translating_errors_async():
        connection = await session.connection()
        for batch in _batches(rows, batch_size):
            params = _check_keys(mapper, batch, columns)
            result = await connection.execute(statement, params)
            total += len(result.all()) if ignore_conflicts else len(batch)
    return total


async def copy_rows(
    session: AsyncSession,
    mapper: Mapper[Any],
    rows: Iterable[Mapping[str, Any]] | Iterable[Sequence[Any]],
    *,
    columns: Sequence[str] | None,
) -> int:
    """Load rows with ``COPY ... FROM STDIN (BINARY)`` through the session's asyncpg connection.

    Runs inside the session's transaction, so a later rollback undoes it. Other dialects
    fall back to :func:`insert_rows`.
    """
    column_map = _column_map(mapper)
    records: list[Any] = rows if isinstance(rows, list) else list(rows)
    if not records:
        return 0
    if isinstance(records[0], Mapping):
        names = list(columns) if columns is not None else list(records[0].keys())
        if session.get_bind().dialect.name != "postgresql":
            return await insert_rows(session, mapper, records, batch_size=10_000)
        records = [tuple(row[name] for name in names) for row in records]
    elif columns is None:
        raise ValidationError("copy_many with sequences needs columns=[...] naming their order.", {"field": "columns"})
    else:
        names = list(columns)
        if session.get_bind().dialect.name != "postgresql":
            dict_rows = [dict(zip(names, row, strict=True)) for row in records]
            return await insert_rows(session, mapper, dict_rows, batch_size=10_000)
    unknown = [name for name in names if name not in column_map]
    if unknown:
        raise ValidationError(
            f"Unknown field {unknown[0][:64]!r} for {mapper.class_.__name__}.", {"field": unknown[0][:64]}
        )
    table = mapper.local_table
    assert isinstance(table, Table)  # noqa: S101 - declarative models map one Table
    async with translating_errors_async():
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None  # noqa: S101 - a checked-out connection has its driver connection
        if not driver.is_in_transaction():
            # The asyncpg adapter begins lazily; make COPY part of the session's transaction.
            await connection.exec_driver_sql("SELECT 1")
        await driver.copy_records_to_table(
            table.name, records=records, columns=[column_map[name] for name in names], schema_name=table.schema
        )
    return len(records)


def upsert_statement(
    session: AsyncSession,
    *,
    model: type[Any],
    mapper: Mapper[Any],
    data: Mapping[str, Any],
    conflict: list[str],
    update_columns: Sequence[str] | None,
    version_name: str | None,
) -> tuple[Executable, bool]:
    """Build the dialect's ``INSERT ... ON CONFLICT``; the flag says the row must be fetched after."""
    dialect = session.get_bind().dialect.name
    stmt: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        stmt = postgresql.insert(model).values(**data)
    elif dialect == "sqlite":
        stmt = sqlite.insert(model).values(**data)
    else:  # pragma: no cover - only the two supported engines
        raise ValidationError(f"upsert is not supported on {dialect}.")
    names = list(update_columns) if update_columns is not None else [n for n in data if n not in conflict]
    set_: dict[str, Any] = {}
    for name in names:
        if name not in mapper.columns:
            raise ValidationError(f"Unknown field {name[:64]!r} for {model.__name__}.", {"field": name[:64]})
        column = mapper.columns[name].name
        set_[column] = getattr(stmt.excluded, column)
    if not set_:
        return stmt.on_conflict_do_nothing(index_elements=conflict), True
    if "updated_at" in mapper.columns and mapper.columns["updated_at"].name not in set_:
        set_[mapper.columns["updated_at"].name] = utcnow()
    if version_name is not None:
        set_[mapper.columns[version_name].name] = getattr(model, version_name) + 1
    return stmt.on_conflict_do_update(index_elements=conflict, set_=set_).returning(model), False
