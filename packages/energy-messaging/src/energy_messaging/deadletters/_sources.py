"""The two dead-letter sources: the event bus's stream and a stream the MQTT hook fills."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from energy_messaging.deadletters._queue import DeadLetterQueue, DeadLetterRecord
from energy_messaging.events._base import TransportEventBus
from energy_messaging.events._bus import decode_dead_letter
from energy_messaging.events._transport import Transport

__all__ = ["DEFAULT_MQTT_STREAM", "MQTTDeadLetterStore", "MQTTRepublisher", "event_dead_letters"]

#: Key of the stream that holds MQTT dead letters by default.
DEFAULT_MQTT_STREAM = "energy:mqtt:dead-letter"


def event_dead_letters(bus: TransportEventBus) -> DeadLetterQueue:
    """The dead letters of an event bus (its ``<namespace>:dead-letter`` stream).

    A replay publishes the stored event unchanged (same id) to its type's stream, so
    every group subscribed to it receives it again: wrap handlers with
    :func:`~energy_messaging.events.idempotent` so those that processed it skip it.
    The bus must be running (``async with bus``) to replay.

    Example:
        >>> from energy_messaging.events import InMemoryEventBus
        >>> event_dead_letters(InMemoryEventBus()).stream
        'energy:events:dead-letter'
    """

    def decode(entry_id: str, fields: Mapping[str, bytes]) -> DeadLetterRecord:
        letter = decode_dead_letter(fields)
        return DeadLetterRecord(
            id=entry_id,
            kind="events",
            target=letter.event_type,
            reason=letter.reason,
            payload=letter.payload,
            time=letter.time,
            deliveries=letter.deliveries,
            details={"group": letter.group, "consumer": letter.consumer, "entry_id": letter.entry_id},
        )

    async def republish(record: DeadLetterRecord) -> None:
        assert record.payload is not None  # noqa: S101 - checked by the queue
        await bus.publish_encoded(record.payload)

    return DeadLetterQueue(bus.stream_transport, bus.dead_letter_stream, decode, republish)


class MQTTRepublisher(Protocol):
    """What replays MQTT dead letters: an :class:`~energy_messaging.MQTTManager` fits."""

    async def publish(self, topic: str, payload: object = None, *, qos: int = 1) -> None:
        """Publish ``payload`` (bytes as is) and wait for the broker's acknowledgement."""
        ...


class MQTTDeadLetterStore:
    """Keeps MQTT dead letters, exact bytes included, in a stream (Redis or in-memory).

    Pass :meth:`record` as the manager's ``on_dead_letter`` hook: the manager awaits it
    before acknowledging the message, so a letter is stored before the broker forgets
    the message. (The ``dead_letter_topic`` form is lossy, payload decoded and cut at
    4 KiB, and a topic cannot be listed or purged by id; a stream can.)

    Args:
        transport: The stream store, e.g. ``RedisStreamsTransport(client, owns_client=False)``
            or a :class:`~energy_messaging.events.MemoryStreams`.
        stream: Key of the dead-letter stream.
        maxlen: Approximate number of letters kept (oldest trimmed first).

    Example:
        >>> from energy_messaging.events import MemoryStreams
        >>> store = MQTTDeadLetterStore(MemoryStreams())
        >>> store.stream
        'energy:mqtt:dead-letter'
    """

    def __init__(self, transport: Transport, *, stream: str = DEFAULT_MQTT_STREAM, maxlen: int = 10_000) -> None:
        self._transport = transport
        self.stream = stream
        self._maxlen = maxlen

    async def record(self, letter: Any) -> None:
        """Store one :class:`energy_messaging.mqtt.DeadLetter` (the ``on_dead_letter`` hook)."""
        fields = {
            "topic": letter.topic.encode(),
            "reason": letter.reason.encode(),
            "detail": str(letter.detail)[:1000].encode(),
            "filter": (letter.filter or "").encode(),
            "time": datetime.now(UTC).isoformat().encode(),
            "extra": json.dumps(letter.extra, default=str)[:2000].encode(),
            "payload": bytes(letter.raw),
        }
        await self._transport.append(self.stream, fields, maxlen=self._maxlen)

    def queue(self, publisher: MQTTRepublisher | None = None) -> DeadLetterQueue:
        """The stored letters as a :class:`DeadLetterQueue`; ``publisher`` replays them (QoS 1).

        Without a publisher, list/show/purge work and replay raises
        :class:`~energy_messaging.events.DeadLetterReplayError`.
        """

        def decode(entry_id: str, fields: Mapping[str, bytes]) -> DeadLetterRecord:
            def text(name: str) -> str:
                return fields.get(name, b"").decode(errors="replace")

            try:
                time = datetime.fromisoformat(text("time"))
            except ValueError:
                time = datetime.fromtimestamp(0, UTC)
            return DeadLetterRecord(
                id=entry_id,
                kind="mqtt",
                target=text("topic"),
                reason=text("reason"),
                payload=fields.get("payload"),
                time=time,
                details={"detail": text("detail"), "filter": text("filter"), "extra": text("extra")},
            )

        async def republish(record: DeadLetterRecord) -> None:
            if publisher is None:
                raise RuntimeError("no MQTT connection to replay with (pass a manager to queue())")
            if not record.target:
                raise RuntimeError("the letter has no topic (it arrived on an undecodable one)")
            await publisher.publish(record.target, record.payload, qos=1)

        return DeadLetterQueue(self._transport, self.stream, decode, republish)
