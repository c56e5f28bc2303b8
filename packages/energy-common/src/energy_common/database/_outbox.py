"""The transactional outbox table: messages written in the caller's transaction.

A service that changes rows and must tell others about it adds an
:class:`OutboxMessage` in the *same* SQLAlchemy session: the message is committed with
the change or rolled back with it. A relay
(:class:`energy_messaging.events.outbox.OutboxRelay`) reads the unsent rows in ``id``
order and publishes them, then marks them sent.

The table (``energy_outbox`` by default)::

    id          BIGINT PRIMARY KEY (identity; publication order)
    event_id    VARCHAR(64) UNIQUE   the idempotency key downstream
    key         VARCHAR(200)         aggregate key: order is kept per key
    key_hash    BIGINT               crc32 of key: relays split the keys by it
    destination VARCHAR(16)          "events" (event bus) or "mqtt"
    topic       VARCHAR(512)         event type or MQTT topic
    payload     BLOB/BYTEA           the message bytes (a CloudEvent JSON for the bus)
    created_at  TIMESTAMP WITH TIME ZONE
    attempts    INTEGER              failed publish attempts
    sent_at     TIMESTAMP WITH TIME ZONE NULL   NULL while unsent (partial index)

:meth:`Outbox.table` is a SQLAlchemy ``Table``: put it in your ``Base.metadata`` (the
``metadata`` argument) so Alembic autogenerate creates it with your tables.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from energy_common.database._models import NAMING_CONVENTION, UTCDateTime, utcnow
from energy_common.exceptions import ValidationError

__all__ = ["DESTINATIONS", "Outbox", "OutboxMessage", "key_hash"]

#: Where a relay can send a message.
DESTINATIONS = frozenset({"events", "mqtt"})
_MAX_KEY = 200
_MAX_TOPIC = 512
_MAX_ID = 64


def key_hash(key: str) -> int:
    """Return the stable hash of an aggregate key (crc32) that relays partition by.

    Example:
        >>> key_hash("meter-1") == key_hash("meter-1")
        True
    """
    return zlib.crc32(key.encode())


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One message to publish once the transaction that adds it commits.

    Attributes:
        event_id: Unique id (the idempotency key of the consumers; adding the same id
            twice stores it once).
        key: Aggregate key (e.g. the meter id): messages of one key are published in
            the order they were added.
        topic: Event type (destination ``"events"``) or MQTT topic (``"mqtt"``).
        payload: The bytes to publish (an encoded CloudEvent for the event bus).
        destination: ``"events"`` or ``"mqtt"``.

    Raises:
        ValidationError: An empty or too long field, or an unknown destination.
    """

    event_id: str
    key: str
    topic: str
    payload: bytes
    destination: str = "events"

    def __post_init__(self) -> None:
        for name, value, limit in (("event_id", self.event_id, _MAX_ID), ("key", self.key, _MAX_KEY)):
            if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
                raise ValidationError(
                    f"Outbox message {name} must be a printable string of 1-{limit} characters.", {"field": name}
                )
        if not isinstance(self.topic, str) or not self.topic or len(self.topic) > _MAX_TOPIC:
            raise ValidationError(f"Outbox message topic must have 1-{_MAX_TOPIC} characters.", {"field": "topic"})
        if self.destination not in DESTINATIONS:
            raise ValidationError(
                f"Unknown outbox destination {self.destination!r}; use one of {sorted(DESTINATIONS)}.",
                {"field": "destination"},
            )
        if not isinstance(self.payload, bytes):
            raise ValidationError("Outbox message payload must be bytes.", {"field": "payload"})


class Outbox:
    """The outbox table and the statements on it (writes inside the caller's session).

    Args:
        table_name: Name of the table.
        metadata: Metadata to define the table in (your ``Base.metadata``, for Alembic);
            a private one by default.

    Example:
        >>> outbox = Outbox()
        >>> outbox.table.name
        'energy_outbox'
    """

    def __init__(self, table_name: str = "energy_outbox", *, metadata: MetaData | None = None) -> None:
        meta = metadata if metadata is not None else MetaData(naming_convention=NAMING_CONVENTION)
        self.table: Table = Table(
            table_name,
            meta,
            Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
            Column("event_id", String(_MAX_ID), nullable=False, unique=True),
            Column("key", String(_MAX_KEY), nullable=False),
            Column("key_hash", BigInteger, nullable=False),
            Column("destination", String(16), nullable=False),
            Column("topic", String(_MAX_TOPIC), nullable=False),
            Column("payload", LargeBinary, nullable=False),
            Column("created_at", UTCDateTime, nullable=False, default=utcnow),
            Column("attempts", Integer, nullable=False, default=0),
            Column("sent_at", UTCDateTime, nullable=True),
            Index(
                f"ix_{table_name}_unsent",
                "id",
                postgresql_where=text("sent_at IS NULL"),
                sqlite_where=text("sent_at IS NULL"),
            ),
        )

    @property
    def name(self) -> str:
        """Name of the table."""
        return self.table.name

    async def create(self, conn: AsyncConnection) -> None:
        """Create the table and its index unless they exist (tests, embedded SQLite; use Alembic otherwise)."""
        await conn.run_sync(lambda sync: self.table.create(sync, checkfirst=True))

    @staticmethod
    def _row(message: OutboxMessage) -> dict[str, Any]:
        return {
            "event_id": message.event_id,
            "key": message.key,
            "key_hash": key_hash(message.key),
            "destination": message.destination,
            "topic": message.topic,
            "payload": message.payload,
            "created_at": utcnow(),
            "attempts": 0,
        }

    async def add(self, session: AsyncSession, message: OutboxMessage) -> None:
        """Add one message inside ``session``'s transaction (nothing is written if it rolls back).

        Raises:
            ConflictError: A message with this ``event_id`` exists already (at commit or flush).
        """
        await session.execute(insert(self.table).values(self._row(message)))

    async def add_many(self, session: AsyncSession, messages: Sequence[OutboxMessage]) -> None:
        """Add messages inside ``session``'s transaction; ids present already are skipped.

        Use it with deterministic event ids to make a retried write add each message
        once (``INSERT ... ON CONFLICT (event_id) DO NOTHING``).
        """
        if not messages:
            return
        dialect = session.bind.dialect.name if session.bind is not None else "postgresql"
        make = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = make(self.table).on_conflict_do_nothing(index_elements=["event_id"])
        await session.execute(statement, [self._row(message) for message in messages])

    async def unsent_count(self, conn: AsyncConnection | AsyncSession) -> int:
        """Return how many messages wait for the relay."""
        table = self.table
        query = func.count().select().select_from(table).where(table.c.sent_at.is_(None))
        return int((await conn.execute(query)).scalar_one())

    async def purge_sent(self, conn: AsyncConnection | AsyncSession, *, older_than: timedelta) -> int:
        """Delete messages sent more than ``older_than`` ago; return how many."""
        table = self.table
        cutoff = utcnow() - older_than
        result: Any = await conn.execute(delete(table).where(table.c.sent_at.is_not(None), table.c.sent_at < cutoff))
        return int(result.rowcount or 0)
