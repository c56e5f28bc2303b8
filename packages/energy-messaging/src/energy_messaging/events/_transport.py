"""The internal seam between the bus logic and a stream engine (memory or Redis).

The operations mirror the Redis Streams commands the bus needs, so the consumer loop
(and its delivery semantics) is written once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["EVENT_FIELD", "Entry", "GroupState", "NoGroupError", "RetryDelay", "Transport"]

#: ``delay(entry_id, deliveries)``: seconds an entry delivered ``deliveries`` times must stay
#: idle before it is claimed again (at least ``min_idle``).
RetryDelay = Callable[[str, int], float]

#: Name of the stream-entry field that holds the JSON event.
EVENT_FIELD = "event"


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry delivered to this consumer."""

    stream: str
    entry_id: str
    fields: Mapping[str, bytes]
    deliveries: int

    @property
    def payload(self) -> bytes | None:
        """The event JSON, or None when the entry has no event field."""
        return self.fields.get(EVENT_FIELD)


@dataclass(frozen=True, slots=True)
class GroupState:
    """How far one consumer group is behind on one stream.

    Attributes:
        lag: Entries of the stream not delivered to the group yet.
        pending: Entries delivered to the group and not acknowledged.
    """

    lag: int
    pending: int


class NoGroupError(Exception):
    """The stream or its consumer group is gone (deleted, or a fresh server): recreate it."""


class Transport(Protocol):
    """Stream operations (XGROUP CREATE, XADD, XREADGROUP, XAUTOCLAIM, XACK, XRANGE, XINFO GROUPS)."""

    async def ensure_group(self, stream: str, group: str, *, start_id: str) -> None:
        """Create the group (and the stream) unless it exists; ``start_id`` is ``"$"`` or ``"0"``."""
        ...

    async def append(self, stream: str, fields: Mapping[str, bytes], *, maxlen: int) -> str:
        """Append an entry, trimming the stream to about ``maxlen`` entries; return its id."""
        ...

    async def append_many(self, entries: Sequence[tuple[str, Mapping[str, bytes]]], *, maxlen: int) -> None:
        """Append ``(stream, fields)`` entries in order, in one round trip where the engine allows."""
        ...

    async def read_new(
        self,
        streams: Sequence[str],
        group: str,
        consumer: str,
        *,
        count: int,
        block: float,
        acks: Mapping[str, Sequence[str]],
    ) -> list[Entry]:
        """Acknowledge ``acks`` (stream -> entry ids), then read never-delivered entries.

        Waits up to ``block`` seconds for new entries.
        """
        ...

    async def claim_stale(
        self, stream: str, group: str, consumer: str, *, min_idle: float, count: int, delay: RetryDelay
    ) -> list[Entry]:
        """Claim entries idle for their retry ``delay`` (never below ``min_idle``), with their delivery counts."""
        ...

    async def ack(self, stream: str, group: str, entry_ids: Sequence[str]) -> None:
        """Acknowledge entries so they are never delivered again."""
        ...

    async def range(
        self, stream: str, count: int, *, start: str = "-", end: str = "+"
    ) -> list[tuple[str, dict[str, bytes]]]:
        """Return up to ``count`` entries of a stream from ``start`` to ``end`` (ids, inclusive; ``(id`` exclusive)."""
        ...

    async def delete_entries(self, stream: str, entry_ids: Sequence[str]) -> int:
        """Delete entries by id (``XDEL``); return how many existed."""
        ...

    async def group_state(self, stream: str, group: str) -> GroupState:
        """Return the group's lag and pending count on ``stream`` (``XINFO GROUPS``).

        Raises:
            NoGroupError: The stream or the group does not exist.
        """
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
