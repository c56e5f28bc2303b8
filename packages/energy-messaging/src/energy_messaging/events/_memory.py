"""The in-process backend: streams with consumer groups held in memory.

:class:`MemoryStreams` models the few Redis Streams features the bus relies on
(entries, consumer groups, pending entries with delivery counts and idle times), so
the in-process bus has the same delivery semantics as the Redis one. Share one
``MemoryStreams`` between several buses to model replicas of a service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from energy_messaging._metrics import MetricsSink
from energy_messaging.events._base import TransportEventBus
from energy_messaging.events._bus import DeadLetterHook
from energy_messaging.events._envelope import MAX_EVENT_BYTES
from energy_messaging.events._transport import Entry, GroupState, NoGroupError, RetryDelay

__all__ = ["InMemoryEventBus", "MemoryStreams"]


@dataclass(slots=True)
class _Pending:
    consumer: str
    delivered_at: float
    deliveries: int


@dataclass(slots=True)
class _Group:
    last: int
    pending: dict[int, _Pending] = field(default_factory=dict)


@dataclass(slots=True)
class _Stream:
    entries: dict[int, dict[str, bytes]] = field(default_factory=dict)
    first: int = 1
    next: int = 1
    groups: dict[str, _Group] = field(default_factory=dict)


def _seq(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


class MemoryStreams:
    """In-process streams store shared by one or more :class:`InMemoryEventBus` instances.

    Not thread-safe: use it from one event loop.
    """

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}
        self._changed = asyncio.Condition()

    def _group(self, stream: str, group: str) -> tuple[_Stream, _Group]:
        data = self._streams.get(stream)
        found = data.groups.get(group) if data is not None else None
        if data is None or found is None:
            raise NoGroupError(f"NOGROUP {stream} {group}")
        return data, found

    def delete(self, stream: str) -> None:
        """Delete a stream with its groups (as Redis ``DEL`` does)."""
        self._streams.pop(stream, None)

    async def ensure_group(self, stream: str, group: str, *, start_id: str) -> None:
        """Create the group (and the stream) unless it exists."""
        data = self._streams.setdefault(stream, _Stream())
        if group not in data.groups:
            data.groups[group] = _Group(last=data.next - 1 if start_id == "$" else 0)

    async def append(self, stream: str, fields: Mapping[str, bytes], *, maxlen: int) -> str:
        """Append an entry and trim the stream to ``maxlen`` entries."""
        data = self._streams.setdefault(stream, _Stream())
        seq = data.next
        data.next += 1
        data.entries[seq] = dict(fields)
        while len(data.entries) > maxlen:
            data.entries.pop(data.first, None)
            data.first += 1
        async with self._changed:
            self._changed.notify_all()
        return f"{seq}-0"

    async def append_many(self, entries: Sequence[tuple[str, Mapping[str, bytes]]], *, maxlen: int) -> None:
        """Append entries in order."""
        for stream, fields in entries:
            await self.append(stream, fields, maxlen=maxlen)

    def _collect(self, streams: Sequence[str], group: str, consumer: str, count: int) -> list[Entry]:
        out: list[Entry] = []
        now = time.monotonic()
        for stream in streams:
            data, grp = self._group(stream, group)
            seq = max(grp.last + 1, data.first)
            while seq < data.next and len(out) < count:
                fields = data.entries.get(seq)
                if fields is not None:
                    grp.pending[seq] = _Pending(consumer, now, 1)
                    out.append(Entry(stream, f"{seq}-0", fields, 1))
                grp.last = seq
                seq += 1
        return out

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
        """Acknowledge ``acks``, then deliver new entries, waiting up to ``block`` seconds."""
        for stream, ids in acks.items():
            await self.ack(stream, group, ids)
        deadline = time.monotonic() + block
        async with self._changed:
            while True:
                out = self._collect(streams, group, consumer, count)
                remaining = deadline - time.monotonic()
                if out or remaining <= 0:
                    return out
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    return self._collect(streams, group, consumer, count)

    async def claim_stale(
        self, stream: str, group: str, consumer: str, *, min_idle: float, count: int, delay: RetryDelay
    ) -> list[Entry]:
        """Claim entries pending for their retry ``delay`` (at least ``min_idle``); trimmed ones are dropped."""
        data, grp = self._group(stream, group)
        now = time.monotonic()
        out: list[Entry] = []
        for seq, pending in list(grp.pending.items()):
            if len(out) >= count:
                break
            idle = now - pending.delivered_at
            if idle < min_idle or idle < delay(f"{seq}-0", pending.deliveries):
                continue
            fields = data.entries.get(seq)
            if fields is None:
                del grp.pending[seq]
                continue
            pending.consumer, pending.delivered_at = consumer, now
            pending.deliveries += 1
            out.append(Entry(stream, f"{seq}-0", fields, pending.deliveries))
        return out

    async def ack(self, stream: str, group: str, entry_ids: Sequence[str]) -> None:
        """Remove entries from the group's pending list."""
        data = self._streams.get(stream)
        grp = data.groups.get(group) if data is not None else None
        if grp is not None:
            for entry_id in entry_ids:
                grp.pending.pop(_seq(entry_id), None)

    async def range(
        self, stream: str, count: int, *, start: str = "-", end: str = "+"
    ) -> list[tuple[str, dict[str, bytes]]]:
        """Return up to ``count`` entries from ``start`` to ``end`` (``-``/``+``, ids, ``(id`` exclusive)."""
        data = self._streams.get(stream)
        if data is None:
            return []
        low = 0 if start == "-" else _seq(start.lstrip("(")) + (1 if start.startswith("(") else 0)
        high = data.next if end == "+" else _seq(end.lstrip("(")) - (1 if end.startswith("(") else 0)
        found = [(seq, fields) for seq, fields in data.entries.items() if low <= seq <= high]
        return [(f"{seq}-0", dict(fields)) for seq, fields in found[:count]]

    async def delete_entries(self, stream: str, entry_ids: Sequence[str]) -> int:
        """Delete entries by id (pending marks of them are dropped when claimed); return how many existed."""
        data = self._streams.get(stream)
        if data is None:
            return 0
        return sum(data.entries.pop(_seq(entry_id), None) is not None for entry_id in entry_ids)

    async def group_state(self, stream: str, group: str) -> GroupState:
        """Return the group's lag (entries after its last delivered one) and pending count."""
        data, grp = self._group(stream, group)
        last = grp.last
        if len(data.entries) == data.next - data.first:  # no entry deleted: the ids are contiguous
            lag = data.next - 1 - max(last, data.first - 1)
        else:
            lag = sum(1 for seq in data.entries if seq > last)
        return GroupState(lag=lag, pending=len(grp.pending))

    def pending_count(self, stream: str, group: str) -> int:
        """Return how many entries of ``stream`` the group holds unacknowledged."""
        data = self._streams.get(stream)
        grp = data.groups.get(group) if data is not None else None
        return len(grp.pending) if grp is not None else 0

    async def aclose(self) -> None:
        """Nothing to release: the store outlives the buses that share it."""


