"""The Redis Streams backend of the event bus (needs ``energy-messaging[redis]``).

One stream per event type (``<namespace>:stream:<type>``), one consumer group per
service, one consumer per replica:

* publish: ``XADD <stream> MAXLEN ~ <maxlen> * event <json>``;
* consume: ``XREADGROUP GROUP <group> <consumer> ... STREAMS <streams> >``; ``XACK``
  once the handlers succeeded, pipelined with the next ``XREADGROUP``;
* redelivery: ``XPENDING ... IDLE`` lists entries left unacknowledged (a crashed
  replica's or a failed handler's) with their delivery counts; those idle past their
  retry delay (``min_idle``, then growing by ``retry_backoff`` per delivery up to
  ``max_retry_delay``, jittered) are taken over with ``XCLAIM``;
* after ``max_deliveries``: ``XADD <namespace>:dead-letter`` with the reason, then ``XACK``;
* groups are created with ``MKSTREAM``; ``NOGROUP`` (stream deleted, fresh server)
  recreates the group, reading the new stream from its start.

Example:
    >>> from energy_messaging.events.redis_streams import RedisStreamsEventBus
    >>> bus = RedisStreamsEventBus("redis://127.0.0.1:6379/0", group="billing")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from energy_common._extras import missing_extra

try:
    import redis.asyncio as redis_asyncio
    from redis import exceptions as redis_exceptions
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
except ImportError as exc:  # pragma: no cover - exercised by the packaging tests
    raise missing_extra("energy-messaging", "redis", exc) from exc

from energy_messaging._metrics import MetricsSink
from energy_messaging.events._base import TransportEventBus
from energy_messaging.events._bus import DeadLetterHook
from energy_messaging.events._envelope import MAX_EVENT_BYTES
from energy_messaging.events._errors import EventBusConfigurationError, EventBusConnectionError, EventBusError
from energy_messaging.events._idempotency import IdempotencyState
from energy_messaging.events._transport import Entry, GroupState, NoGroupError, RetryDelay

__all__ = ["RedisIdempotencyStore", "RedisStreamsEventBus", "RedisStreamsTransport"]


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Translate redis-py errors into the event-bus tree (the one boundary)."""
    try:
        yield
    except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError, OSError) as exc:
        raise EventBusConnectionError(
            f"Redis is unreachable ({type(exc).__name__}: {exc}); retry once it is back.",
        ) from exc
    except redis_exceptions.ResponseError as exc:
        if str(exc).startswith("NOGROUP"):
            raise NoGroupError(str(exc)) from exc
        raise EventBusError(f"Redis rejected an event-bus command: {exc}") from exc
    except redis_exceptions.RedisError as exc:
        raise EventBusError(f"Redis failed: {type(exc).__name__}: {exc}") from exc


#: Most entries counted for a group's lag when Redis cannot report it (after ``XDEL``).
LAG_COUNT_LIMIT = 10_000

# A non-empty {...} section: Redis Cluster hashes only it, so keys sharing it share a slot.
_HASH_TAG = re.compile(r"\{[^{}]+\}")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _fields(raw: Mapping[Any, Any]) -> dict[str, bytes]:
    return {_text(key): value if isinstance(value, bytes) else str(value).encode() for key, value in raw.items()}


def connect(url: str, *, block: float = 1.0) -> redis_asyncio.Redis:
    """Return a Redis client suited to the bus: bytes replies, quick failure when down.

    The socket timeout exceeds the longest ``XREADGROUP BLOCK``; one quick retry rides
    out a dropped connection, then the error reaches the caller (as
    :class:`EventBusConnectionError`).
    """
    return redis_asyncio.from_url(
        url,
        decode_responses=False,
        socket_connect_timeout=2.0,
        socket_timeout=block + 5.0,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
    )


