"""Database on real SQLite and PostgreSQL: engine setup, sessions, cancellation, failures, health."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import energy_common.database as database_pkg
import pytest
from energy_common.database import Base, BaseRepository, Database, IdMixin, translate_error
from energy_common.exceptions import (
    ConfigurationError,
    DatabaseConnectionError,
    DatabaseError,
    EnergyError,
)
from sqlalchemy import String, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Base(DeclarativeBase):
    pass


class DbNote(IdMixin, _Base):
    __tablename__ = "db_notes"

    body: Mapped[str] = mapped_column(String(100))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a SQLite file or of the session's PostgreSQL test database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'db.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A Database on each engine with the note table created and dropped afterwards."""
    async with Database(db_url, pool_size=3, max_overflow=2, pool_timeout=5) as database:
        await database.drop_all(_Base.metadata)
        await database.create_all(_Base.metadata)
        try:
            yield database
        finally:
            await database.drop_all(_Base.metadata)


def test_public_api_is_pinned() -> None:
    """The package's public names stay stable."""
    assert database_pkg.__all__ == [
        "DESTINATIONS",
        "NAMING_CONVENTION",
        "OPERATORS",
        "Base",
        "BaseRepository",
        "CursorCodec",
        "CursorPage",
        "Database",
        "IdMixin",
        "Outbox",
        "OutboxMessage",
        "Page",
        "TimestampMixin",
        "UTCDateTime",
        "VersionMixin",
        "key_hash",
        "translate_error",
        "translating_errors",
        "translating_errors_async",
        "utcnow",
    ]
    assert Base.metadata.naming_convention["pk"] == "pk_%(table_name)s"


@pytest.mark.parametrize(
    "url",
    ["mysql+aiomysql://u@h/db", "not a url", "postgresql+psycopg2://u@h/db"],
)
def test_unsupported_urls_are_configuration_errors(url: str) -> None:
    """Malformed URLs and unsupported drivers are refused with ConfigurationError."""
    with pytest.raises(ConfigurationError):
        Database(url)


async def test_plain_scheme_gets_async_driver(tmp_path: Path) -> None:
    """'sqlite:///' is upgraded to aiosqlite (and 'postgresql://' to asyncpg)."""
    async with Database(f"sqlite:///{tmp_path / 'plain.db'}") as db:
        assert db.url.drivername == "sqlite+aiosqlite"
        assert db.dialect == "sqlite"
        assert "plain.db" in repr(db)
    assert Database("postgresql://u:secret@h/db").url.drivername == "postgresql+asyncpg"
    assert "secret" not in repr(Database("postgresql://u:secret@h/db"))


async def test_in_memory_sqlite_keeps_one_database() -> None:
    """An in-memory SQLite URL shares one connection, so tables outlive a session."""
    async with Database("sqlite+aiosqlite:///:memory:") as db:
        await db.create_all(_Base.metadata)
        async with db.session() as session:
            await BaseRepository(session, DbNote).create(body="in memory")
        async with db.session() as session:
            assert await BaseRepository(session, DbNote).count() == 1


