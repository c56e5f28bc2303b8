"""BaseRepository range filters, keyset pages and out-of-range values on real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from energy_common.database import BaseRepository, CursorCodec, Database, UTCDateTime
from energy_common.exceptions import ConfigurationError, OutOfRangeError, ValidationError
from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class _Base(DeclarativeBase):
    pass


class Sample(_Base):
    __tablename__ = "query_samples"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    meter: Mapped[str] = mapped_column(String(20))
    ts: Mapped[int] = mapped_column(BigInteger())
    small: Mapped[int] = mapped_column(Integer(), default=0)
    at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    note: Mapped[str | None] = mapped_column(String(20), nullable=True)


KEY = "k" * 32
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'q.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A Database on each engine with 20 samples of two meters."""
    database = Database(db_url)
    await database.drop_all(_Base.metadata)
    await database.create_all(_Base.metadata)
    async with database.session() as session:
        await BaseRepository(session, Sample).create_many(
            [
                {
                    "meter": f"m{i % 2}",
                    "ts": i * 10,
                    "small": i,
                    "at": T0 + timedelta(hours=i),
                    "note": None if i % 3 else "x",
                }
                for i in range(20)
            ]
        )
    try:
        yield database
    finally:
        await database.drop_all(_Base.metadata)
        await database.dispose()


def _repo(session: object) -> BaseRepository[Sample]:
    return BaseRepository(session, Sample, cursors=CursorCodec(KEY))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"ts__gte": 50, "ts__lt": 80}, [5, 6, 7]),
        ({"ts__gt": 170}, [18, 19]),
        ({"ts__lte": 10}, [0, 1]),
        ({"ts__between": (30, 50), "meter__ne": "m0"}, [3, 5]),
        ({"small__in": [1, 2, 99]}, [1, 2]),
        ({"small__not_in": list(range(2, 20))}, [0, 1]),
        ({"note__is_null": False}, [0, 3, 6, 9, 12, 15, 18]),
        ({"meter__like": "m1", "ts__lt": 40}, [1, 3]),
        ({"at__gte": T0 + timedelta(hours=18)}, [18, 19]),
        ({"meter": "m0", "small__gte": 16}, [16, 18]),
    ],
)
async def test_range_and_comparison_filters(db: Database, filters: dict[str, object], expected: list[int]) -> None:
    """Each operator selects exactly the rows it names, on both engines."""
    async with db.session() as session:
        rows = await _repo(session).find_by(order_by="ts", **filters)
        assert [row.small for row in rows] == expected
        assert await _repo(session).count(**filters) == len(expected)


@pytest.mark.parametrize(
    "filters",
    [{"ts__near": 1}, {"nope__gte": 1}, {"ts__between": (1,)}, {"small__in": 3}, {"note__is_null": "yes"}],
)
async def test_bad_filters_are_validation_errors(db: Database, filters: dict[str, object]) -> None:
    """Unknown operators or columns and wrongly shaped values are refused before SQL."""
    async with db.session() as session:
        with pytest.raises(ValidationError):
            await _repo(session).find_by(**filters)


@pytest.mark.parametrize(
    "call",
    [
        {"small__gte": 2**31},
        {"ts__lt": 2**63},
        {"ts__in": [1, -(2**63) - 1]},
        {"at__lt": datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-12)))},
    ],
)
async def test_out_of_range_values_are_422(db: Database, call: dict[str, object]) -> None:
    """Integers past the column width and dates past year 9999 in UTC are OutOfRangeError (422)."""
    async with db.session() as session:
        with pytest.raises(OutOfRangeError) as caught:
            await _repo(session).find_by(**call)
    assert caught.value.status_code == 422


async def test_page_offset_and_id_overflow_are_422(db: Database) -> None:
    """A page, offset or id past int64 is an OutOfRangeError, not a driver OverflowError."""
    async with db.session() as session:
        repo = _repo(session)
        with pytest.raises(OutOfRangeError):
            await repo.paginate(page=4611686018427387904, limit=10)
        with pytest.raises(OutOfRangeError):
            await repo.find_by(offset=2**63)
        with pytest.raises(OutOfRangeError):
            await repo.get(2**64)
        page = await repo.paginate(page=2, limit=7, meter="m1")
    assert page.total == 10
    assert len(page.items) == 3


