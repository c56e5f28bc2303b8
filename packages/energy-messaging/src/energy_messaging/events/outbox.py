"""The outbox relay: publish what committed transactions added to the outbox table.

Needs ``energy-messaging[sql]`` (energy-common's database layer). The table and
``add`` live in :class:`energy_common.database.Outbox`; :func:`add_event` builds a
CloudEvent there, and :class:`OutboxRelay` publishes the unsent rows through an
:class:`OutboxPublisher` (:class:`EventBusPublisher`, :class:`MQTTPublisher`) and
marks them sent.

Guarantees:

* **at least once**: a row is marked sent in the transaction that published it; a
  relay killed mid-batch (SIGKILL) rolls back and the next one publishes the batch
  again. Consumers de-duplicate by event id (:func:`~energy_messaging.events.idempotent`).
* **in order per key**: rows are published in ``id`` order and a batch stops at the
  first failure (it is retried with jittered exponential backoff). A
  :class:`BatchOutboxPublisher` (the event bus's) sends a batch in one pipelined round
  trip; when that fails none of it is marked sent, so all of it goes again.
* **several relays on PostgreSQL**: each batch runs in one transaction that first takes
  ``pg_try_advisory_xact_lock(<table>, p)`` for the key partitions ``p`` (``key_hash %
  partitions``) it can get and reads only their rows. Two relays therefore never
  publish the same key at once, and share the keys between them. ``FOR UPDATE SKIP
  LOCKED`` alone would not keep the order: a second relay would skip a key's locked
  row and publish the *next* row of that key first.
* **SQLite**: one relay per database (no advisory locks there).
* **A row that cannot be published** (the backend refuses it) holds back its key
  partition: it is retried with backoff, its ``attempts`` column counts the failures
  and each failure is logged; fix the cause, or delete the row.

``id`` order is the order of the inserts; two transactions adding messages for the
same key keep their commit order when they also write the same aggregate row (the
usual case: the row lock serialises them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from energy_common._extras import missing_extra

try:
    from energy_common.database import Database, Outbox, OutboxMessage, utcnow
    from sqlalchemy import bindparam, select, text, update
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
except ImportError as exc:  # pragma: no cover - exercised by the packaging tests
    raise missing_extra("energy-messaging", "sql", exc) from exc

from energy_common.exceptions import EnergyError

from energy_messaging.events._base import TransportEventBus
from energy_messaging.events._envelope import Event, build_event, encode_event
from energy_messaging.events._errors import EventBusConfigurationError

__all__ = [
    "BatchOutboxPublisher",
    "EventBusPublisher",
    "MQTTPublisher",
    "OutboxPublisher",
    "OutboxRecord",
    "OutboxRelay",
    "OutboxRelayStats",
    "add_event",
    "outbox_message",
]

logger = logging.getLogger("energy_messaging.events.outbox")

# The partitions this transaction can lock now (others belong to another relay's batch).
_LOCK_PARTITIONS = text(
    "SELECT p FROM generate_series(0, CAST(:n AS integer) - 1) AS p "
    "WHERE pg_try_advisory_xact_lock(CAST(:space AS integer), p)"
)


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One unsent outbox row, as handed to a publisher."""

    id: int
    event_id: str
    key: str
    destination: str
    topic: str
    payload: bytes
    attempts: int


@runtime_checkable
class OutboxPublisher(Protocol):
    """Sends one outbox record; raising leaves it (and the rest of its batch) unsent."""

    async def send(self, record: OutboxRecord) -> None:
        """Publish ``record`` (wait until the backend accepted it)."""
        ...


class _PublishesEncoded(Protocol):
    async def publish_encoded(self, raw: bytes) -> Event: ...

    async def publish_encoded_many(self, raws: Sequence[bytes]) -> list[Event]: ...


@runtime_checkable
class BatchOutboxPublisher(OutboxPublisher, Protocol):
    """A publisher that can also send a whole batch in order, in one round trip."""

    async def send_many(self, records: Sequence[OutboxRecord]) -> None:
        """Publish ``records`` in order; raising means any of them may be unsent."""
        ...