async def test_sqlite_gets_wal_and_foreign_keys(tmp_path: Path) -> None:
    """SQLite connections run in WAL mode with foreign keys enforced."""
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'wal.db'}") as db, db.session() as session:
        assert (await session.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
        assert (await session.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1


async def test_postgres_pool_settings(postgres_url: str) -> None:
    """PostgreSQL engines pre-ping, bound their pool and set idle-in-transaction timeout."""
    async with Database(postgres_url, pool_size=4, max_overflow=3, idle_in_transaction_timeout=30) as db:
        pool = db.engine.pool
        assert pool._pre_ping  # type: ignore[attr-defined]
        assert pool.size() == 4  # type: ignore[attr-defined]
        async with db.session() as session:
            value = (await session.execute(text("SHOW idle_in_transaction_session_timeout"))).scalar_one()
        assert value == "30s"


async def test_session_commits_and_rolls_back(db: Database) -> None:
    """session() commits on success and rolls back on an exception."""
    async with db.session() as session:
        session.add(DbNote(body="kept"))

    async def failing() -> None:
        async with db.session() as session:
            session.add(DbNote(body="dropped"))
            await session.flush()
            raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        await failing()
    async with db.session() as session:
        bodies = (await session.scalars(select(DbNote.body))).all()
    assert bodies == ["kept"]


async def test_foreign_errors_in_the_block_pass_through(db: Database) -> None:
    """An OSError raised by user code inside session() is re-raised as is, after the rollback."""

    async def failing() -> None:
        async with db.session() as session:
            session.add(DbNote(body="dropped"))
            await session.flush()
            raise FileNotFoundError("config.yaml")

    with pytest.raises(FileNotFoundError):
        await failing()
    async with db.session() as session:
        assert await BaseRepository(session, DbNote).count() == 0


async def test_sql_errors_are_translated(db: Database) -> None:
    """A failing statement inside session() surfaces as DatabaseError chained to the original."""
    with pytest.raises(DatabaseError) as info:
        async with db.session() as session:
            await session.execute(text("SELECT * FROM no_such_table_here"))
    assert info.value.__cause__ is not None
    assert "no_such_table_here" not in info.value.message


async def test_session_dependency_yields_a_working_session(db: Database) -> None:
    """The FastAPI dependency yields a session and commits when the generator finishes."""
    dependency = db.session_dependency()
    session = await anext(dependency)
    assert isinstance(session, AsyncSession)
    await BaseRepository(session, DbNote).create(body="via dependency")
    with contextlib.suppress(StopAsyncIteration):
        await anext(dependency)
    async with db.session() as check:
        assert await BaseRepository(check, DbNote).count(body="via dependency") == 1


async def test_health_check_reports_dialect(db: Database) -> None:
    """health_check answers with the dialect and pool status."""
    report = await db.health_check()
    assert report["dialect"] == db.dialect
    assert "pool" in report


async def test_unreachable_postgres_is_a_connection_error() -> None:
    """A PostgreSQL URL nobody listens on raises DatabaseConnectionError from the boundary."""
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{_free_port()}/nothing"
    async with Database(url, connect_timeout=2) as db:
        with pytest.raises(DatabaseConnectionError):
            await db.health_check()
        with pytest.raises(DatabaseConnectionError):
            async with db.session() as session:
                await session.execute(text("SELECT 1"))


def test_translate_error_keeps_energy_errors() -> None:
    """translate_error passes energy errors through unchanged."""
    err = EnergyError("x")
    assert translate_error(err) is err
    assert isinstance(translate_error(ConnectionResetError()), DatabaseConnectionError)


async def _pg_activity(admin_dsn: str, datname: str, application_name: str) -> list[tuple[str | None, int]]:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT state, pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
            datname,
            application_name,
        )
    finally:
        await conn.close()
    return [(row["state"], row["pid"]) for row in rows]


async def test_cancelled_request_storm_leaks_nothing(postgres_database: Any) -> None:
    """Cancelling many in-flight requests leaves no checked-out or idle-in-transaction connection."""
    app_name = "storm-test"
    async with Database(postgres_database.url, pool_size=5, max_overflow=5, application_name=app_name) as db:

        async def request(i: int) -> None:
            async with db.session() as session:
                await session.execute(text("SELECT pg_sleep(:s)"), {"s": 0.05 * (i % 5)})
                session.add(DbNote(body=f"n{i}"))
                await session.flush()
                await session.execute(text("SELECT pg_sleep(0.5)"))

        await db.create_all(_Base.metadata)
        try:
            for _ in range(3):
                tasks = [asyncio.create_task(request(i)) for i in range(40)]
                await asyncio.sleep(0.15)
                for task in tasks:
                    task.cancel()
                results = await asyncio.gather(*tasks, return_exceptions=True)
                assert any(isinstance(r, asyncio.CancelledError) for r in results)
                assert all(isinstance(r, (asyncio.CancelledError, DatabaseError)) or r is None for r in results)
            pool = db.engine.pool
            assert pool.checkedout() == 0  # type: ignore[attr-defined]
            activity = await _pg_activity(postgres_database.dsn, postgres_database.name, app_name)
            assert all(state != "idle in transaction" for state, _ in activity), activity
            assert all(state in {"idle", None} for state, _ in activity), activity
            async with db.session() as session:
                assert await BaseRepository(session, DbNote).count() == 0
        finally:
            await db.drop_all(_Base.metadata)


async def test_killed_connection_then_next_request_succeeds(postgres_database: Any) -> None:
    """After pg_terminate_backend kills pooled connections, the next request succeeds (pre-ping)."""
    import asyncpg

    app_name = "terminate-test"
    async with Database(postgres_database.url, pool_size=2, max_overflow=0, application_name=app_name) as db:
        async with db.session() as session:
            await session.execute(text("SELECT 1"))
        pids = [pid for _, pid in await _pg_activity(postgres_database.dsn, postgres_database.name, app_name)]
        assert pids
        admin = await asyncpg.connect(postgres_database.dsn, timeout=10)
        try:
            for pid in pids:
                await admin.execute("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        async with db.session() as session:
            assert (await session.execute(text("SELECT 42"))).scalar_one() == 42

        # A connection killed while checked out fails that request with a typed error...
        async def killed_midway() -> None:
            async with db.session() as session:
                pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                admin = await asyncpg.connect(postgres_database.dsn, timeout=10)
                try:
                    await admin.execute("SELECT pg_terminate_backend($1)", pid)
                finally:
                    await admin.close()
                await session.execute(text("SELECT 1"))

        with pytest.raises(DatabaseConnectionError):
            await killed_midway()
        # ...and the one after it succeeds.
        async with db.session() as session:
            assert (await session.execute(text("SELECT 7"))).scalar_one() == 7


async def test_fastapi_session_dependency_commits_and_rolls_back(db: Database) -> None:
    """Through FastAPI, a request's writes commit on success and roll back when the endpoint fails."""
    import httpx
    from energy_common.exceptions import ValidationError
    from energy_common.middleware import install_exception_handlers
    from fastapi import Depends, FastAPI

    app = FastAPI()
    install_exception_handlers(app)

    @app.post("/notes/{body}")
    async def create(body: str, session: AsyncSession = Depends(db.session_dependency)) -> dict[str, int]:  # noqa: B008
        note = await BaseRepository(session, DbNote).create(body=body)
        if body == "bad":
            raise ValidationError("bad note", {"field": "body"})
        return {"id": note.id}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        assert (await http.post("/notes/good")).status_code == 200
        assert (await http.post("/notes/bad")).status_code == 400
    async with db.session() as session:
        assert [n.body for n in await BaseRepository(session, DbNote).find_by()] == ["good"]
