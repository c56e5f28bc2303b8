"""The event-bus seam: the :class:`EventBus` Protocol and the records it hands out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self, overload, runtime_checkable

from energy_messaging.events._envelope import Event, decode_event
from energy_messaging.events._errors import InvalidEventError
from energy_messaging.events._transport import EVENT_FIELD

__all__ = [
    "DeadLetter",
    "DeadLetterHook",
    "EventBus",
    "EventBusStats",
    "EventHandler",
    "decode_dead_letter",
    "encode_dead_letter",
]

#: A subscriber: an async callable that receives one :class:`Event`. Raising makes the
#: event be delivered again (up to the bus's ``max_deliveries``, then dead-lettered).
EventHandler = Callable[[Event], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An entry moved to the dead-letter stream, with the reason.

    Attributes:
        event_type: Event type of the stream the entry came from.
        entry_id: Its id in that stream.
        reason: Why it was dead-lettered (malformed, handler failures, too many deliveries).
        deliveries: How many times it had been delivered.
        payload: The raw entry as received (``None`` when the entry had no event field).
        group: Consumer group that gave up on it.
        consumer: Consumer that moved it.
        time: When it was moved (UTC).
    """

    event_type: str
    entry_id: str
    reason: str
    deliveries: int
    payload: bytes | None
    group: str
    consumer: str
    time: datetime

    def event(self) -> Event | None:
        """Return the decoded event, or ``None`` when the payload is not a valid event."""
        if self.payload is None:
            return None
        try:
            return decode_event(self.payload)
        except InvalidEventError:
            return None


#: Called (sync or async) for each dead-lettered entry; errors it raises are logged.
DeadLetterHook = Callable[[DeadLetter], Awaitable[None] | None]


@dataclass(slots=True)
class EventBusStats:
    """Counters of one bus instance, for health checks and metrics.

    Attributes:
        published: Events published.
        delivered: Deliveries to this consumer (first deliveries and redeliveries).
        redelivered: Deliveries of events claimed after another delivery went idle.
        handled: Events whose handlers all succeeded (and were acknowledged).
        failed: Handler runs that raised.
        dead_lettered: Entries moved to the dead-letter stream.
        connection_errors: Failed attempts to reach the backend from the consumer loop.
        connected: Whether the consumer loop's last backend call succeeded.
    """

    published: int = 0
    delivered: int = 0
    redelivered: int = 0
    handled: int = 0
    failed: int = 0
    dead_lettered: int = 0
    connection_errors: int = 0
    connected: bool = True


@runtime_checkable
class EventBus(Protocol):
    """Publish events and consume them through a consumer group, at least once.

    Every backend (in-process, Redis Streams) gives the same semantics: an event is
    acknowledged only after all handlers of its type succeeded; a failed or abandoned
    delivery is retried after ``min_idle`` seconds, by any consumer of the group; after
    ``max_deliveries`` deliveries it goes to the dead-letter stream with the reason.
    Malformed entries go there at once. Use :func:`idempotent` so a redelivered event
    is processed once.

    Example:
        >>> async def main() -> None:  # doctest: +SKIP
        ...     async with create_event_bus("memory://") as bus:
        ...
        ...         @bus.subscribe("device.registered")
        ...         async def on_registered(event: Event) -> None:
        ...             print(event.data["device_id"])
        ...
        ...         await bus.publish("device.registered", {"device_id": "sensor001"})
    """

    @property
    def stats(self) -> EventBusStats:
        """Counters of this instance."""
        ...

    async def publish(
        self,
        event_type: str,
        data: Any,
        *,
        source: str | None = None,
        event_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Event:
        """Publish one event and return it (with its id)."""
        ...

    @overload
    def subscribe(self, event_type: str) -> Callable[[EventHandler], EventHandler]: ...

    @overload
    def subscribe(self, event_type: str, handler: EventHandler) -> EventHandler: ...

    def subscribe(
        self, event_type: str, handler: EventHandler | None = None
    ) -> EventHandler | Callable[[EventHandler], EventHandler]:
        """Register a handler for an event type (also usable as a decorator)."""
        ...

    async def read_dead_letters(self, count: int = 100) -> list[DeadLetter]:
        """Return up to ``count`` dead-lettered entries, oldest first."""
        ...

    async def start(self) -> None:
        """Start the consumer (``async with`` calls it)."""
        ...

    async def aclose(self) -> None:
        """Drain the in-flight handler (within the shutdown timeout), stop and release."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def encode_dead_letter(letter: DeadLetter) -> dict[str, bytes]:
    """Return the dead-letter stream fields of a :class:`DeadLetter`."""
    fields = {
        "event_type": letter.event_type.encode(),
        "entry_id": letter.entry_id.encode(),
        "reason": letter.reason.encode(),
        "deliveries": str(letter.deliveries).encode(),
        "group": letter.group.encode(),
        "consumer": letter.consumer.encode(),
        "time": letter.time.isoformat().encode(),
    }
    if letter.payload is not None:
        fields[EVENT_FIELD] = letter.payload
    return fields


def decode_dead_letter(fields: Mapping[str, bytes]) -> DeadLetter:
    """Rebuild a :class:`DeadLetter` from dead-letter stream fields (lenient on bad values)."""

    def text(name: str) -> str:
        return fields.get(name, b"").decode(errors="replace")

    try:
        deliveries = int(text("deliveries") or 0)
    except ValueError:
        deliveries = 0
    try:
        time = datetime.fromisoformat(text("time"))
    except ValueError:
        time = datetime.fromtimestamp(0, UTC)
    return DeadLetter(
        event_type=text("event_type"),
        entry_id=text("entry_id"),
        reason=text("reason"),
        deliveries=deliveries,
        payload=fields.get(EVENT_FIELD),
        group=text("group"),
        consumer=text("consumer"),
        time=time,
    )
