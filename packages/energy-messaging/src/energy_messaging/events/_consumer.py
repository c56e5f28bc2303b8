"""The consumer loop shared by every backend: read, claim, dispatch, ack, dead-letter."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from energy_common.context import correlation_scope
from energy_common.propagation import extract_context
from opentelemetry import context as otel_context
from opentelemetry import trace

from energy_messaging.events._bus import DeadLetter, DeadLetterHook, EventBusStats, EventHandler, encode_dead_letter
from energy_messaging.events._envelope import Event, decode_event
from energy_messaging.events._errors import EventBusConnectionError, InvalidEventError
from energy_messaging.events._metrics import BusMetrics, DeadLetterReason
from energy_messaging.events._transport import EVENT_FIELD, Entry, NoGroupError, Transport

__all__ = [
    "ACK_ON_EXIT_TIMEOUT",
    "Consumer",
    "ConsumerSettings",
    "retry_delay",
    "tracing_enabled",
]

logger = logging.getLogger("energy_messaging.events")
tracer = trace.get_tracer("energy_messaging.events")

_MAX_REASON = 500
ACK_ON_EXIT_TIMEOUT = 1.0
_EMPTY_CONTEXT = otel_context.Context()
_NO_SDK = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
_BACKOFF_MIN = 0.05
_BACKOFF_MAX = 5.0


class ConsumerSettings:
    """Consumer options validated once by the bus (plain attributes, read in the hot loop)."""

    __slots__ = (
        "batch_size",
        "block",
        "consumer",
        "group",
        "max_deliveries",
        "max_event_bytes",
        "max_retry_delay",
        "maxlen",
        "min_idle",
        "retry_backoff",
    )

    def __init__(
        self,
        *,
        group: str,
        consumer: str,
        max_deliveries: int,
        min_idle: float,
        batch_size: int,
        block: float,
        maxlen: int,
        max_event_bytes: int,
        retry_backoff: float = 2.0,
        max_retry_delay: float = 300.0,
    ) -> None:
        self.group = group
        self.retry_backoff = retry_backoff
        self.max_retry_delay = max_retry_delay
        self.consumer = consumer
        self.max_deliveries = max_deliveries
        self.min_idle = min_idle
        self.batch_size = batch_size
        self.block = block
        self.maxlen = maxlen
        self.max_event_bytes = max_event_bytes

    def retry_delay(self, entry_id: str, deliveries: int) -> float:
        """Seconds an entry delivered ``deliveries`` times waits before its next delivery.

        ``min_idle`` after the first delivery, then multiplied by ``retry_backoff`` per
        delivery up to ``max_retry_delay``, with up to 20 % jitter (stable per entry and
        attempt, so replicas agree) that never goes below ``min_idle``.
        """
        return retry_delay(
            self.min_idle, self.retry_backoff, self.max_retry_delay, deliveries, jitter=_jitter(entry_id, deliveries)
        )


def retry_delay(min_idle: float, backoff: float, cap: float, deliveries: int, *, jitter: float = 0.0) -> float:
    """Exponential retry delay: ``min(cap, min_idle * backoff ** (deliveries - 1))``, less ``jitter`` (0-1) of it.

    Example:
        >>> [retry_delay(1.0, 2.0, 5.0, d) for d in (1, 2, 3, 4)]
        [1.0, 2.0, 4.0, 5.0]
    """
    exponent = min(max(deliveries - 1, 0), 64)
    base = min(max(cap, min_idle), min_idle * backoff**exponent)
    return max(min_idle, base * (1.0 - 0.2 * jitter))


def _jitter(entry_id: str, deliveries: int) -> float:
    return (zlib.crc32(f"{entry_id}/{deliveries}".encode()) & 0xFFFF) / 0xFFFF


class Consumer:
    """Runs the handlers of one bus over a :class:`Transport` (owned by the bus's task)."""

    def __init__(
        self,
        transport: Transport,
        settings: ConsumerSettings,
        *,
        handlers: Mapping[str, list[EventHandler]],
        streams: Mapping[str, str],
        dead_letter_stream: str,
        start_id: str,
        stats: EventBusStats,
        on_dead_letter: DeadLetterHook | None,
        metrics: BusMetrics | None = None,
    ) -> None:
        self._transport = transport
        self._metrics = metrics
        self._settings = settings
        self._handlers = handlers  # event type -> handlers (shared with the bus, may grow)
        self._streams = streams  # stream key -> event type (shared with the bus, may grow)
        self._dead_letter_stream = dead_letter_stream
        self._start_id = start_id
        self._stats = stats
        self._on_dead_letter = on_dead_letter
        self._acks: dict[str, list[str]] = {}  # handled, not yet acknowledged: stream -> entry ids
        self.stopping = False
        self.idle = asyncio.Event()
        self.idle.set()

    async def run(self) -> None:
        """Consume until cancelled or ``stopping``; backend outages are retried with backoff.

        Acknowledgements of a batch travel with the next read (one round trip less per
        batch); on the way out, cancelled or stopped, the outstanding ones are sent.
        """
        try:
            await self._run()
        finally:
            if self._acks:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._flush_acks(), ACK_ON_EXIT_TIMEOUT)

    def _stop_requested(self) -> bool:
        # A method, not the attribute: ``aclose()`` sets it while this task awaits.
        return self.stopping

    async def _flush_acks(self) -> None:
        for stream, ids in list(self._acks.items()):
            await self._transport.ack(stream, self._settings.group, ids)
            del self._acks[stream]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        ready: set[str] = set()
        recreate = False
        backoff = _BACKOFF_MIN
        claim_interval = max(0.01, min(self._settings.min_idle / 2, 5.0))
        next_claim = 0.0
        while not self.stopping:
            streams = list(self._streams)
            try:
                for stream in streams:
                    if stream not in ready:
                        # After NOGROUP the stream was deleted or the server is new: read it from the start.
                        await self._transport.ensure_group(
                            stream, self._settings.group, start_id="0" if recreate else self._start_id
                        )
                        ready.add(stream)
                recreate = False
                if loop.time() >= next_claim:
                    next_claim = loop.time() + claim_interval
                    for stream in streams:
                        await self._claim(stream)
                    if self._stop_requested():
                        break
                block = min(self._settings.block, max(0.0, next_claim - loop.time()))
                acks, self._acks = self._acks, {}
                try:
                    entries = await self._transport.read_new(
                        streams,
                        self._settings.group,
                        self._settings.consumer,
                        count=self._settings.batch_size,
                        block=block,
                        acks=acks,
                    )
                except BaseException:
                    # Unknown whether they reached the server; XACK is idempotent, so send them again.
                    for stream, ids in acks.items():
                        self._acks.setdefault(stream, []).extend(ids)
                    raise
                await self._handle_batch(entries)
                if not self._stats.connected:
                    logger.info("Event backend reachable again; consumer %s resumes", self._settings.consumer)
                    self._stats.connected = True
                backoff = _BACKOFF_MIN
            except NoGroupError:
                logger.warning("Consumer group %s is missing (stream deleted?); recreating it", self._settings.group)
                ready.clear()
                recreate = True
            except EventBusConnectionError as exc:
                self._stats.connection_errors += 1
                if self._stats.connected:
                    logger.warning("Event backend unreachable, consumer retries with backoff: %s", exc.message)
                    self._stats.connected = False
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not crypto
                backoff = min(backoff * 2, _BACKOFF_MAX)
            except Exception:
                logger.exception("Event consumer iteration failed; retrying")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)

    async def _claim(self, stream: str) -> None:
        entries = await self._transport.claim_stale(
            stream,
            self._settings.group,
            self._settings.consumer,
            min_idle=self._settings.min_idle,
            count=self._settings.batch_size,
            delay=self._settings.retry_delay,
        )
        if entries:
            self._stats.redelivered += len(entries)
            await self._handle_batch(entries)

    async def _handle_batch(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        self.idle.clear()
        try:
            for entry in entries:
                if self.stopping:
                    break  # unhandled entries stay pending and are claimed by another consumer
                if await self._process(entry):
                    self._acks.setdefault(entry.stream, []).append(entry.entry_id)
        finally:
            self.idle.set()

    async def _process(self, entry: Entry) -> bool:
        """Handle one entry; return True when it must be acknowledged."""
        self._stats.delivered += 1
        event_type = self._streams.get(entry.stream, "")
        payload = entry.payload
        if payload is None:
            return await self._dead_letter(entry, event_type, "malformed", f"malformed entry: no '{EVENT_FIELD}' field")
        try:
            event = decode_event(payload, max_bytes=self._settings.max_event_bytes)
        except InvalidEventError as exc:
            return await self._dead_letter(entry, event_type, "invalid_event", f"malformed event: {exc.message}")
        if event.type != event_type:
            return await self._dead_letter(
                entry,
                event_type,
                "type_mismatch",
                f"event type {event.type!r} does not match stream type {event_type!r}",
            )
        limit = self._settings.max_deliveries
        if entry.deliveries > limit:
            return await self._dead_letter(
                entry, event_type, "max_deliveries", f"delivered {entry.deliveries} times, above the maximum of {limit}"
            )
        metrics = self._metrics
        started = time.perf_counter() if metrics is not None else 0.0
        try:
            await self._dispatch(event, self._handlers.get(event_type, ()))
        except Exception as exc:
            self._stats.failed += 1
            logger.warning(
                "Handler for event %s (%s) failed on delivery %d of %d: %s",
                event.id,
                event.type,
                entry.deliveries,
                limit,
                type(exc).__name__,
                exc_info=True,
            )
            if entry.deliveries >= limit:
                if metrics is not None:
                    metrics.observe(event_type, time.perf_counter() - started)
                reason = f"handler failed on delivery {entry.deliveries} of {limit}: {type(exc).__name__}: {exc}"
                return await self._dead_letter(entry, event_type, "handler_error", reason)
            if metrics is not None:
                metrics.consumed(event_type, "retry", time.perf_counter() - started)
            return False  # stays pending; redelivered after its retry delay
        self._stats.handled += 1
        if metrics is not None:
            metrics.consumed(event_type, "ok", time.perf_counter() - started)
        return True

    @staticmethod
    async def _dispatch(event: Event, handlers: Sequence[EventHandler]) -> None:
        """Run the handlers under the event's correlation id and trace context."""
        # Without trace headers the handler starts from an empty context, not the consumer task's.
        parent = extract_context(event.carrier()) if event.traceparent is not None else _EMPTY_CONTEXT
        token = otel_context.attach(parent)
        try:
            with correlation_scope(event.correlationid):
                if tracing_enabled():
                    with tracer.start_as_current_span(
                        f"{event.type} process",
                        kind=trace.SpanKind.CONSUMER,
                        attributes={"messaging.system": "energy-events", "messaging.message.id": event.id},
                    ):
                        for handler in handlers:
                            await handler(event)
                else:
                    for handler in handlers:
                        await handler(event)
        finally:
            otel_context.detach(token)

    async def _dead_letter(self, entry: Entry, event_type: str, code: DeadLetterReason, reason: str) -> bool:
        reason = reason[:_MAX_REASON]
        letter = DeadLetter(
            event_type=event_type,
            entry_id=entry.entry_id,
            reason=reason,
            deliveries=entry.deliveries,
            payload=entry.payload,
            group=self._settings.group,
            consumer=self._settings.consumer,
            time=datetime.now(UTC),
        )
        await self._transport.append(self._dead_letter_stream, encode_dead_letter(letter), maxlen=self._settings.maxlen)
        self._stats.dead_lettered += 1
        if self._metrics is not None:
            self._metrics.consumed(event_type, "dead_letter")
            self._metrics.dead_lettered(code)
        logger.warning("Dead-lettered entry %s of %s: %s", entry.entry_id, event_type or entry.stream, reason)
        if self._on_dead_letter is not None:
            try:
                result = self._on_dead_letter(letter)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("on_dead_letter hook failed for entry %s", entry.entry_id)
        return True


def tracing_enabled() -> bool:
    """Tell whether an OpenTelemetry SDK is configured (else spans are skipped: they would be no-ops)."""
    return not isinstance(trace.get_tracer_provider(), _NO_SDK)
