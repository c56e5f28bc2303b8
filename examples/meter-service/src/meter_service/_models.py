"""Database models: meter readings and API users.

A reading is identified by its meter and its timestamp (epoch milliseconds), unique
together: a QoS 1 message delivered twice carries the same ``ts`` and is
stored once (see ``meter_service._ingest``).
"""

from __future__ import annotations

from energy_common.database import Base, IdMixin, TimestampMixin
from sqlalchemy import JSON, BigInteger, Float, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

__all__ = ["Reading", "User"]


class Reading(IdMixin, Base):
    """One meter reading as stored (unique ``(device_id, ts)``)."""

    __tablename__ = "readings"
    __table_args__ = (UniqueConstraint("device_id", "ts"),)

    device_id: Mapped[str] = mapped_column(String(64))
    ts: Mapped[int] = mapped_column(BigInteger())
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
