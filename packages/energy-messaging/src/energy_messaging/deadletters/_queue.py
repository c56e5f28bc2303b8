"""A dead-letter queue: records in a stream, listed, inspected, replayed and purged by id."""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from energy_messaging.events._errors import DeadLetterNotFoundError, DeadLetterReplayError
from energy_messaging.events._transport import Transport

__all__ = ["DeadLetterQueue", "DeadLetterRecord", "Republish", "check_ids"]

_ID = re.compile(r"\d{1,20}-\d{1,20}")
_MAX_PAGE = 10_000


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """One dead letter as stored.

    Attributes:
        id: Its id in the dead-letter stream (what ``show``, ``replay`` and ``purge`` take).
        kind: ``"events"`` (event bus) or ``"mqtt"``.
        target: Where a replay sends it: the event type (its stream) or the MQTT topic.
        reason: Why it was dead-lettered.
        payload: The exact bytes received (``None`` for an entry without any).
        time: When it was dead-lettered (UTC).
        deliveries: Deliveries before it was given up (event bus; 1 for MQTT).
        details: Everything else recorded (group, consumer, original entry id, filter...).
    """

    id: str
    kind: Literal["events", "mqtt"]
    target: str
    reason: str
    payload: bytes | None
    time: datetime
    deliveries: int = 1
    details: Mapping[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready form for listings (payload as UTF-8 text, replaced where not UTF-8)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "target": self.target,
            "reason": self.reason,
            "time": self.time.isoformat(),
            "deliveries": self.deliveries,
            "details": dict(self.details),
            "payload": None if self.payload is None else self.payload.decode("utf-8", "replace"),
        }

    def to_json(self) -> str:
        """The summary as one JSON line."""
        return json.dumps(self.summary(), sort_keys=True)


#: Sends one record back to where it came from (raise to keep it in the queue).
Republish = Callable[[DeadLetterRecord], Awaitable[None]]
#: Rebuilds a record from a stream entry.
Decode = Callable[[str, Mapping[str, bytes]], DeadLetterRecord]


def check_ids(ids: Sequence[str]) -> list[str]:
    """Return ``ids`` if each is a stream id (``<ms>-<seq>``), else raise.

    Raises:
        DeadLetterNotFoundError: An id is malformed (it cannot name a dead letter).

    Example:
        >>> check_ids(["1700000000000-0"])
        ['1700000000000-0']
    """
    for entry_id in ids:
        if not isinstance(entry_id, str) or _ID.fullmatch(entry_id) is None:
            raise DeadLetterNotFoundError(
                f"{str(entry_id)[:40]!r} is not a dead-letter id; ids look like '1700000000000-0' (see 'list').",
                {"id": str(entry_id)[:40]},
            )
    return list(ids)


class DeadLetterQueue:
    """List, inspect, replay and purge the dead letters held in one stream.

    Built by :func:`~energy_messaging.deadletters.event_dead_letters` and
    :class:`~energy_messaging.deadletters.MQTTDeadLetterStore`.

    Args:
        transport: The stream store (Redis or in-memory).
        stream: Key of the dead-letter stream.
        decode: Rebuilds a record from an entry.
        republish: Sends a record back to its origin.
    """

    def __init__(self, transport: Transport, stream: str, decode: Decode, republish: Republish) -> None:
        self._transport = transport
        self.stream = stream
        self._decode = decode
        self._republish = republish

    async def list(self, *, count: int = 100, after: str | None = None) -> list[DeadLetterRecord]:
        """Return up to ``count`` dead letters, oldest first, after the id ``after`` (for paging).

        Raises:
            DeadLetterNotFoundError: ``after`` is not an id.
            EventBusConnectionError: The store is unreachable.
        """
        count = max(1, min(count, _MAX_PAGE))
        start = "-" if after is None else "(" + check_ids([after])[0]
        entries = await self._transport.range(self.stream, count, start=start)
        return [self._decode(entry_id, fields) for entry_id, fields in entries]

    async def get(self, entry_id: str) -> DeadLetterRecord:
        """Return one dead letter.

        Raises:
            DeadLetterNotFoundError: No dead letter has this id (purged, replayed or trimmed).
        """
        check_ids([entry_id])
        entries = await self._transport.range(self.stream, 1, start=entry_id, end=entry_id)
        if not entries:
            raise DeadLetterNotFoundError(
                f"No dead letter {entry_id} in {self.stream} (purged, replayed or trimmed); run 'list'.",
                {"id": entry_id},
            )
        return self._decode(*entries[0])

    async def replay(self, ids: Sequence[str]) -> builtins.list[str]:
        """Send each named dead letter back to its stream or topic, then remove it; return the ids replayed.

        A letter is removed only after its republish succeeded, so a failure keeps it
        (and the ones after it) for another try.

        Raises:
            DeadLetterNotFoundError: An id names no dead letter (nothing after it is replayed).
            DeadLetterReplayError: A letter cannot be republished (no payload, invalid
                event, backend down); the ones before it were replayed.
        """
        done: builtins.list[str] = []
        for entry_id in check_ids(ids):
            record = await self.get(entry_id)
            if record.payload is None:
                raise DeadLetterReplayError(
                    f"Dead letter {entry_id} has no payload to replay; purge it.", {"id": entry_id, "replayed": done}
                )
            try:
                await self._republish(record)
            except Exception as exc:
                message = getattr(exc, "message", str(exc))
                raise DeadLetterReplayError(
                    f"Dead letter {entry_id} could not be replayed to {record.target}: {message}; it is kept.",
                    {"id": entry_id, "replayed": done},
                ) from exc
            await self._transport.delete_entries(self.stream, [entry_id])
            done.append(entry_id)
        return done

    async def purge(self, ids: Sequence[str]) -> int:
        """Delete exactly the named dead letters; return how many existed.

        Raises:
            DeadLetterNotFoundError: An id is malformed (nothing is deleted then).
        """
        return await self._transport.delete_entries(self.stream, check_ids(ids))