class RedisStreamsTransport:
    """Stream operations on Redis (see the module docstring for the commands)."""

    def __init__(self, client: redis_asyncio.Redis | RedisCluster, *, owns_client: bool) -> None:
        self.client = client
        self._owns_client = owns_client
        self._cursors: dict[tuple[str, str], bytes | str] = {}

    async def ensure_group(self, stream: str, group: str, *, start_id: str) -> None:
        """``XGROUP CREATE <stream> <group> <start_id> MKSTREAM`` (an existing group is fine)."""
        try:
            with _translated():
                await self.client.xgroup_create(stream, group, id=start_id, mkstream=True)
        except EventBusError as exc:
            if "BUSYGROUP" not in exc.message:
                raise

    async def append(self, stream: str, fields: Mapping[str, bytes], *, maxlen: int) -> str:
        """``XADD <stream> MAXLEN ~ <maxlen> * <fields>``."""
        with _translated():
            entry_id = await self.client.xadd(stream, dict[Any, Any](fields), maxlen=maxlen, approximate=True)
        return _text(entry_id)

    async def append_many(self, entries: Sequence[tuple[str, Mapping[str, bytes]]], *, maxlen: int) -> None:
        """Pipelined ``XADD``s (no MULTI: in order, one round trip; on an error some may have been added)."""
        if not entries:
            return
        with _translated():
            async with self.client.pipeline(transaction=False) as pipe:
                for stream, fields in entries:
                    pipe.xadd(stream, dict[Any, Any](fields), maxlen=maxlen, approximate=True)
                await pipe.execute()

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
        """``XACK`` the previous batch and ``XREADGROUP ... STREAMS <streams> >`` in one round trip."""
        if not streams:
            for stream, ids in acks.items():
                await self.ack(stream, group, ids)
            await asyncio.sleep(block)
            return []
        block_ms = int(block * 1000)
        with _translated():
            async with self.client.pipeline(transaction=False) as pipe:
                for stream, ids in acks.items():
                    if ids:
                        pipe.xack(stream, group, *ids)
                pipe.xreadgroup(
                    group,
                    consumer,
                    dict.fromkeys(streams, ">"),
                    count=count,
                    block=block_ms if block_ms > 0 else None,  # BLOCK 0 would wait forever
                )
                replies: list[Any] = await pipe.execute()
        reply = replies[-1]
        items = reply.items() if isinstance(reply, dict) else (reply or [])
        out: list[Entry] = []
        for stream, messages in items:
            name = _text(stream)
            for entry_id, raw in messages or ():
                out.append(Entry(name, _text(entry_id), _fields(raw or {}), 1))
        return out

    async def claim_stale(
        self, stream: str, group: str, consumer: str, *, min_idle: float, count: int, delay: RetryDelay
    ) -> list[Entry]:
        """``XPENDING ... IDLE`` the entries past their retry delay, then ``XCLAIM`` those.

        The scan resumes where the previous one stopped, so entries waiting out a long
        backoff at the head of the pending list do not hide ready ones behind them.
        """
        key = (stream, group)
        idle_ms = int(min_idle * 1000)
        start = self._cursors.get(key, "-")
        with _translated():
            pending: list[Any] = await self.client.xpending_range(
                stream, group, min=start, max="+", count=count * 4, idle=idle_ms
            )
            if len(pending) < count * 4:
                self._cursors.pop(key, None)  # reached the end: next scan from the start
            else:
                self._cursors[key] = "(" + _text(pending[-1]["message_id"])
            ready = {
                _text(info["message_id"]): int(info["times_delivered"])
                for info in pending
                if info["time_since_delivered"] / 1000 >= delay(_text(info["message_id"]), int(info["times_delivered"]))
            }
            if not ready:
                return []
            ids = list(ready)[:count]
            claimed: Any = await self.client.xclaim(stream, group, consumer, idle_ms, list[Any](ids))
        # Entries deleted from the stream are dropped from the pending list by XCLAIM (Redis 7).
        return [
            Entry(stream, _text(entry_id), _fields(raw), ready.get(_text(entry_id), 0) + 1)
            for entry_id, raw in claimed
            if raw is not None
        ]

    async def ack(self, stream: str, group: str, entry_ids: Sequence[str]) -> None:
        """``XACK <stream> <group> <ids...>``."""
        if entry_ids:
            with _translated():
                await self.client.xack(stream, group, *entry_ids)

    async def range(
        self, stream: str, count: int, *, start: str = "-", end: str = "+"
    ) -> list[tuple[str, dict[str, bytes]]]:
        """``XRANGE <stream> <start> <end> COUNT <count>``."""
        with _translated():
            reply: Any = await self.client.xrange(stream, min=start, max=end, count=count)
        return [(_text(entry_id), _fields(raw)) for entry_id, raw in reply]

    async def delete_entries(self, stream: str, entry_ids: Sequence[str]) -> int:
        """``XDEL <stream> <ids...>``."""
        if not entry_ids:
            return 0
        with _translated():
            return int(await self.client.xdel(stream, *entry_ids))

    async def group_state(self, stream: str, group: str) -> GroupState:
        """``XINFO GROUPS <stream>``: the group's ``lag`` and ``pending``.

        Redis reports no lag once entries after the group's last delivered one were
        deleted (``XDEL``); then they are counted with ``XRANGE``, up to
        :data:`LAG_COUNT_LIMIT`.
        """
        with _translated():
            try:
                groups: list[Any] = await self.client.xinfo_groups(stream)
            except redis_exceptions.ResponseError as exc:
                if "no such key" in str(exc):
                    raise NoGroupError(f"NOGROUP {stream} {group}") from exc
                raise
            for info in groups:
                if _text(info["name"]) != group:
                    continue
                lag = info.get("lag")
                if lag is None:
                    start = "(" + _text(info["last-delivered-id"])
                    after: Any = await self.client.xrange(stream, min=start, max="+", count=LAG_COUNT_LIMIT)
                    lag = len(after or ())
                return GroupState(lag=int(lag), pending=int(info["pending"]))
        raise NoGroupError(f"NOGROUP {stream} {group}")

    async def aclose(self) -> None:
        """Close the client if the bus created it."""
        if self._owns_client:
            with contextlib.suppress(redis_exceptions.RedisError, OSError):
                await self.client.aclose()