class EventBusPublisher:
    """Publishes ``events`` records to an event bus (Redis Streams or in-memory), unchanged.

    Args:
        bus: A running bus (:class:`~energy_messaging.events.TransportEventBus`: any
            bus :func:`~energy_messaging.events.create_event_bus` makes).
    """

    def __init__(self, bus: TransportEventBus | Any) -> None:
        self._bus: _PublishesEncoded = bus

    async def send(self, record: OutboxRecord) -> None:
        """Append the stored CloudEvent to its type's stream."""
        if record.destination != "events":
            raise EventBusConfigurationError(f"EventBusPublisher cannot send {record.destination!r} records.")
        await self._bus.publish_encoded(record.payload)

    async def send_many(self, records: Sequence[OutboxRecord]) -> None:
        """Append the batch's CloudEvents with one pipelined round trip, in order."""
        for record in records:
            if record.destination != "events":
                raise EventBusConfigurationError(f"EventBusPublisher cannot send {record.destination!r} records.")
        await self._bus.publish_encoded_many([record.payload for record in records])


class _Publishes(Protocol):
    async def publish(self, topic: str, payload: object = None, *, qos: int = 1) -> None: ...


class MQTTPublisher:
    """Publishes ``mqtt`` records with QoS 1 through an :class:`~energy_messaging.MQTTManager`.

    Args:
        manager: A connected manager (its ``publish`` waits for the PUBACK).
        qos: QoS of the publishes (1 or 2).
    """

    def __init__(self, manager: Any, *, qos: int = 1) -> None:
        self._manager: _Publishes = manager
        self._qos = qos

    async def send(self, record: OutboxRecord) -> None:
        """Publish the payload bytes to the record's topic."""
        if record.destination != "mqtt":
            raise EventBusConfigurationError(f"MQTTPublisher cannot send {record.destination!r} records.")
        await self._manager.publish(record.topic, record.payload, qos=self._qos)


async def add_event(
    outbox: Outbox,
    session: AsyncSession,
    event_type: str,
    data: Any,
    *,
    key: str,
    source: str = "urn:energy:events",
    event_id: str | None = None,
) -> Event:
    """Build a CloudEvent and add it to the outbox inside ``session``'s transaction.

    The event takes the current correlation id and trace context, as
    :meth:`EventBus.publish <energy_messaging.events.EventBus.publish>` does.

    Args:
        outbox: The outbox table.
        session: The caller's session: the event commits or rolls back with it.
        event_type: e.g. ``"reading.recorded"``.
        data: JSON-ready data or a pydantic model.
        key: Aggregate key whose events keep their order (e.g. the meter id).
        source: CloudEvents ``source``.
        event_id: Explicit id (deterministic ids make a retried write add it once).

    Returns:
        The event as it will be published.

    Raises:
        InvalidEventError: Bad type or non-JSON data.
        ValidationError: Bad key.
    """
    event = build_event(event_type, data, source=source, event_id=event_id)
    await outbox.add(session, outbox_message(event, key=key))
    return event


def outbox_message(event: Event, *, key: str) -> OutboxMessage:
    """The outbox row of a built event (for :meth:`Outbox.add_many <energy_common.database.Outbox.add_many>`).

    Raises:
        InvalidEventError: The event is too large to encode.
        ValidationError: Bad key.
    """
    return OutboxMessage(event.id, key, event.type, encode_event(event))


@dataclass(slots=True)
class OutboxRelayStats:
    """Counters of one relay: records ``relayed``, ``batches``, publish ``failures``."""

    relayed: int = 0
    batches: int = 0
    failures: int = 0


