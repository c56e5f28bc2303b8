"""The bus logic every backend shares: lifecycle, publish, subscribe, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Self, overload

from opentelemetry import trace

from energy_messaging._metrics import MetricsSink, is_metrics_sink
from energy_messaging.events._bus import DeadLetter, DeadLetterHook, EventBusStats, EventHandler, decode_dead_letter
from energy_messaging.events._consumer import (
    ACK_ON_EXIT_TIMEOUT,
    Consumer,
    ConsumerSettings,
    tracing_enabled,
)
from energy_messaging.events._envelope import (
    MAX_EVENT_BYTES,
    Event,
    build_event,
    decode_event,
    encode_event,
    validate_event_type,
)
from energy_messaging.events._errors import EventBusClosedError, EventBusConfigurationError
from energy_messaging.events._metrics import BusMetrics
from energy_messaging.events._transport import EVENT_FIELD, Transport

__all__ = ["TransportEventBus", "default_consumer_name"]

tracer = trace.get_tracer("energy_messaging.events")
_UNCOUNTED = contextlib.nullcontext()


def default_consumer_name() -> str:
    """Return a consumer name unique to this replica: ``<host>-<pid>-<random>``."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class TransportEventBus:
    """An :class:`~energy_messaging.events.EventBus` over a stream :class:`Transport`.

    Backends subclass it and supply the transport; see
    :class:`~energy_messaging.events.InMemoryEventBus` for the options. With
    ``metrics`` (a :class:`~energy_messaging.mqtt.MetricsSink`, such as energy-monitoring's
    ``MetricsRegistry``) the bus records the metrics of
    :mod:`energy_messaging.events._metrics` and samples its group's lag every second.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        group: str,
        consumer: str | None,
        namespace: str,
        source: str,
        max_deliveries: int,
        min_idle: float,
        retry_backoff: float = 2.0,
        max_retry_delay: float = 300.0,
        batch_size: int,
        block: float,
        maxlen: int,
        max_event_bytes: int,
        start_from: Literal["new", "oldest"],
        shutdown_timeout: float,
        on_dead_letter: DeadLetterHook | None,
        metrics: MetricsSink | None = None,
    ) -> None:
        _require(metrics is None or is_metrics_sink(metrics), "metrics", metrics)
        _require(bool(group) and group.isprintable() and " " not in group, "group", group)
        _require(max_deliveries >= 1, "max_deliveries", max_deliveries)
        _require(min_idle > 0, "min_idle", min_idle)
        _require(1.0 <= retry_backoff <= 10.0, "retry_backoff", retry_backoff)
        _require(max_retry_delay > 0, "max_retry_delay", max_retry_delay)
        _require(batch_size >= 1, "batch_size", batch_size)
        _require(block > 0, "block", block)
        _require(maxlen >= 1, "maxlen", maxlen)
        _require(1024 <= max_event_bytes <= 64 * MAX_EVENT_BYTES, "max_event_bytes", max_event_bytes)
        _require(start_from in ("new", "oldest"), "start_from", start_from)
        _require(shutdown_timeout >= 0, "shutdown_timeout", shutdown_timeout)
        _require(bool(source), "source", source)
        self._transport = transport
        self._namespace = namespace
        self._source = source
        self._shutdown_timeout = shutdown_timeout
        self._settings = ConsumerSettings(
            group=group,
            consumer=consumer or default_consumer_name(),
            max_deliveries=max_deliveries,
            min_idle=min_idle,
            batch_size=batch_size,
            block=block,
            maxlen=maxlen,
            max_event_bytes=max_event_bytes,
            retry_backoff=retry_backoff,
            max_retry_delay=max_retry_delay,
        )
        self._handlers: dict[str, list[EventHandler]] = {}
        self._streams: dict[str, str] = {}
        self._stats = EventBusStats()
        self._metrics = BusMetrics(metrics, group) if metrics is not None else None
        self._consumer = Consumer(
            transport,
            self._settings,
            handlers=self._handlers,
            streams=self._streams,
            dead_letter_stream=self.dead_letter_stream,
            start_id="$" if start_from == "new" else "0",
            stats=self._stats,
            on_dead_letter=on_dead_letter,
            metrics=self._metrics,
        )
        self._task: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._running = False
        self._closed = False

    # ------------------------------------------------------------------ naming

    @property
    def group(self) -> str:
        """Consumer group shared by the replicas of one service."""
        return self._settings.group

    @property
    def consumer(self) -> str:
        """This replica's consumer name inside the group."""
        return self._settings.consumer

    @property
    def stats(self) -> EventBusStats:
        """Counters of this instance."""
        return self._stats

    @property
    def stream_transport(self) -> Transport:
        """The stream store under the bus (for tools such as :mod:`energy_messaging.deadletters`)."""
        return self._transport

    @property
    def dead_letter_stream(self) -> str:
        """Key of the dead-letter stream: ``<namespace>:dead-letter``."""
        return f"{self._namespace}:dead-letter"

    def stream_for(self, event_type: str) -> str:
        """Return the stream key of an event type: ``<namespace>:stream:<event_type>``."""
        return f"{self._namespace}:stream:{validate_event_type(event_type)}"

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the consumer task (when there are subscriptions); idempotent."""
        if self._closed:
            raise EventBusClosedError("This event bus was closed; create a new one.")
        self._running = True
        self._spawn()
        if self._metrics is not None and self._sampler is None:
            self._sampler = asyncio.create_task(
                self._metrics.run(self._transport, self._streams, self._stats),
                name=f"energy-events-metrics:{self.consumer}",
            )

    def _spawn(self) -> None:
        if self._running and self._task is None and self._streams:
            self._task = asyncio.create_task(self._consumer.run(), name=f"energy-events-consumer:{self.consumer}")

    async def aclose(self) -> None:
        """Let the in-flight batch finish (up to ``shutdown_timeout`` s), stop the consumer, release."""
        if self._closed:
            return
        self._closed = True
        self._running = False
        self._consumer.stopping = True
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        task, self._task = self._task, None
        if task is not None:
            if not self._consumer.idle.is_set() and self._shutdown_timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._consumer.idle.wait(), self._shutdown_timeout)
                if self._consumer.idle.is_set():
                    # The batch is done: the loop sees ``stopping``, sends its acks and returns.
                    await asyncio.wait({task}, timeout=ACK_ON_EXIT_TIMEOUT + 0.5)
            task.cancel()  # interrupts a blocking read, or a handler past the shutdown timeout
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ API

    async def publish(
        self,
        event_type: str,
        data: Any,
        *,
        source: str | None = None,
        event_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Event:
        """Publish one event and return it.

        The envelope takes the current correlation id and trace context unless
        ``correlation_id`` is given.

        Args:
            event_type: e.g. ``"device.registered"`` (letters, digits, ``.``, ``_``, ``-``).
            data: JSON-ready data or a pydantic model.
            source: Overrides the bus's ``source`` for this event.
            event_id: Explicit event id (32 random hex characters by default).
            correlation_id: Explicit correlation id.

        Returns:
            The published :class:`Event`.

        Raises:
            InvalidEventError: Bad type, non-JSON data, or too large.
            EventBusClosedError: The bus is not running.
            EventBusConnectionError: The backend is unreachable.
        """
        if not self._running:
            raise EventBusClosedError()
        stream = self.stream_for(event_type)
        span = (
            tracer.start_as_current_span(f"{event_type} publish", kind=trace.SpanKind.PRODUCER)
            if tracing_enabled()
            else contextlib.nullcontext()
        )
        with self._counted({event_type: 1}), span:
            event = await self._send(
                stream,
                event_type=event_type,
                data=data,
                source=source,
                event_id=event_id,
                correlation_id=correlation_id,
            )
        self._stats.published += 1
        return event

    def _counted(self, counts: Mapping[str, int]) -> contextlib.AbstractContextManager[None]:
        """Count a publish of ``counts`` (event type -> events) as published or failed, if metrics are on."""
        return self._metrics.publishing(counts) if self._metrics is not None else _UNCOUNTED

    async def _send(
        self,
        stream: str,
        *,
        event_type: str,
        data: Any,
        source: str | None,
        event_id: str | None,
        correlation_id: str | None,
    ) -> Event:
        event = build_event(
            event_type,
            data,
            source=source or self._source,
            event_id=event_id,
            correlation_id=correlation_id,
        )
        raw = encode_event(event, max_bytes=self._settings.max_event_bytes)
        await self._transport.append(stream, {EVENT_FIELD: raw}, maxlen=self._settings.maxlen)
        return event

    async def publish_encoded(self, raw: bytes) -> Event:
        """Publish an event encoded already (an outbox row, a replayed dead letter) unchanged.

        The envelope is validated and sent to its type's stream as it is: same id,
        time, correlation id and trace context as when it was built.

        Raises:
            InvalidEventError: ``raw`` is not a valid event (or is too large).
            EventBusClosedError: The bus is not running.
            EventBusConnectionError: The backend is unreachable.
        """
        if not self._running:
            raise EventBusClosedError()
        event = decode_event(raw, max_bytes=self._settings.max_event_bytes)
        with self._counted({event.type: 1}):
            await self._transport.append(self.stream_for(event.type), {EVENT_FIELD: raw}, maxlen=self._settings.maxlen)
        self._stats.published += 1
        return event

    async def publish_encoded_many(self, raws: Sequence[bytes]) -> list[Event]:
        """Publish encoded events in order, in one round trip (see :meth:`publish_encoded`).

        On an error some of them may have been published: publish them all again
        (consumers de-duplicate by event id).

        Raises:
            InvalidEventError: One of them is not a valid event (none is sent then).
            EventBusClosedError: The bus is not running.
            EventBusConnectionError: The backend is unreachable.
        """
        if not self._running:
            raise EventBusClosedError()
        limit = self._settings.max_event_bytes
        events = [decode_event(raw, max_bytes=limit) for raw in raws]
        with self._counted(Counter(event.type for event in events)):
            await self._transport.append_many(
                [(self.stream_for(event.type), {EVENT_FIELD: raw}) for event, raw in zip(events, raws, strict=True)],
                maxlen=self._settings.maxlen,
            )
        self._stats.published += len(events)
        return events

    @overload
    def subscribe(self, event_type: str) -> Callable[[EventHandler], EventHandler]: ...

    @overload
    def subscribe(self, event_type: str, handler: EventHandler) -> EventHandler: ...

    def subscribe(
        self, event_type: str, handler: EventHandler | None = None
    ) -> EventHandler | Callable[[EventHandler], EventHandler]:
        """Register ``handler`` for ``event_type``; without a handler, return a decorator.

        Handlers of one type run in registration order for each delivery; the event is
        acknowledged when all succeeded, and delivered again (to all of them) when one
        raised. Subscribing while the bus runs starts consuming that type at once.

        Raises:
            InvalidEventError: Invalid event type.
        """
        stream = self.stream_for(event_type)

        def register(func: EventHandler) -> EventHandler:
            if self._metrics is not None and event_type not in self._handlers:
                self._metrics.subscribed(event_type)
            self._handlers.setdefault(event_type, []).append(func)
            self._streams[stream] = event_type
            self._spawn()
            return func

        return register if handler is None else register(handler)

    async def read_dead_letters(self, count: int = 100) -> list[DeadLetter]:
        """Return up to ``count`` entries of the dead-letter stream, oldest first.

        Raises:
            EventBusConnectionError: The backend is unreachable.
        """
        entries = await self._transport.range(self.dead_letter_stream, count)
        return [decode_dead_letter(fields) for _, fields in entries]


def _require(condition: bool, name: str, value: object) -> None:
    if not condition:
        raise EventBusConfigurationError(f"Invalid event bus option {name}={value!r}.", {"option": name})