class RedisStreamsEventBus(TransportEventBus):
    """Event bus on Redis Streams consumer groups, shared by the replicas of a service.

    Args:
        redis: A ``redis://`` / ``rediss://`` URL (the bus owns the client), or a
            ``redis.asyncio.Redis`` / ``RedisCluster`` client created with
            ``decode_responses=False`` (the caller closes it). On a cluster the
            ``namespace`` must hold a hash tag (``"{billing}:events"``): XREADGROUP
            reads all of a group's streams in one command, so they share a slot.
        group: Consumer group (the service name): each event is handled once per group.
        consumer: This replica's name in the group (unique per process by default).
        namespace: Prefix of the stream keys.
        source: Default CloudEvents ``source`` of published events.
        max_deliveries: Deliveries before an event is dead-lettered.
        min_idle: Seconds an entry may stay unacknowledged before another consumer
            claims it (keep it above the handlers' longest run).
        retry_backoff: Factor by which the wait before each further redelivery of a
            failing event grows (``min_idle``, ``min_idle * retry_backoff``, ...; jittered).
        max_retry_delay: Longest wait between two deliveries, in seconds.
        batch_size: Entries per ``XREADGROUP`` / ``XCLAIM``.
        block: ``XREADGROUP BLOCK`` time, in seconds.
        maxlen: Approximate length bound of each stream (``MAXLEN ~``).
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

    Raises:
        EventBusConfigurationError: An option is out of range, or a cluster namespace
            without a hash tag.
    """

    def __init__(
        self,
        redis: str | redis_asyncio.Redis | RedisCluster,
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
        owns = isinstance(redis, str)
        client = connect(redis, block=block) if isinstance(redis, str) else redis
        if isinstance(client, RedisCluster) and not _HASH_TAG.search(namespace):
            raise EventBusConfigurationError(
                f"On a Redis Cluster the namespace needs a hash tag, e.g. '{{{namespace}}}', so a group's "
                "streams, their pending lists and the dead-letter stream share one slot.",
                {"option": "namespace"},
            )
        self.transport = RedisStreamsTransport(client, owns_client=owns)
        super().__init__(
            self.transport,
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

    @property
    def client(self) -> redis_asyncio.Redis | RedisCluster:
        """The Redis client (share it with :class:`RedisIdempotencyStore`)."""
        return self.transport.client


# Delete the mark only while it is still ours to give back (in progress).
_ABANDON = "if redis.call('GET', KEYS[1]) == 'in_progress' then return redis.call('DEL', KEYS[1]) end return 0"


class RedisIdempotencyStore:
    """:class:`~energy_messaging.events.IdempotencyStore` on Redis, shared by replicas.

    Args:
        client: A ``redis.asyncio.Redis`` client (e.g. ``bus.client``).
        prefix: Key prefix of the marks.
    """

    def __init__(self, client: redis_asyncio.Redis | RedisCluster, *, prefix: str = "energy:idempotency:") -> None:
        self._client = client
        self._prefix = prefix

    async def begin(self, key: str, *, lease: float) -> IdempotencyState:
        """``SET <key> in_progress NX PX <lease>``; when taken, report what holds it."""
        name = self._prefix + key
        with _translated():
            for _ in range(3):  # the mark may expire between SET and GET
                if await self._client.set(name, b"in_progress", nx=True, px=max(1, int(lease * 1000))):
                    return "new"
                value = await self._client.get(name)
                if value is not None:
                    return "done" if value == b"done" else "in_progress"
        return "in_progress"

    async def complete(self, key: str, *, ttl: float) -> None:
        """``SET <key> done PX <ttl>``."""
        with _translated():
            await self._client.set(self._prefix + key, b"done", px=max(1, int(ttl * 1000)))

    async def abandon(self, key: str) -> None:
        """Delete the mark if it is still in progress."""
        with _translated():
            await self._client.eval(_ABANDON, 1, self._prefix + key)
