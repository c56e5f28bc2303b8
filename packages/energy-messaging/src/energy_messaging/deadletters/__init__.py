"""Dead letters of the event bus and of MQTT: list, inspect, replay, purge.

Both kinds live in a stream (Redis Streams, or in-memory), so each letter has an id:

* event bus: the bus's ``<namespace>:dead-letter`` stream — :func:`event_dead_letters`;
* MQTT: a stream filled by :meth:`MQTTDeadLetterStore.record`, the manager's
  ``on_dead_letter`` hook (exact payload bytes, stored before the message is acknowledged).

A :class:`DeadLetterQueue` lists them (``list``), shows one (``get``), sends the named
ones back to their stream or topic and removes them (``replay``), and deletes exactly the
named ones (``purge``). The same from a shell::

    python -m energy_messaging.deadletters --redis redis://127.0.0.1:6379/0 events list
    python -m energy_messaging.deadletters --redis ... events show 1700000000000-0
    python -m energy_messaging.deadletters --redis ... events replay 1700000000000-0
    python -m energy_messaging.deadletters --redis ... mqtt --mqtt-host 127.0.0.1 replay <id>
    python -m energy_messaging.deadletters --redis ... mqtt purge <id> <id>

Errors: :class:`~energy_messaging.events.DeadLetterNotFoundError` (404, unknown or
malformed id), :class:`~energy_messaging.events.DeadLetterReplayError` (502, the letter
is kept).

Example:
    >>> import asyncio
    >>> from energy_messaging.events import InMemoryEventBus
    >>> async def main() -> int:
    ...     async with InMemoryEventBus() as bus:
    ...         return len(await event_dead_letters(bus).list())
    >>> asyncio.run(main())
    0
"""

from energy_messaging.deadletters._queue import DeadLetterQueue, DeadLetterRecord, Republish, check_ids
from energy_messaging.deadletters._sources import (
    DEFAULT_MQTT_STREAM,
    MQTTDeadLetterStore,
    MQTTRepublisher,
    event_dead_letters,
)

__all__ = [
    "DEFAULT_MQTT_STREAM",
    "DeadLetterQueue",
    "DeadLetterRecord",
    "MQTTDeadLetterStore",
    "MQTTRepublisher",
    "Republish",
    "check_ids",
    "event_dead_letters",
]
