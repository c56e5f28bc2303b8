"""``Database``: one async engine and session factory per service, from a URL."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool

from energy_common.database._errors import (
    finish_cleanup,
    is_database_error,
    is_driver_error,
    translate_error,
    translating_errors_async,
)
from energy_common.database._models import Base
from energy_common.exceptions import ConfigurationError

__all__ = ["Database"]

logger = logging.getLogger("energy_common.database")

_SUPPORTED = {"postgresql+asyncpg", "sqlite+aiosqlite"}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers proceed during a write; busy_timeout waits instead of failing at once.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


class Database:
    """Owns the async engine and session factory of one database.

    PostgreSQL (``postgresql+asyncpg://``) gets ``pool_pre_ping``, bounded pool sizes,
    a connect timeout and a server-side ``idle_in_transaction_session_timeout`` as a
    safety net; SQLite (``sqlite+aiosqlite:///file.db``) gets WAL and foreign keys.

    Args:
        url: SQLAlchemy URL of the database.
        echo: Log every statement (development only: statements may hold personal data).
        pool_size: Connections kept open (PostgreSQL).
        max_overflow: Extra connections allowed under load (PostgreSQL).
        pool_timeout: Seconds to wait for a free connection before failing.
        pool_recycle: Seconds after which a pooled connection is replaced.
        connect_timeout: Seconds to wait for a new connection.
        idle_in_transaction_timeout: Seconds after which PostgreSQL ends a session left idle
            inside a transaction (``None`` keeps the server default).
        application_name: Shown in ``pg_stat_activity``.
        engine_options: Extra keyword arguments for ``create_async_engine``.

    Raises:
        ConfigurationError: The URL is malformed or names an unsupported driver.

    Example:
        >>> db = Database("sqlite+aiosqlite:///app.db")  # doctest: +SKIP
        >>> async with db.session() as session:  # doctest: +SKIP
        ...     user = await UserRepository(session, User).create(name="John")
    """

    def __init__(
        self,
        url: str | URL,
        *,
        echo: bool = False,
        pool_size: int = 10,
        max_overflow: int = 10,
        pool_timeout: float = 10.0,
        pool_recycle: float = 1800.0,
        connect_timeout: float = 10.0,
        idle_in_transaction_timeout: float | None = 60.0,
        application_name: str = "energy",
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        try:
            self.url: URL = make_url(url)
        except ArgumentError as exc:
            raise ConfigurationError(
                "The database URL is malformed; expected e.g. 'sqlite+aiosqlite:///app.db'."
            ) from exc
        driver = self.url.drivername
        if driver == "postgresql":
            self.url = self.url.set(drivername="postgresql+asyncpg")
        elif driver == "sqlite":
            self.url = self.url.set(drivername="sqlite+aiosqlite")
        if self.url.drivername not in _SUPPORTED:
            raise ConfigurationError(
                f"Unsupported database driver {driver!r}; use 'postgresql+asyncpg://' or 'sqlite+aiosqlite:///'."
            )
        options: dict[str, Any] = {"echo": echo}
        if self.is_postgres:
            server_settings = {"application_name": application_name}
            if idle_in_transaction_timeout is not None:
                server_settings["idle_in_transaction_session_timeout"] = str(int(idle_in_transaction_timeout * 1000))
            options.update(
                pool_pre_ping=True,
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_timeout=pool_timeout,
                pool_recycle=pool_recycle,
                connect_args={"timeout": connect_timeout, "server_settings": server_settings},
            )
        else:
            memory = self.url.database in (None, "", ":memory:")
            options["connect_args"] = {"timeout": connect_timeout}
            if memory:
                options["poolclass"] = StaticPool
        options.update(engine_options or {})
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        if not self.is_postgres:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.session_factory: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False, autoflush=False
        )

    @property
    def dialect(self) -> str:
        """Name of the SQL dialect: ``"postgresql"`` or ``"sqlite"``."""
        return self.url.get_backend_name()

    @property
    def is_postgres(self) -> bool:
        """Whether this is a PostgreSQL database."""
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """Open a session that commits on success and rolls back on any exception.

        The rollback and close run to their end even if the task is cancelled, so a
        cancelled request never leaks a connection or leaves it idle in transaction.

        Yields:
            An ``AsyncSession`` bound to this database.

        Raises:
            ConflictError: An integrity constraint or an optimistic lock failed.
            DatabaseConnectionError: The database could not be reached.
            DatabaseError: Any other database failure.
        """
        session = self.session_factory()
        try:
            try:
                yield session
                await session.commit()
            except BaseException as exc:
                await self._quietly(session.rollback(), "rollback", exc)
                # User code inside the block may raise OSError of its own: only SQLAlchemy and
                # driver errors are translated here (repository calls translate their own).
                if isinstance(exc, Exception) and is_driver_error(exc):
                    raise translate_error(exc) from exc
                raise
        finally:
            await self._quietly(session.close(), "close", None)

    @staticmethod
    async def _quietly(step: Awaitable[None], what: str, cause: BaseException | None) -> None:
        # A failed rollback/close (e.g. the server killed the connection) must not hide the
        # error that got us here; SQLAlchemy invalidates the connection so it is not reused.
        try:
            await finish_cleanup(step)
        except Exception as exc:
            if cause is None and not is_database_error(exc):
                raise
            logger.warning(
                "Session %s failed (%s); the connection was discarded.", what, type(exc).__name__, exc_info=False
            )

    async def session_dependency(self) -> AsyncIterator[AsyncSession]:
        """FastAPI dependency yielding a session (commit on success, rollback on error).

        Example:
            >>> @app.get("/users/{user_id}")  # doctest: +SKIP
            ... async def read(user_id: int, session: AsyncSession = Depends(db.session_dependency)): ...
        """
        async with self.session() as session:
            yield session

    async def create_all(self, metadata: MetaData | None = None) -> None:
        """Create the tables of ``metadata`` (default ``Base.metadata``) that do not exist yet.

        Meant for tests and the embedded SQLite default; services migrate with Alembic.
        """
        async with translating_errors_async(), self.engine.begin() as conn:
            await conn.run_sync((metadata or Base.metadata).create_all)

    async def drop_all(self, metadata: MetaData | None = None) -> None:
        """Drop the tables of ``metadata`` (default ``Base.metadata``)."""
        async with translating_errors_async(), self.engine.begin() as conn:
            await conn.run_sync((metadata or Base.metadata).drop_all)

    async def health_check(self) -> dict[str, Any]:
        """Run ``SELECT 1`` and report the dialect, latency and pool status.

        Raises:
            DatabaseConnectionError: The database could not be reached.
            DatabaseError: The probe failed otherwise.
        """
        started = time.perf_counter()
        async with translating_errors_async(), self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return {
            "dialect": self.dialect,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "pool": self.engine.pool.status(),
        }

    async def dispose(self) -> None:
        """Close every pooled connection; the engine opens new ones if used again."""
        await self.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.dispose()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"