class InMemoryEventBus(TransportEventBus):
    """The embedded event bus: same semantics as Redis Streams, inside one process.

    Events are lost when the process exits; use the Redis Streams backend to share
    events between replicas and survive restarts.

    Args:
        streams: The store to use; pass one :class:`MemoryStreams` to several buses to
            model replicas. A private store by default.
        group: Consumer group (the service name): each event is handled once per group.
        consumer: This replica's name in the group (unique by default).
        namespace: Prefix of the stream keys.
        source: Default CloudEvents ``source`` of published events.
        max_deliveries: Deliveries before an event whose handler keeps failing is
            dead-lettered.
        min_idle: Seconds a delivery may stay unacknowledged before the event is
            redelivered (to any consumer of the group).
        retry_backoff: Factor by which the wait before each further redelivery of a
            failing event grows (``min_idle``, ``min_idle * retry_backoff``, ...; jittered).
        max_retry_delay: Longest wait between two deliveries, in seconds.
        batch_size: Entries read per round.
        block: Longest wait for new entries per round, in seconds.
        maxlen: Entries kept per stream (oldest trimmed first).
        max_event_bytes: Largest accepted encoded event.
        start_from: Where a group that does not exist yet starts: ``"oldest"`` (the
            default: every event still in the stream, so none published before the first
            subscriber is lost) or ``"new"`` (only events published after the consumer
            created the group, which happens shortly after ``start()``/``subscribe()``).
            An existing group always resumes where it stopped.
        shutdown_timeout: Seconds ``aclose()`` waits for the in-flight batch.
        on_dead_letter: Hook called with each :class:`DeadLetter`.
        metrics: Where the bus records its metrics (``events.published``,
            ``events.consumed``, ``events.lag``, ...: see the package README, "Event bus
            metrics"), e.g. energy-monitoring's ``MetricsRegistry``; None records none.

    Example:
        >>> import asyncio
        >>> async def main() -> list[str]:
        ...     seen: list[str] = []
        ...     async with InMemoryEventBus(group="billing") as bus:
        ...         done = asyncio.Event()
        ...
        ...         @bus.subscribe("reading.stored")
        ...         async def on_reading(event: Event) -> None:
        ...             seen.append(event.data["meter"])
        ...             done.set()
        ...
        ...         await bus.publish("reading.stored", {"meter": "m1"})
        ...         await asyncio.wait_for(done.wait(), 5)
        ...     return seen
        >>> asyncio.run(main())
        ['m1']
    """

    def __init__(
        self,
        streams: MemoryStreams | None = None,
        *,
        group: str = "default",
        consumer: str | None = None,
        namespace: str = "energy:events",
        source: str = "urn:energy:events",
        max_deliveries: int = 5,
        min_idle: float = 30.0,
        retry_backoff: float = 2.0,
        max_retry_delay: float = 300.0,
        batch_size: int = 100,
        block: float = 1.0,
        maxlen: int = 10_000,
        max_event_bytes: int = MAX_EVENT_BYTES,
        start_from: Literal["new", "oldest"] = "oldest",
        shutdown_timeout: float = 5.0,
        on_dead_letter: DeadLetterHook | None = None,
        metrics: MetricsSink | None = None,
    ) -> None:
        self.streams = streams if streams is not None else MemoryStreams()
        super().__init__(
            self.streams,
            group=group,
            consumer=consumer,
            namespace=namespace,
            source=source,
            max_deliveries=max_deliveries,
            min_idle=min_idle,
            retry_backoff=retry_backoff,
            max_retry_delay=max_retry_delay,
            batch_size=batch_size,
            block=block,
            maxlen=maxlen,
            max_event_bytes=max_event_bytes,
            start_from=start_from,
            shutdown_timeout=shutdown_timeout,
            on_dead_letter=on_dead_letter,
            metrics=metrics,
        )
