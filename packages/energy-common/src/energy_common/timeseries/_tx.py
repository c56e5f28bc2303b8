"""Write transactions of the store: plain on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["write_transaction"]


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction that will write after reading (watermarks, then rows).

    SQLite's default deferred transaction takes the write lock only at the first write;
    if another connection committed since this one read, the upgrade fails at once with
    "database is locked" (the busy timeout does not apply). ``BEGIN IMMEDIATE`` takes the
    write lock first and waits for it under the busy timeout instead.
    """
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            yield conn
        return
    async with engine.connect() as conn:
        await conn.exec_driver_sql("BEGIN IMMEDIATE")  # the sqlite3 module then begins no other
        try:
            yield conn
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()
