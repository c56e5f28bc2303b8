"""Telemetry ingestion: validated MQTT messages → batched, exactly-once writes → cache and events.

Every message handler puts its reading in the current batch and waits until the batch
is committed; only then does the MQTT manager acknowledge the message (PUBACK). A crash
before the commit therefore leaves the message unacknowledged and the broker delivers it
again, and the series key ``(device_id, ts)`` stores a redelivered reading once: the
time-series store COPYs a batch straight into its partitions and, when one of its
readings is stored already, writes it again with duplicate suppression and returns
only the new ones, so only those update the cache and get an event. The number of handlers running at once
(``INGEST_CONCURRENCY``) bounds how many readings a batch can hold.

Events (``EVENTS_PER``): by default one ``reading.recorded`` event per committed batch,
its data ``{"readings": [reading, ...]}`` (the new readings of the batch, each with
:data:`~meter_service._repositories.READING_COLUMNS`); with ``EVENTS_PER=reading`` one
event per reading whose data is the reading itself (the contract before batching).
:func:`readings_of` reads both.

With an outbox (``EVENTS_OUTBOX``), ``reading.recorded`` events are not published from
here: they are added to the outbox table in a transaction right after the readings'
commit and before the acks, with an id derived from ``(device_id, ts)``, for every
reading of the batch (``ON CONFLICT DO NOTHING``), and the outbox relay publishes them.
The store COPYs on its own connection, outside any SQLAlchemy session, so the two
commits are separate; a crash between them leaves the messages unacknowledged, the
broker redelivers them and that batch adds the missing events. So a stored reading
always gets its event, and no event is written for a batch that was not stored.
``EVENTS_PER`` applies to events published from here; the outbox always holds one event
per reading, since its idempotent ids come from the readings.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from energy_common.cache import CacheKey, CacheManager
from energy_common.database import Database, Outbox
from energy_common.exceptions import EnergyError, ServiceUnavailableError
from energy_messaging import MQTTMessage
from energy_messaging.events import EventBus
from energy_monitoring import MetricsRegistry

from meter_service._repositories import READING_COLUMNS, ReadingStore
from meter_service._schemas import TelemetryPayload

__all__ = ["READING_EVENT", "EventsPer", "IngestStats", "TelemetryIngestor", "latest_key", "readings_of"]

logger = logging.getLogger("meter_service.ingest")

#: Event published on the bus for every committed batch (or every reading, ``EVENTS_PER=reading``).
READING_EVENT = "reading.recorded"
#: One ``reading.recorded`` per committed batch, or per stored reading.
EventsPer = Literal["batch", "reading"]
_EVENT_CONCURRENCY = 32
_RETRY_MAX = 5.0


def latest_key(device_id: str) -> tuple[str, str]:
    """Cache key of a meter's latest reading."""
    return ("latest", device_id)


def readings_of(data: Any) -> list[dict[str, Any]]:
    """The readings a ``reading.recorded`` event's data carries, in either contract.

    Args:
        data: ``Event.data``: ``{"readings": [...]}`` (per batch) or one reading (per reading).

    Example:
        >>> readings_of({"readings": [{"device_id": "m1", "ts": 1}]})
        [{'device_id': 'm1', 'ts': 1}]
        >>> readings_of({"device_id": "m1", "ts": 1})
        [{'device_id': 'm1', 'ts': 1}]
    """
    if isinstance(data, dict) and isinstance(data.get("readings"), list):
        return list(data["readings"])
    return [data]