class OutboxRelay:
    """Background task publishing the outbox; an async context manager.

    Args:
        db: The database holding the outbox table.
        outbox: The table.
        publisher: Where records go (one publisher for every destination it accepts).
        name: Names the task (``energy-outbox-relay:<name>``) and the logs.
        batch_size: Rows per transaction.
        poll_interval: Seconds between two looks at an empty outbox (:meth:`wake` skips the wait).
        partitions: Key partitions shared out between relays (PostgreSQL); the same on every relay.
        max_backoff: Longest wait after a failure, in seconds.

    Raises:
        EventBusConfigurationError: An option is out of range.
    """

    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        publisher: OutboxPublisher,
        *,
        name: str = "outbox",
        batch_size: int = 100,
        poll_interval: float = 0.2,
        partitions: int = 16,
        max_backoff: float = 5.0,
    ) -> None:
        if not 1 <= batch_size <= 10_000 or poll_interval <= 0 or not 1 <= partitions <= 1024 or max_backoff <= 0:
            raise EventBusConfigurationError(
                "Invalid outbox relay options: batch_size 1-10000, partitions 1-1024, "
                "poll_interval and max_backoff > 0."
            )
        self._db = db
        self._outbox = outbox
        self._publisher = publisher
        self._name = name
        self._batch_size = batch_size
        self._poll = poll_interval
        self._partitions = partitions
        self._max_backoff = max_backoff
        # The advisory lock's first key: crc32 of the table's name, as a signed int4.
        self._lock_space = (zlib.crc32(outbox.name.encode()) ^ 0x8000_0000) - 0x8000_0000
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.stats = OutboxRelayStats()

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=f"energy-outbox-relay:{self._name}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - a shutdown budget
        """Let the current batch finish (within ``timeout`` s), then stop the task."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wakeup.set()
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()  # the batch's transaction rolls back: its rows are published again later
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def wake(self) -> None:
        """Look at the outbox now (call it after committing a transaction that added messages)."""
        self._wakeup.set()

    async def _run(self) -> None:
        backoff = 0.05
        while not self._stopping:
            try:
                full = await self.relay_once() >= self._batch_size
                backoff = 0.05
            except Exception as exc:  # noqa: BLE001 - the relay must outlive any outage
                self.stats.failures += 1
                message = exc.message if isinstance(exc, EnergyError) else f"{type(exc).__name__}: {exc}"
                logger.warning("Outbox relay %s failed; retrying in %.2f s: %s", self._name, backoff, message)
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not crypto
                backoff = min(backoff * 2, self._max_backoff)
                continue
            if not full:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self._poll)
                self._wakeup.clear()

    # ------------------------------------------------------------------ one batch

    async def relay_once(self) -> int:
        """Publish one batch of unsent rows and mark them sent; return how many were sent.

        Raises:
            Exception: The publisher's error for the first row that failed (the rows
                before it are marked sent, the rest stay unsent).
        """
        if self._db.is_postgres:
            async with self._db.engine.begin() as conn:
                owned = await self._lock_partitions(conn)
                if not owned:
                    return 0
                sent, failure = await self._publish(conn, await self._unsent(conn, owned))
        else:
            async with self._db.engine.begin() as conn:  # SQLite: read, publish, then write
                records = await self._unsent(conn, None)
            if not records:
                return 0
            async with self._db.engine.begin() as conn:
                sent, failure = await self._publish(conn, records)
        if failure is not None:
            raise failure
        return sent

    async def _lock_partitions(self, conn: AsyncConnection) -> list[int]:
        result = await conn.execute(_LOCK_PARTITIONS, {"n": self._partitions, "space": self._lock_space})
        return [int(row[0]) for row in result.all()]

    async def _unsent(self, conn: AsyncConnection, owned: Sequence[int] | None) -> list[OutboxRecord]:
        table = self._outbox.table
        query = select(
            table.c.id,
            table.c.event_id,
            table.c.key,
            table.c.destination,
            table.c.topic,
            table.c.payload,
            table.c.attempts,
        ).where(table.c.sent_at.is_(None))
        if owned is not None and len(owned) < self._partitions:
            query = query.where((table.c.key_hash % self._partitions).in_(owned))
        rows = (await conn.execute(query.order_by(table.c.id).limit(self._batch_size))).all()
        return [OutboxRecord(*row) for row in rows]

    async def _publish(self, conn: AsyncConnection, records: Sequence[OutboxRecord]) -> tuple[int, Exception | None]:
        table = self._outbox.table
        sent: list[int] = []
        failure: Exception | None = None
        if records and isinstance(self._publisher, BatchOutboxPublisher):
            try:
                await self._publisher.send_many(records)
                sent = [record.id for record in records]
            except Exception as exc:  # noqa: BLE001 - any may be unsent: none is marked, all go again
                failure = exc
                await conn.execute(
                    update(table).where(table.c.id == records[0].id).values(attempts=table.c.attempts + 1)
                )
            records = []
        for record in records:
            try:
                await self._publisher.send(record)
            except Exception as exc:  # noqa: BLE001 - recorded below, then raised
                failure = exc
                logger.warning(
                    "Outbox row %d (event %s, key %s) not published (attempt %d): %s",
                    record.id,
                    record.event_id,
                    record.key,
                    record.attempts + 1,
                    type(exc).__name__,
                )
                await conn.execute(update(table).where(table.c.id == record.id).values(attempts=table.c.attempts + 1))
                break
            sent.append(record.id)
        if sent:
            await conn.execute(
                update(table).where(table.c.id.in_(bindparam("ids", expanding=True))).values(sent_at=utcnow()),
                {"ids": sent},
            )
            self.stats.relayed += len(sent)
        self.stats.batches += 1
        return len(sent), failure
