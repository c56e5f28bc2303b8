"""SQL command store (extra ``sql`` = ``energy-common[db]``): PostgreSQL for replicas, SQLite embedded.

One table, ``energy_commands`` (``COMMANDS_METADATA``; ``await store.create_table()`` for
tests and the embedded default, or migrate it with Alembic from the metadata): the
record as JSON plus the columns the queries need. ``(device_id, idempotency_key)`` is
unique, so two concurrent requests with one key insert once; on PostgreSQL a
transaction-scoped advisory lock per device makes the in-flight count and the insert
atomic across replicas (SQLite has one writer: the store serialises its own creates).

A write that finds the database busy (SQLite's lock held past ``busy_timeout``, a
PostgreSQL connection lost) is retried with backoff for up to ``retry_for`` seconds:
each attempt is its own transaction, rolled back when it fails, so a retry never
writes twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from energy_common._extras import missing_extra

try:
    from sqlalchemy import (
        Boolean,
        Column,
        Float,
        Index,
        Integer,
        MetaData,
        String,
        Table,
        Text,
        func,
        select,
        text,
        update,
    )
    from sqlalchemy.exc import IntegrityError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing_extra("energy-messaging", "sql", exc) from exc

from energy_common.database import Database
from energy_common.exceptions import ConflictError, DatabaseConnectionError, DatabaseError

from energy_messaging._errors import CommandStoreError
from energy_messaging.devices._commands import Command
from energy_messaging.devices._store import limit_error

__all__ = ["COMMANDS_METADATA", "SQLCommandStore"]

T = TypeVar("T")

#: The metadata holding the ``energy_commands`` table (kept apart from the service's own ``Base``).
COMMANDS_METADATA = MetaData()

commands_table = Table(
    "energy_commands",
    COMMANDS_METADATA,
    Column("command_id", String(64), primary_key=True),
    Column("device_id", String(255), nullable=False, index=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("state", String(16), nullable=False),
    Column("finished", Boolean, nullable=False, default=False, index=True),
    Column("version", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("record", Text, nullable=False),
    # NULL keys are distinct in a unique index on both engines: commands without a key never clash.
    Index("uq_energy_commands_idempotency", "device_id", "idempotency_key", unique=True),
)


class SQLCommandStore:
    """Command store in the service's database (``energy_common.database.Database``).

    Args:
        db: The database (PostgreSQL via asyncpg, or SQLite via aiosqlite).
        retry_for: Seconds a busy or unreachable database is retried before the call fails.

    Raises:
        CommandStoreError: From every method when the database fails.
    """

    def __init__(self, db: Database, *, retry_for: float = 15.0) -> None:
        self.db = db
        self.retry_for = retry_for
        self._sqlite_lock = asyncio.Lock()

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        while True:
            try:
                return await attempt()
            except DatabaseError as exc:
                if not _transient(exc) or time.monotonic() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def create_table(self) -> None:
        """Create ``energy_commands`` (and its indexes) if missing."""
        try:
            await self.db.create_all(COMMANDS_METADATA)
        except DatabaseError as exc:
            raise CommandStoreError(f"The command table could not be created: {exc}") from exc

    async def create(self, command: Command, *, max_in_flight: int | None = None) -> tuple[Command, bool]:
        """Store a new command (see :class:`~energy_messaging.devices.CommandStore`)."""
        try:
            if self.db.is_postgres:
                return await self._retrying(lambda: self._create(command, max_in_flight))
            async with self._sqlite_lock:
                return await self._retrying(lambda: self._create(command, max_in_flight))
        except DatabaseError as exc:
            raise CommandStoreError(f"The database failed while storing a command: {exc}") from exc

    async def _create(self, command: Command, max_in_flight: int | None) -> tuple[Command, bool]:
        command.version = 1
        try:
            async with self.db.session() as session:
                if self.db.is_postgres:
                    await session.execute(
                        text("SELECT pg_advisory_xact_lock(hashtext(:device))"), {"device": command.device_id}
                    )
                first = await self._first(session, command)
                if first is not None:
                    return first, False
                if max_in_flight is not None:
                    busy = await session.scalar(
                        select(func.count())
                        .select_from(commands_table)
                        .where(commands_table.c.device_id == command.device_id, ~commands_table.c.finished)
                    )
                    if int(busy or 0) >= max_in_flight:
                        raise limit_error(command.device_id, max_in_flight)
                now = time.time()
                await session.execute(
                    commands_table.insert().values(
                        command_id=command.command_id,
                        device_id=command.device_id,
                        idempotency_key=command.idempotency_key,
                        state=command.state,
                        finished=command.done,
                        version=1,
                        created_at=now,
                        updated_at=now,
                        record=json.dumps(command.to_dict()),
                    )
                )
        except (ConflictError, IntegrityError):
            # Another request with the same key committed first (no advisory lock on SQLite).
            async with self.db.session() as session:
                first = await self._first(session, command)
            if first is None:
                raise
            return first, False
        return command, True

    @staticmethod
    async def _first(session: Any, command: Command) -> Command | None:
        if command.idempotency_key is None:
            return None
        raw = await session.scalar(
            select(commands_table.c.record).where(
                commands_table.c.device_id == command.device_id,
                commands_table.c.idempotency_key == command.idempotency_key,
            )
        )
        return None if raw is None else Command.from_dict(json.loads(raw))

    async def get(self, command_id: str) -> Command | None:
        """Return the command or None."""

        async def read() -> Any:
            async with self.db.session() as session:
                return await session.scalar(
                    select(commands_table.c.record).where(commands_table.c.command_id == command_id)
                )

        try:
            raw = await self._retrying(read)
        except DatabaseError as exc:
            raise CommandStoreError(f"The database failed while reading a command: {exc}") from exc
        return None if raw is None else Command.from_dict(json.loads(raw))

    async def replace(self, command: Command, expected_version: int) -> bool:
        """Compare-and-set on the version (``UPDATE ... WHERE version = :expected``)."""
        record = Command.from_dict(command.to_dict())
        record.version = expected_version + 1
        statement = (
            update(commands_table)
            .where(commands_table.c.command_id == command.command_id, commands_table.c.version == expected_version)
            .values(
                state=record.state,
                finished=record.done,
                version=record.version,
                updated_at=time.time(),
                record=json.dumps(record.to_dict()),
            )
        )

        async def write() -> Any:
            async with self.db.session() as session:
                return await session.execute(statement)

        try:
            result = await self._retrying(write)
        except DatabaseError as exc:
            raise CommandStoreError(f"The database failed while updating a command: {exc}") from exc
        applied = bool(getattr(result, "rowcount", 0))
        if applied:
            command.version = record.version
        return applied

    async def open_commands(self, device_id: str | None = None) -> list[Command]:
        """Return unfinished commands (of one device, or all), oldest first."""
        query = select(commands_table.c.record).where(~commands_table.c.finished)
        if device_id is not None:
            query = query.where(commands_table.c.device_id == device_id)

        async def read() -> Any:
            async with self.db.session() as session:
                return (await session.scalars(query.order_by(commands_table.c.created_at))).all()

        try:
            rows = await self._retrying(read)
        except DatabaseError as exc:
            raise CommandStoreError(f"The database failed while listing commands: {exc}") from exc
        return [Command.from_dict(json.loads(raw)) for raw in rows]


def _transient(exc: DatabaseError) -> bool:
    """A busy SQLite database or a lost connection: worth another attempt."""
    if isinstance(exc, DatabaseConnectionError):
        return True
    cause = exc.__cause__
    return cause is not None and "locked" in str(cause).lower()
