"""BaseRepository on real SQLite and PostgreSQL: CRUD, filters, pagination, upsert, locking, bulk paths."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from energy_common.database import BaseRepository, Database, IdMixin, Page, TimestampMixin, VersionMixin
from energy_common.exceptions import ConflictError, ResourceNotFoundError, ValidationError
from sqlalchemy import ForeignKey, String, inspect, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class _Base(DeclarativeBase):
    pass


class RepoUser(IdMixin, TimestampMixin, VersionMixin, _Base):
    __tablename__ = "repo_users"

    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(200), unique=True)
    team: Mapped[str | None] = mapped_column(String(50), default=None)


class RepoDevice(IdMixin, _Base):
    __tablename__ = "repo_devices"

    owner_id: Mapped[int] = mapped_column(ForeignKey("repo_users.id"))
    serial: Mapped[str] = mapped_column(String(50), unique=True)


class RepoReading(_Base):
    __tablename__ = "repo_readings"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    device: Mapped[str] = mapped_column(String(50))
    value: Mapped[float]


class UserRepository(BaseRepository[RepoUser]):
    """The seed README's subclassing example."""

    async def find_by_email(self, email: str) -> RepoUser | None:
        return await self.find_one_by(email=email)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a SQLite file or of the session's PostgreSQL test database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'repo.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A Database on each engine with the test tables created (and dropped afterwards)."""
    database = Database(db_url, pool_size=5, max_overflow=5)
    await database.drop_all(_Base.metadata)
    await database.create_all(_Base.metadata)
    try:
        yield database
    finally:
        await database.drop_all(_Base.metadata)
        await database.dispose()


async def _seed(db: Database, count: int = 5) -> None:
    async with db.session() as session:
        repo = UserRepository(session, RepoUser)
        for i in range(count):
            await repo.create(name=f"user{i}", email=f"u{i}@example.com", team="a" if i % 2 else "b")


async def test_crud_roundtrip(db: Database) -> None:
    """create, get, get_or_raise, update and delete work and persist across sessions."""
    async with db.session() as session:
        repo = UserRepository(session, RepoUser)
        user = await repo.create(name="John", email="john@example.com")
        assert user.id is not None
        assert user.version == 1
        assert user.created_at is not None
    async with db.session() as session:
        repo = UserRepository(session, RepoUser)
        assert (await repo.get_or_raise(user.id)).name == "John"
        assert (await repo.find_by_email("john@example.com")) is not None
        updated = await repo.update(user.id, name="Johnny")
        assert updated.name == "Johnny"
        assert updated.version == 2
    async with db.session() as session:
        repo = UserRepository(session, RepoUser)
        assert (await repo.get(user.id)) is not None
        assert await repo.delete(user.id) is True
        assert await repo.delete(user.id) is False
        assert await repo.get(user.id) is None
        with pytest.raises(ResourceNotFoundError):
            await repo.get_or_raise(user.id)
        with pytest.raises(ResourceNotFoundError):
            await repo.update(user.id, name="ghost")


async def test_filters_count_exists_and_order(db: Database) -> None:
    """Equality, IS NULL and IN filters, ordering both ways, count and exists agree."""
    await _seed(db)
    async with db.session() as session:
        repo = UserRepository(session, RepoUser)
        await repo.create(name="loner", email="loner@example.com", team=None)
        assert await repo.count() == 6
        assert await repo.count(team="a") == 2
        assert await repo.count(team=None) == 1
        assert await repo.count(name=["user0", "user1", "nobody"]) == 2
        assert await repo.exists(email="u3@example.com")
        assert not await repo.exists(email="nobody@example.com")
        names = [u.name for u in await repo.find_by(team="b", order_by="-name")]
        assert names == ["user4", "user2", "user0"]
        names = [u.name for u in await repo.find_by(team=["a", "b"], order_by=["team", "name"], limit=2, offset=1)]
        assert names == ["user3", "user0"]
        assert (await repo.find_one_by(team="b")) is not None
        assert (await repo.find_one_by(team="zzz")) is None


async def test_paginate_and_bounds(db: Database) -> None:
    """paginate returns items and total; page and limit outside their bounds are refused."""
    await _seed(db, 7)
    async with db.session() as session:
        repo = UserRepository(session, RepoUser, max_page_size=5)
        page = await repo.paginate(page=2, limit=3)
        assert isinstance(page, Page)
        assert [u.name for u in page.items] == ["user3", "user4", "user5"]
        assert (page.total, page.pages, page.has_next) == (7, 3, True)
        last = await repo.paginate(page=3, limit=3)
        assert [u.name for u in last.items] == ["user6"]
        assert not last.has_next
        empty = await repo.paginate(page=9, limit=3)
        assert empty.items == []
        assert empty.total == 7
        for bad in ({"page": 0}, {"page": -1}, {"limit": 0}, {"limit": 6}, {"limit": True}):
            with pytest.raises(ValidationError):
                await repo.paginate(**bad)
        with pytest.raises(ValidationError):
            await repo.find_by(limit=6)
        with pytest.raises(ValidationError):
            await repo.find_by(offset=-1)


@pytest.mark.parametrize(
    "bad_name",
    [
        "name; DROP TABLE repo_users; --",
        "1=1 OR name",
        "__class__",
        "name desc",
        "_sa_instance_state",
        "metadata",
    ],
)
async def test_injection_through_field_names_is_refused(db: Database, bad_name: str) -> None:
    """Unknown field names in filters, ordering and data raise ValidationError and never reach SQL."""
    await _seed(db, 2)
    async with db.session() as session:
        repo = UserRepository(session, RepoUser)
        with pytest.raises(ValidationError) as info:
            await repo.find_by(**{bad_name: "x"})
        assert info.value.details["field"] == bad_name[:64]
        with pytest.raises(ValidationError):
            await repo.find_by(order_by=bad_name)
        with pytest.raises(ValidationError):
            await repo.find_by(order_by=f"-{bad_name}")
        with pytest.raises(ValidationError):
            await repo.count(**{bad_name: 1})
        with pytest.raises(ValidationError):
            await repo.create(name="x", email="x@example.com", **{bad_name: 1})
        with pytest.raises(ValidationError):
            await repo.create_many([{"name": "x", "email": "y@example.com", bad_name: 1}])
    async with db.session() as session:
        assert await UserRepository(session, RepoUser).count() == 2


async def test_rollback_on_exception(db: Database) -> None:
    """An exception inside session() rolls back everything written in it."""

    async def failing() -> None:
        async with db.session() as session:
            await UserRepository(session, RepoUser).create(name="temp", email="temp@example.com")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await failing()
    async with db.session() as session:
        assert await UserRepository(session, RepoUser).count() == 0


async def test_integrity_errors_become_conflicts(db: Database) -> None:
    """Duplicate unique values and broken foreign keys raise ConflictError, and nothing is kept."""
    await _seed(db, 1)
    with pytest.raises(ConflictError):
        async with db.session() as session:
            await UserRepository(session, RepoUser).create(name="dup", email="u0@example.com")
    with pytest.raises(ConflictError):
        async with db.session() as session:
            await BaseRepository(session, RepoDevice).create(owner_id=999_999, serial="s1")
    async with db.session() as session:
        assert await UserRepository(session, RepoUser).count() == 1
        assert await BaseRepository(session, RepoDevice).count() == 0


async def test_update_refuses_key_and_version(db: Database) -> None:
    """update() refuses to change the primary key or the version column directly."""
    await _seed(db, 1)
    async with db.session() as session:
        repo = UserRepository(session, RepoUser)
        user = await repo.find_one_by(name="user0")
        assert user is not None
        for field in ("id", "version"):
            with pytest.raises(ValidationError):
                await repo.update(user.id, **{field: 5})


async def test_optimistic_locking_conflict(db: Database) -> None:
    """A writer holding a stale version gets ConflictError; expected_version mismatches too."""
    await _seed(db, 1)
    async with db.session() as session:
        user_id = (await UserRepository(session, RepoUser).find_one_by(name="user0")).id  # type: ignore[union-attr]

    async def stale_write() -> None:
        async with db.session() as stale:
            stale_repo = UserRepository(stale, RepoUser)
            held = await stale_repo.get_or_raise(user_id)  # keeps it in the identity map at version 1
            async with db.session() as other:
                await UserRepository(other, RepoUser).update(user_id, name="first")
            await stale_repo.update(held.id, name="second")

    with pytest.raises(ConflictError) as info:
        await stale_write()
    assert info.value.details["reason"] == "stale_version"
    async with db.session() as session:
        repo = UserRepository(session, RepoUser)
        current = await repo.get_or_raise(user_id)
        assert (current.name, current.version) == ("first", 2)
        with pytest.raises(ConflictError):
            await repo.update(user_id, expected_version=1, name="third")
        assert (await repo.update(user_id, expected_version=2, name="third")).version == 3


async def test_upsert_inserts_then_updates(db: Database) -> None:
    """upsert inserts a new row, then updates it on conflict (ON CONFLICT), bumping the version."""
    async with db.session() as session:
        repo = UserRepository(session, RepoUser)
        first = await repo.upsert(conflict_columns=["email"], email="up@example.com", name="one")
        assert (first.name, first.version) == ("one", 1)
    async with db.session() as session:
        repo = UserRepository(session, RepoUser)
        second = await repo.upsert(conflict_columns=["email"], email="up@example.com", name="two", team="t")
        assert second.id == first.id
        assert (second.name, second.team, second.version) == ("two", "t", 2)
        kept = await repo.upsert(conflict_columns=["email"], update_columns=[], email="up@example.com", name="x")
        assert kept.name == "two"
        assert await repo.count() == 1
        with pytest.raises(ValidationError):
            await repo.upsert(conflict_columns=["email"], name="no email")
        with pytest.raises(ValidationError):
            await repo.upsert(conflict_columns=["nope"], email="a@example.com", nope=1)


async def test_create_many_and_copy_many(db: Database) -> None:
    """create_many inserts batches with Core executemany; copy_many loads tuples or mappings."""
    rows = [{"device": f"d{i % 3}", "value": float(i)} for i in range(2_500)]
    async with db.session() as session:
        repo = BaseRepository(session, RepoReading)
        assert await repo.create_many(rows, batch_size=1_000) == 2_500
        assert len(session.identity_map) == 0  # Core executemany: no ORM objects were built
        assert await repo.create_many([]) == 0
        assert await repo.copy_many([("c", 1.5), ("c", 2.5)], columns=["device", "value"]) == 2
        assert await repo.copy_many([{"device": "m", "value": 3.0}]) == 1
        with pytest.raises(ValidationError):
            await repo.copy_many([("c", 1.5)])
        with pytest.raises(ValidationError):
            await repo.create_many([{"device": "a", "value": 1.0}, {"device": "b"}])
        with pytest.raises(ValidationError):
            await repo.create_many(rows, batch_size=0)
    async with db.session() as session:
        repo = BaseRepository(session, RepoReading)
        assert await repo.count() == 2_503
        assert await repo.count(device="d1") == 833
        assert await repo.count(device="c") == 2


async def test_create_many_ignoring_conflicts(db: Database) -> None:
    """on_conflict='ignore' skips rows that hit a unique constraint and counts only the stored ones."""
    async with db.session() as session:
        repo = UserRepository(session, RepoUser)
        await repo.create(name="taken", email="taken@example.com")
    rows = [
        {"name": "a", "email": "a@example.com"},
        {"name": "dup", "email": "taken@example.com"},
        {"name": "b", "email": "b@example.com"},
        {"name": "a-again", "email": "a@example.com"},
    ]
    async with db.session() as session:
        repo = UserRepository(session, RepoUser)
        assert await repo.create_many(rows, on_conflict="ignore", conflict_columns=["email"]) == 2
        assert await repo.create_many(rows[:1], on_conflict="ignore") == 0
        with pytest.raises(ValidationError):
            await repo.create_many(rows, on_conflict="ignore", conflict_columns=["nope"])
        with pytest.raises(ValidationError):
            await repo.create_many(rows, on_conflict="skip")  # type: ignore[arg-type]
    async with db.session() as session:
        repo = UserRepository(session, RepoUser)
        assert sorted(u.email for u in await repo.find_by()) == ["a@example.com", "b@example.com", "taken@example.com"]
        assert (await repo.find_one_by(email="a@example.com")).name == "a"  # type: ignore[union-attr]


async def test_copy_many_duplicate_is_a_conflict(db: Database) -> None:
    """A unique violation inside COPY (a driver error, not SQLAlchemy's) is a ConflictError too."""
    async with db.session() as session:
        await UserRepository(session, RepoUser).create(name="taken", email="taken@example.com")
    with pytest.raises(ConflictError):
        async with db.session() as session:
            await UserRepository(session, RepoUser).copy_many(
                [("dup", "taken@example.com", 1)], columns=["name", "email", "version"]
            )


async def test_bulk_paths_roll_back_with_the_session(db: Database) -> None:
    """create_many and copy_many run inside the session's transaction and roll back with it."""

    async def aborted() -> None:
        async with db.session() as session:
            repo = BaseRepository(session, RepoReading)
            await repo.copy_many([("c", 1.0)] * 10, columns=["device", "value"])
            await repo.create_many([{"device": "x", "value": 1.0}] * 10)
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        await aborted()
    async with db.session() as session:
        assert await BaseRepository(session, RepoReading).count() == 0


async def test_repository_requires_single_primary_key() -> None:
    """A model with a composite primary key is refused with a clear error."""

    class Composite(_Base):
        __tablename__ = "repo_composite"
        a: Mapped[int] = mapped_column(primary_key=True)
        b: Mapped[int] = mapped_column(primary_key=True)

    try:
        with pytest.raises(ValidationError):
            BaseRepository(None, Composite)  # type: ignore[arg-type]
    finally:
        _Base.metadata.remove(Composite.__table__)  # type: ignore[arg-type]


async def test_timestamps_set_and_updated(db: Database) -> None:
    """created_at is set on insert and updated_at moves forward on update."""
    await _seed(db, 1)
    async with db.session() as session:
        repo = UserRepository(session, RepoUser)
        user = await repo.find_one_by(name="user0")
        assert user is not None
        before = user.updated_at
        after = (await repo.update(user.id, team="z")).updated_at
        assert after >= before
        columns: Any = inspect(RepoUser).columns
        assert {"created_at", "updated_at", "version"} <= set(columns.keys())
        assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
