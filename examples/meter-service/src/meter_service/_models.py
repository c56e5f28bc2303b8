"""Database models: meter readings and API users.

A reading is identified by its meter and its timestamp (epoch milliseconds), the
primary key of the series: a QoS 1 message delivered twice carries the same ``ts``
and is stored once (see ``meter_service._ingest``). The readings table, its
partitions and rollups belong to the time-series store (``READINGS`` in
``meter_service._repositories``); :class:`Reading` maps it for ad-hoc queries and is
kept out of ``Base.metadata`` so ``create_all`` never creates a plain copy of it.
"""

from __future__ import annotations

from energy_common.database import NAMING_CONVENTION, Base, IdMixin, TimestampMixin
from sqlalchemy import JSON, BigInteger, Float, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Reading", "SeriesTables", "User"]


class SeriesTables(DeclarativeBase):
    """Mappings of tables the time-series store creates (never passed to ``create_all``)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Reading(SeriesTables):
    """One meter reading as stored (primary key ``(device_id, ts)``)."""

    __tablename__ = "readings"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger(), primary_key=True)
    power_w: Mapped[float] = mapped_column(Float())
    voltage_v: Mapped[float | None] = mapped_column(Float(), nullable=True)
    energy_kwh: Mapped[float | None] = mapped_column(Float(), nullable=True)


class User(IdMixin, TimestampMixin, Base):
    """An API user: argon2id password hash, roles and permissions."""

    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list[str]] = mapped_column(JSON(), default=list)
    permissions: Mapped[list[str]] = mapped_column(JSON(), default=list)