async def test_paginate_total_in_one_statement(db: Database) -> None:
    """paginate returns the page and the total of every matching row; past the end the total still holds."""
    async with db.session() as session:
        repo = _repo(session)
        first = await repo.paginate(page=1, limit=3, order_by="-ts", meter="m0")
        past = await repo.paginate(page=9, limit=3, meter="m0")
    assert [row.small for row in first.items] == [18, 16, 14]
    assert first.total == 10
    assert first.pages == 4
    assert past.items == []
    assert past.total == 10


@pytest.mark.parametrize("order_by", ["-ts", "ts", ["meter", "-ts"]])
async def test_keyset_pages_walk_every_row_once(db: Database, order_by: str | list[str]) -> None:
    """Following next_cursor visits every row exactly once, in the requested order."""
    seen: list[int] = []
    cursor = None
    async with db.session() as session:
        repo = _repo(session)
        expected = [row.small for row in await repo.find_by(order_by=order_by)]
        while True:
            page = await repo.paginate_after(cursor, 3, order_by=order_by)
            seen.extend(row.small for row in page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert seen == expected


async def test_keyset_stable_under_concurrent_inserts(db: Database) -> None:
    """Rows inserted while a client pages (newest first) never make it skip or repeat older rows."""
    async with db.session() as session:
        page = await _repo(session).paginate_after(None, 5, order_by="-ts", meter="m0")
    seen = [row.ts for row in page.items]

    async def writer() -> None:
        for i in range(10):
            async with db.session() as session:
                await _repo(session).create(meter="m0", ts=1000 + i, small=0)
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    cursor = page.next_cursor
    while cursor is not None:
        async with db.session() as session:
            page = await _repo(session).paginate_after(cursor, 2, order_by="-ts", meter="m0")
        seen.extend(row.ts for row in page.items)
        cursor = page.next_cursor
        await asyncio.sleep(0)
    await task
    assert seen == list(range(180, -1, -20))


async def test_forged_and_foreign_cursors_are_rejected(db: Database) -> None:
    """An altered, forged, foreign-key or other-query cursor is a ValidationError, never SQL."""
    async with db.session() as session:
        repo = _repo(session)
        page = await repo.paginate_after(None, 2, order_by="-ts", meter="m0")
        assert page.next_cursor is not None
        body, _, tag = page.next_cursor.partition(".")
        other = BaseRepository(session, Sample, cursors=CursorCodec("z" * 32))
        forged = CursorCodec("z" * 32).encode(["1; DROP TABLE query_samples", 1], "x")
        for bad in (f"{body}x.{tag}", f"{body}.{tag[:-2]}AA", forged, "not-a-cursor", "a.b.c", "." * 5000):
            with pytest.raises(ValidationError):
                await repo.paginate_after(bad, 2, order_by="-ts", meter="m0")
        with pytest.raises(ValidationError):
            await repo.paginate_after(page.next_cursor, 2, order_by="ts", meter="m0")
        with pytest.raises(ValidationError):
            await repo.paginate_after(page.next_cursor, 2, order_by="-ts", meter="m1")
        with pytest.raises(ValidationError):
            await other.paginate_after(page.next_cursor, 2, order_by="-ts", meter="m0")
        with pytest.raises(ValidationError):
            await repo.paginate_after(None, 2, order_by="note")
        assert await repo.count() == 20


def test_cursor_codec_needs_a_strong_key() -> None:
    """A key shorter than 32 bytes is a ConfigurationError; paginate_after without a codec is too."""
    with pytest.raises(ConfigurationError):
        CursorCodec("short")


async def test_paginate_after_without_codec(db: Database) -> None:
    """A repository built without cursors= explains what is missing."""
    async with db.session() as session:
        with pytest.raises(ConfigurationError):
            await BaseRepository(session, Sample).paginate_after(None, 5)