@dataclass(slots=True)
class IngestStats:
    """Counters of the ingestion path (also exported as metrics)."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    batches: int = 0
    events: int = 0  # readings announced (in per-batch events or one event each)
    event_messages: int = 0  # events published
    store_failures: int = 0
    last_batch: int = 0
    store_seconds: float = 0.0
    publish_seconds: float = 0.0


Row = dict[str, Any]


class TelemetryIngestor:
    """Batch telemetry into the database, then update the cache and publish events.

    Args:
        db: The database.
        cache: Where each meter's latest reading is kept.
        bus: Event bus for ``reading.recorded`` (None: no events).
        metrics: Registry for the ingestion metrics.
        batch_size: Flush when this many readings wait.
        max_delay: Flush at the latest this many seconds after the first reading arrived.
        copy: Kept for compatibility (the store always COPYs on PostgreSQL).
        flushers: Batches written at once (overlaps database round trips; 1 on SQLite,
            whose writers queue anyway).
        readings: Where batches are stored (default: a :class:`ReadingStore` on ``db``
            without its maintenance task).
        outbox: Write ``reading.recorded`` events to this outbox instead of publishing
            them (a relay publishes them; see the module docstring).
        event_source: CloudEvents ``source`` of the outbox events.
        events_per: ``"batch"``: one ``reading.recorded`` per committed batch with its new
            readings; ``"reading"``: one per stored reading (see the module docstring).
    """

    def __init__(
        self,
        db: Database,
        cache: CacheManager,
        bus: EventBus | None,
        metrics: MetricsRegistry,
        *,
        batch_size: int = 1000,
        max_delay: float = 0.05,
        copy: bool = True,
        flushers: int = 4,
        readings: ReadingStore | None = None,
        outbox: Outbox | None = None,
        event_source: str = "urn:energy:meter-service",
        events_per: EventsPer = "batch",
    ) -> None:
        self._db = db
        self._outbox = outbox
        self._event_source = event_source
        self._readings = readings or ReadingStore(db, secrets.token_bytes(32), maintenance_interval=None)
        self._cache = cache
        self._bus = bus
        self._metrics = metrics
        self._batch_size = batch_size
        self._max_delay = max_delay
        del copy  # the store decides: COPY on PostgreSQL, executemany on SQLite
        self._buffer: list[tuple[Row, asyncio.Future[None]]] = []
        self._has_items = asyncio.Event()
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._slots = asyncio.Semaphore(flushers if db.is_postgres else 1)
        self._flushing: set[asyncio.Task[None]] = set()
        self._event_slots = asyncio.Semaphore(_EVENT_CONCURRENCY)
        self._events_per = events_per
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stats = IngestStats()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the flusher task."""
        self._loop = asyncio.get_running_loop()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="meter-ingest-flusher")

    async def aclose(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - a shutdown budget
        """Flush what is buffered (within ``timeout``), then stop the flusher.

        Readings still unstored then are dropped unacknowledged: the broker redelivers them.
        """
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            self._has_items.set()
            self._full.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
                if self._flushing:
                    await asyncio.wait(set(self._flushing), timeout=timeout)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for flush in list(self._flushing):
                flush.cancel()
            await asyncio.gather(*self._flushing, return_exceptions=True)
        for _, future in self._buffer:
            future.cancel()
        self._buffer.clear()

    # ------------------------------------------------------------------ MQTT handler
    async def handle(self, message: MQTTMessage) -> None:
        """MQTT handler: queue the validated reading and wait until it is committed."""
        payload: TelemetryPayload = message.payload
        row = {
            "device_id": message.params["device_id"],
            "ts": payload.ts,
            "power_w": payload.power_w,
            "voltage_v": payload.voltage_v,
            "energy_kwh": payload.energy_kwh,
        }
        loop = self._loop or asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        buffer = self._buffer
        buffer.append((row, future))
        self.stats.received += 1
        if len(buffer) == 1:
            self._has_items.set()
        if len(buffer) >= self._batch_size:
            self._full.set()
        await future

    # ------------------------------------------------------------------ flusher
    async def _run(self) -> None:
        while not (self._closing and not self._buffer):
            await self._has_items.wait()
            if len(self._buffer) < self._batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self._max_delay)
            batch = self._buffer[: self._batch_size]
            del self._buffer[: self._batch_size]
            if len(self._buffer) < self._batch_size:
                self._full.clear()
            if not self._buffer:
                self._has_items.clear()
            if batch:
                await self._slots.acquire()
                flush = asyncio.create_task(self._flush_in_slot(batch), name="meter-ingest-batch")
                self._flushing.add(flush)
                flush.add_done_callback(self._flushing.discard)

    async def _flush_in_slot(self, batch: list[tuple[Row, asyncio.Future[None]]]) -> None:
        try:
            await self._flush(batch)
        except Exception:  # a bug, not a database outage (those are retried): fail the handlers loudly
            logger.exception("a batch of %d readings failed after storing", len(batch))
            error = ServiceUnavailableError("The reading batch failed; see the service log.")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
        finally:
            self._slots.release()

    async def _flush(self, batch: list[tuple[Row, asyncio.Future[None]]]) -> None:
        unique: dict[tuple[str, int], Row] = {}
        for row, _ in batch:
            unique.setdefault((row["device_id"], row["ts"]), row)
        rows = list(unique.values())
        delay = 0.1
        while True:
            started = time.perf_counter()
            try:
                stored = await self._store(rows)
                self.stats.store_seconds += time.perf_counter() - started
                break
            except EnergyError as exc:
                # Hold the handlers (and so the acks): the broker keeps the messages meanwhile.
                if self._closing:
                    logger.warning("stopping with %d unstored readings; the broker redelivers them", len(rows))
                    for _, future in batch:
                        future.cancel()
                    return
                self.stats.store_failures += 1
                self._metrics.increment_counter("meter.ingest.store_failures")
                logger.warning("storing %d readings failed (%s); retrying in %.1f s", len(rows), exc.message, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
        if self._outbox is not None and not await self._add_events(rows, batch):
            return
        stats = self.stats
        stats.batches += 1
        stats.last_batch = len(batch)
        stats.stored += len(stored)
        stats.duplicates += len(batch) - len(stored)
        self._metrics.increment_counter("meter.readings.stored", len(stored))
        if len(batch) != len(stored):
            self._metrics.increment_counter("meter.readings.duplicates", len(batch) - len(stored))
        self._metrics.observe("meter.ingest.batch_size", len(batch), buckets=(1, 10, 50, 100, 250, 500, 1000, 5000))
        await self._update_cache(stored)
        for _, future in batch:
            if not future.done():
                future.set_result(None)
        if self._bus is not None and stored and self._outbox is None:
            started = time.perf_counter()
            await self._publish_events(stored)
            self.stats.publish_seconds += time.perf_counter() - started

    async def _store(self, rows: list[Row]) -> list[Row]:
        """Store the batch; return the rows that were new (all of them unless redelivered)."""
        return await self._readings.store_batch(rows)

    async def _add_events(self, rows: list[Row], batch: list[tuple[Row, asyncio.Future[None]]]) -> bool:
        """Add the batch's events to the outbox (retried like the store); False when stopping first."""
        from energy_messaging.events import build_event  # noqa: PLC0415 - with an outbox only
        from energy_messaging.events.outbox import outbox_message  # noqa: PLC0415

        outbox = self._outbox
        assert outbox is not None  # noqa: S101 - checked by the caller
        messages = []
        for row in rows:
            # The id of a reading's event is derived from its key, so a redelivery adds it once.
            event_id = hashlib.sha256(f"{row['device_id']}\x00{row['ts']}".encode()).hexdigest()[:32]
            data = {name: row[name] for name in READING_COLUMNS}
            messages.append(
                outbox_message(
                    build_event(READING_EVENT, data, source=self._event_source, event_id=event_id), key=row["device_id"]
                )
            )
        delay = 0.1
        while True:
            try:
                async with self._db.session() as session:
                    await outbox.add_many(session, messages)
                self.stats.events += len(messages)
                return True
            except EnergyError as exc:
                if self._closing:
                    for _, future in batch:
                        future.cancel()
                    return False
                self._metrics.increment_counter("meter.events.failed")
                logger.warning("adding %d events to the outbox failed (%s); retrying", len(messages), exc.message)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)

    async def _update_cache(self, rows: list[Row]) -> None:
        latest: dict[CacheKey, Mapping[str, Any]] = {}
        for row in rows:
            key = latest_key(row["device_id"])
            current = latest.get(key)
            if current is None or row["ts"] > current["ts"]:
                latest[key] = row
        if latest:
            # Fails open: a cache outage never stops ingestion.
            await self._cache.set_many(latest, expire=86_400)

    async def _publish_events(self, rows: list[Row]) -> None:
        bus = self._bus
        assert bus is not None  # noqa: S101 - checked by the caller
        if self._events_per == "batch":
            readings = [{name: row[name] for name in READING_COLUMNS} for row in rows]
            try:
                await bus.publish(READING_EVENT, {"readings": readings})
                self.stats.events += len(readings)
                self.stats.event_messages += 1
            except EnergyError as exc:
                self._metrics.increment_counter("meter.events.failed")
                logger.warning("reading.recorded event of %d readings not published: %s", len(rows), exc.message)
            return

        async def publish(row: Row) -> None:
            async with self._event_slots:
                try:
                    await bus.publish(READING_EVENT, {name: row[name] for name in READING_COLUMNS})
                    self.stats.events += 1
                    self.stats.event_messages += 1
                except EnergyError as exc:
                    self._metrics.increment_counter("meter.events.failed")
                    logger.warning("reading.recorded event not published: %s", exc.message)

        await asyncio.gather(*(publish(row) for row in rows))
