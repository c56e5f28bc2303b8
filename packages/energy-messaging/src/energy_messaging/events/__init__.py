"""The event bus: CloudEvents envelopes over consumer groups, in process or on Redis Streams.

Delivery is at least once: an event is acknowledged after its handlers succeeded,
redelivered after ``min_idle`` seconds when a delivery failed or its consumer died
(then after growing, jittered delays: ``retry_backoff``, ``max_retry_delay``), and
moved to the dead-letter stream (with the reason) after ``max_deliveries``.
:mod:`energy_messaging.deadletters` lists, replays and purges dead letters;
:mod:`energy_messaging.events.outbox` relays a transactional outbox.
Wrap handlers with :func:`idempotent` to process a redelivered event once.
Give the bus a :class:`~energy_messaging.mqtt.MetricsSink` (``metrics=``) for its built-in metrics: events
published and consumed by outcome, handler time, dead letters by reason, and each
consumer group's lag and pending count.

The Redis backend lives in :mod:`energy_messaging.events.redis_streams` (extra
``redis``); :func:`create_event_bus` imports it only for a ``redis://`` URL.

Example:
    >>> import asyncio
    >>> from energy_messaging.events import Event, create_event_bus
    >>> async def main() -> str:
    ...     async with create_event_bus("memory://", group="billing") as bus:
    ...         got: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    ...
    ...         @bus.subscribe("reading.stored")
    ...         async def on_reading(event: Event) -> None:
    ...             got.set_result(event.data["meter"])
    ...
    ...         await bus.publish("reading.stored", {"meter": "m1"})
    ...         return await asyncio.wait_for(got, 5)
    >>> asyncio.run(main())
    'm1'
"""

from energy_messaging.events._base import TransportEventBus
from energy_messaging.events._bus import DeadLetter, DeadLetterHook, EventBus, EventBusStats, EventHandler
from energy_messaging.events._envelope import (
    CONTENT_TYPE,
    MAX_EVENT_BYTES,
    SPECVERSION,
    Event,
    build_event,
    decode_event,
    encode_event,
    validate_event_type,
)
from energy_messaging.events._errors import (
    DeadLetterNotFoundError,
    DeadLetterReplayError,
    EventBusClosedError,
    EventBusConfigurationError,
    EventBusConnectionError,
    EventBusError,
    EventInProgressError,
    InvalidEventError,
)
from energy_messaging.events._factory import create_event_bus
from energy_messaging.events._idempotency import (
    IdempotencyState,
    IdempotencyStore,
    InMemoryIdempotencyStore,
    idempotent,
)
from energy_messaging.events._memory import InMemoryEventBus, MemoryStreams

__all__ = [
    "CONTENT_TYPE",
    "MAX_EVENT_BYTES",
    "SPECVERSION",
    "DeadLetter",
    "DeadLetterHook",
    "DeadLetterNotFoundError",
    "DeadLetterReplayError",
    "Event",
    "EventBus",
    "EventBusClosedError",
    "EventBusConfigurationError",
    "EventBusConnectionError",
    "EventBusError",
    "EventBusStats",
    "EventHandler",
    "EventInProgressError",
    "IdempotencyState",
    "IdempotencyStore",
    "InMemoryEventBus",
    "InMemoryIdempotencyStore",
    "InvalidEventError",
    "MemoryStreams",
    "TransportEventBus",
    "build_event",
    "create_event_bus",
    "decode_event",
    "encode_event",
    "idempotent",
    "validate_event_type",
]
