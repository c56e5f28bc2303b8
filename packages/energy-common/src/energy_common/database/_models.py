"""Declarative base and column mixins shared by every service's models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Integer, MetaData, func
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = ["NAMING_CONVENTION", "Base", "IdMixin", "TimestampMixin", "UTCDateTime", "VersionMixin", "utcnow"]

#: Constraint names Alembic can diff and drop reliably on every engine.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every engine (SQLite stores it without an offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store aware datetimes in UTC; naive ones are taken as UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC) if dialect.name != "sqlite" else value
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return aware UTC datetimes."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the service's models; point Alembic at ``Base.metadata``.

    Example:
        >>> from sqlalchemy.orm import Mapped, mapped_column
        >>> class User(IdMixin, TimestampMixin, Base):
        ...     __tablename__ = "users"
        ...     email: Mapped[str] = mapped_column(unique=True)
    """

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class IdMixin:
    """An auto-incrementing integer primary key ``id`` (BIGINT; INTEGER on SQLite for rowid aliasing)."""

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True, sort_order=-100
    )


class TimestampMixin:
    """``created_at`` and ``updated_at`` columns, timezone-aware, set by the application and the database."""

    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, server_default=func.now(), nullable=False, sort_order=90
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(),
        default=utcnow,
        onupdate=utcnow,
        server_default=func.now(),
        nullable=False,
        sort_order=91,
    )


class VersionMixin:
    """Optimistic locking: a ``version`` column checked and bumped by every ORM update.

    A flush that finds another writer bumped the version first raises (through the
    repository) :class:`~energy_common.exceptions.ConflictError`.
    """

    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1, sort_order=92)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:  # noqa: N805 - declared_attr receives the class
        return {"version_id_col": cls.__table__.c.version}  # type: ignore[attr-defined]
