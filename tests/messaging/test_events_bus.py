"""Event-bus semantics shared by the in-process and the Redis Streams backends.

Every test body runs against both backends: a :class:`MemoryStreams` shared by the
buses of a test, and the real Redis with stream keys under ``redis_key_prefix``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from energy_common.context import correlation_scope, get_correlation_id
from energy_common.exceptions import MessagingError
from energy_messaging.events import (
    DeadLetter,
    Event,
    EventBus,
    EventBusClosedError,
    EventBusConfigurationError,
    InMemoryEventBus,
    InMemoryIdempotencyStore,
    InvalidEventError,
    MemoryStreams,
    TransportEventBus,
    idempotent,
)
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331
FAST = {"min_idle": 0.2, "block": 0.1}

WaitUntil = Callable[..., Awaitable[None]]


@dataclass
class Backend:
    """One backend under test: how to make buses that share a store, and raw access to it."""

    name: str
    make: Callable[..., TransportEventBus]
    inject: Callable[[str, dict[str, bytes]], Awaitable[None]]
    delete: Callable[[str], Awaitable[None]]
    pending: Callable[[str, str], Awaitable[int]]
    groups: Callable[[str], Awaitable[list[str]]]
    store: Any


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Both backends: a shared MemoryStreams, or the real Redis under this test's key prefix."""
    if request.param == "memory":
        streams = MemoryStreams()

        def make_memory(**options: Any) -> TransportEventBus:
            return InMemoryEventBus(streams, **{**FAST, **options})

        async def inject_memory(stream: str, fields: dict[str, bytes]) -> None:
            await streams.append(stream, fields, maxlen=1000)

        async def delete_memory(stream: str) -> None:
            streams.delete(stream)

        async def pending_memory(stream: str, group: str) -> int:
            return streams.pending_count(stream, group)

        async def groups_memory(stream: str) -> list[str]:
            data = streams._streams.get(stream)
            return list(data.groups) if data is not None else []

        yield Backend(
            "memory",
            make_memory,
            inject_memory,
            delete_memory,
            pending_memory,
            groups_memory,
            InMemoryIdempotencyStore(),
        )
        return

    from energy_messaging.events.redis_streams import RedisIdempotencyStore, RedisStreamsEventBus

    redis_url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_key_prefix")
    client = request.getfixturevalue("redis_client")

    def make_redis(**options: Any) -> TransportEventBus:
        return RedisStreamsEventBus(redis_url, namespace=f"{prefix}events", **{**FAST, **options})

    async def inject_redis(stream: str, fields: dict[str, bytes]) -> None:
        await client.xadd(stream, fields)

    async def delete_redis(stream: str) -> None:
        await client.delete(stream)

    async def pending_redis(stream: str, group: str) -> int:
        return int((await client.xpending(stream, group))["pending"])

    async def groups_redis(stream: str) -> list[str]:
        if not await client.exists(stream):
            return []
        return [info["name"].decode() for info in await client.xinfo_groups(stream)]

    store = RedisIdempotencyStore(client, prefix=f"{prefix}idem:")
    yield Backend("redis", make_redis, inject_redis, delete_redis, pending_redis, groups_redis, store)


def collector() -> tuple[list[Event], Callable[[Event], Awaitable[None]]]:
    """Return a list and a handler that appends each event to it."""
    seen: list[Event] = []

    async def handler(event: Event) -> None:
        seen.append(event)

    return seen, handler


async def test_publish_subscribe_delivers_event_with_envelope(wait_until: WaitUntil, backend: Backend) -> None:
    """A published event reaches the subscriber with every CloudEvents attribute filled."""
    seen, handler = collector()
    async with backend.make(group="svc", source="urn:test:publisher") as bus:
        assert isinstance(bus, EventBus)
        bus.subscribe("device.registered", handler)
        published = await bus.publish("device.registered", {"device_id": "sensor001", "kw": 1.5})
        await wait_until(lambda: len(seen) == 1)
    event = seen[0]
    assert event == published
    assert (event.type, event.source, event.specversion, event.datacontenttype) == (
        "device.registered",
        "urn:test:publisher",
        "1.0",
        "application/json",
    )
    assert event.data == {"device_id": "sensor001", "kw": 1.5}
    assert event.time.tzinfo is not None
    assert len(event.id) == 32


async def test_decorator_form_and_handler_order(wait_until: WaitUntil, backend: Backend) -> None:
    """subscribe() works as a decorator and handlers of a type run in registration order."""
    calls: list[str] = []
    async with backend.make() as bus:

        @bus.subscribe("reading.stored")
        async def first(event: Event) -> None:
            calls.append("first")

        @bus.subscribe("reading.stored")
        async def second(event: Event) -> None:
            calls.append("second")

        await bus.publish("reading.stored", {"v": 1})
        await wait_until(lambda: len(calls) == 2)
    assert calls == ["first", "second"]
    assert first.__name__ == "first"


async def test_correlation_id_and_trace_context_continue_in_handler(wait_until: WaitUntil, backend: Backend) -> None:
    """The handler runs under the publisher's correlation id and inside its trace."""
    observed: dict[str, Any] = {}

    async def handler(event: Event) -> None:
        observed["cid"] = get_correlation_id()
        observed["trace_id"] = trace.get_current_span().get_span_context().trace_id
        observed["event"] = event

    parent = SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    async with backend.make() as bus:
        bus.subscribe("command.sent", handler)
        with correlation_scope("req-42"):
            token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
            try:
                await bus.publish("command.sent", {"command": "read_temperature"})
            finally:
                otel_context.detach(token)
        await wait_until(lambda: "event" in observed)
    assert observed["event"].correlationid == "req-42"
    assert observed["event"].traceparent.startswith(f"00-{TRACE_ID:032x}-")
    assert observed["cid"] == "req-42"
    assert observed["trace_id"] == TRACE_ID
    assert get_correlation_id() is None


async def test_handler_without_incoming_correlation_gets_a_fresh_one(wait_until: WaitUntil, backend: Backend) -> None:
    """An event published outside any request still runs its handler under a correlation id."""
    seen_ids: list[str | None] = []

    async def handler(event: Event) -> None:
        seen_ids.append(get_correlation_id())

    async with backend.make() as bus:
        bus.subscribe("tick", handler)
        event = await bus.publish("tick", None)
        await wait_until(lambda: len(seen_ids) == 1)
    assert event.correlationid is None
    assert event.traceparent is None
    assert seen_ids[0] is not None


async def test_handler_does_not_inherit_the_span_active_at_start(wait_until: WaitUntil, backend: Backend) -> None:
    """An event without trace context runs its handler outside the span that was current at start()."""
    trace_ids: list[int] = []

    async def handler(event: Event) -> None:
        trace_ids.append(trace.get_current_span().get_span_context().trace_id)

    bus = backend.make()
    bus.subscribe("tick", handler)
    parent = SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
    try:
        await bus.start()  # the consumer task copies this context
    finally:
        otel_context.detach(token)
    async with bus:
        await bus.publish("tick", 1)
        await wait_until(lambda: len(trace_ids) == 1)
    assert trace_ids == [0]


async def test_explicit_correlation_id_overrides_current(backend: Backend) -> None:
    """publish(correlation_id=...) wins over the ambient correlation id."""
    async with backend.make() as bus:
        with correlation_scope("ambient"):
            event = await bus.publish("tick", 1, correlation_id="explicit-1")
    assert event.correlationid == "explicit-1"


async def test_failing_handler_is_retried_then_succeeds(wait_until: WaitUntil, backend: Backend) -> None:
    """A handler that raises gets the same event again after min_idle, then it is acknowledged."""
    attempts: list[str] = []

    async def flaky(event: Event) -> None:
        attempts.append(event.id)
        if len(attempts) < 3:
            raise RuntimeError("transient failure")

    async with backend.make(max_deliveries=5) as bus:
        bus.subscribe("job.run", flaky)
        event = await bus.publish("job.run", {"n": 1})
        await wait_until(lambda: bus.stats.handled == 1)
    assert await backend.pending(bus.stream_for("job.run"), bus.group) == 0
    assert attempts == [event.id] * 3
    assert bus.stats.failed == 2
    assert bus.stats.dead_lettered == 0


async def test_poison_message_goes_to_dead_letter_after_max_deliveries(wait_until: WaitUntil, backend: Backend) -> None:
    """An event whose handler always fails is dead-lettered after N tries, with the reason."""
    attempts: list[int] = []
    hooked: list[DeadLetter] = []

    async def poison(event: Event) -> None:
        attempts.append(1)
        raise ValueError("cannot parse reading")

    async with backend.make(max_deliveries=3, on_dead_letter=hooked.append) as bus:
        bus.subscribe("reading.stored", poison)
        event = await bus.publish("reading.stored", {"kw": "garbage"})
        await wait_until(lambda: bus.stats.dead_lettered == 1)
        letters = await bus.read_dead_letters()
        await asyncio.sleep(0.5)  # no further delivery after the dead letter
    assert await backend.pending(bus.stream_for("reading.stored"), bus.group) == 0
    assert len(attempts) == 3
    assert len(letters) == 1
    letter = letters[0]
    assert letter.reason == "handler failed on delivery 3 of 3: ValueError: cannot parse reading"
    assert letter.deliveries == 3
    assert letter.event_type == "reading.stored"
    assert letter.group == bus.group
    assert letter.event() == event
    assert hooked == letters


MALFORMED = [
    pytest.param({"other": b"x"}, "malformed entry: no 'event' field", id="no-event-field"),
    pytest.param({"event": b"{not json"}, "malformed event: event is not valid JSON", id="not-json"),
    pytest.param({"event": b"\xff\xfe"}, "malformed event: event is not valid JSON", id="not-utf8"),
    pytest.param({"event": b"[1, 2]"}, "malformed event: event is not a JSON object", id="not-object"),
    pytest.param(
        {"event": b'{"specversion": "0.3", "id": "1", "type": "t.x", "source": "s", "time": "2026-01-01T00:00:00Z"}'},
        "malformed event: unsupported specversion",
        id="bad-specversion",
    ),
    pytest.param(
        {"event": b'{"specversion": "1.0", "type": "t.x", "source": "s", "time": "2026-01-01T00:00:00Z"}'},
        "malformed event: attribute 'id'",
        id="missing-id",
    ),
    pytest.param(
        {"event": b'{"specversion": "1.0", "id": "1", "type": "t.x", "source": "s", "time": "yesterday"}'},
        "malformed event: invalid or missing RFC 3339 time",
        id="bad-time",
    ),
    pytest.param(
        {
            "event": b'{"specversion": "1.0", "id": "1", "type": "t.x", "source": "s", '
            b'"time": "2026-01-01T00:00:00Z", "data": NaN}'
        },
        "malformed event: event is not valid JSON",
        id="nan",
    ),
    pytest.param(
        {
            "event": b'{"specversion": "1.0", "id": "1", "type": "other.type", "source": "s", "time": "2026-01-01T00:00:00Z"}'
        },
        "event type 'other.type' does not match stream type 't.x'",
        id="type-mismatch",
    ),
]


@pytest.mark.parametrize(("fields", "reason"), MALFORMED)
async def test_malformed_entry_is_dead_lettered_and_consumer_continues(
    wait_until: WaitUntil, backend: Backend, fields: dict[str, bytes], reason: str
) -> None:
    """A malformed stream entry goes to the dead-letter stream at once; later events still flow."""
    seen, handler = collector()
    async with backend.make() as bus:
        bus.subscribe("t.x", handler)
        await backend.inject(bus.stream_for("t.x"), fields)
        good = await bus.publish("t.x", {"ok": True})
        await wait_until(lambda: len(seen) == 1 and bus.stats.dead_lettered == 1)
        letters = await bus.read_dead_letters()
    assert seen == [good]
    assert letters[0].reason.startswith(reason)
    assert letters[0].deliveries == 1
    assert letters[0].payload == fields.get("event")


async def test_consumer_cancelled_before_ack_is_redelivered_to_another(wait_until: WaitUntil, backend: Backend) -> None:
    """An event held by a consumer that stops mid-handler is handled by another after min_idle."""
    started = asyncio.Event()

    async def stuck(event: Event) -> None:
        started.set()
        await asyncio.sleep(60)

    crashed = backend.make(group="workers", consumer="a", shutdown_timeout=0)
    crashed.subscribe("job.run", stuck)
    async with crashed:
        event = await crashed.publish("job.run", {"n": 7})
        await asyncio.wait_for(started.wait(), 10)
    # "a" is gone without acknowledging; "b" of the same group takes the event over.
    seen, handler = collector()
    async with backend.make(group="workers", consumer="b") as survivor:
        survivor.subscribe("job.run", handler)
        await wait_until(lambda: len(seen) == 1)
    assert seen[0].id == event.id
    assert survivor.stats.redelivered == 1
    assert crashed.stats.handled == 0


async def test_cancelled_consumer_still_acks_what_it_handled(backend: Backend) -> None:
    """Stopped mid-batch, a consumer acknowledges the entries it finished; only the unfinished stays pending."""
    blocked = asyncio.Event()

    async def handler(event: Event) -> None:
        if event.data == "stuck":
            blocked.set()
            await asyncio.sleep(60)

    async with backend.make() as publisher:
        await publisher.publish("job.run", "quick")
        await publisher.publish("job.run", "stuck")
    bus = backend.make(group="workers", shutdown_timeout=0)
    bus.subscribe("job.run", handler)
    async with bus:
        await asyncio.wait_for(blocked.wait(), 10)
    assert bus.stats.handled == 1
    assert await backend.pending(bus.stream_for("job.run"), "workers") == 1


async def test_graceful_close_finishes_in_flight_handler(backend: Backend) -> None:
    """aclose() lets the running handler finish and sends its acknowledgement before stopping."""
    started = asyncio.Event()
    finished: list[str] = []

    async def slow(event: Event) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(event.id)

    bus = backend.make(shutdown_timeout=5)
    bus.subscribe("job.run", slow)
    async with bus:
        event = await bus.publish("job.run", {})
        await asyncio.wait_for(started.wait(), 10)
    assert finished == [event.id]
    assert bus.stats.handled == 1
    assert await backend.pending(bus.stream_for("job.run"), bus.group) == 0


async def test_group_shares_work_and_groups_each_get_every_event(wait_until: WaitUntil, backend: Backend) -> None:
    """Within a group each event is handled once; every group gets every event."""
    seen_a, handler_a = collector()
    seen_b, handler_b = collector()
    seen_other, handler_other = collector()
    buses = [
        backend.make(group="billing", consumer="a", batch_size=2),
        backend.make(group="billing", consumer="b", batch_size=2),
        backend.make(group="audit", consumer="c"),
    ]
    for bus, handler in zip(buses, (handler_a, handler_b, handler_other), strict=True):
        bus.subscribe("reading.stored", handler)
    async with buses[0], buses[1], buses[2]:
        published = [await buses[0].publish("reading.stored", {"i": i}) for i in range(30)]
        await wait_until(lambda: len(seen_a) + len(seen_b) == 30 and len(seen_other) == 30)
        await asyncio.sleep(0.3)
    ids = {event.id for event in published}
    assert sorted(e.id for e in seen_a + seen_b) == sorted(ids)
    assert {e.id for e in seen_other} == ids


async def test_group_is_recreated_after_stream_deletion(wait_until: WaitUntil, backend: Backend) -> None:
    """Deleting the stream (NOGROUP) does not kill the consumer: it recreates the group."""
    seen, handler = collector()
    async with backend.make() as bus:
        bus.subscribe("t.x", handler)
        await bus.publish("t.x", 1)
        await wait_until(lambda: len(seen) == 1)
        await backend.delete(bus.stream_for("t.x"))
        await asyncio.sleep(0.2)
        await bus.publish("t.x", 2)
        await wait_until(lambda: len(seen) == 2)
    assert [event.data for event in seen] == [1, 2]


async def test_events_published_before_first_subscriber_are_kept(wait_until: WaitUntil, backend: Backend) -> None:
    """A new group starts from the oldest entry by default, so early events are not lost."""
    seen, handler = collector()
    async with backend.make() as publisher:
        early = await publisher.publish("t.x", "early")
    async with backend.make() as bus:
        bus.subscribe("t.x", handler)
        await wait_until(lambda: len(seen) == 1)
    assert seen[0].id == early.id


async def test_start_from_new_skips_earlier_events(wait_until: WaitUntil, backend: Backend) -> None:
    """With start_from="new", a new group sees only events published after it was created."""
    seen, handler = collector()
    async with backend.make() as publisher:
        await publisher.publish("t.x", "early")
    bus = backend.make(start_from="new")
    bus.subscribe("t.x", handler)
    async with bus:
        deadline = time.monotonic() + 10
        while bus.group not in await backend.groups(bus.stream_for("t.x")):
            assert time.monotonic() < deadline, "the consumer did not create its group"
            await asyncio.sleep(0.02)
        late = await bus.publish("t.x", "late")
        await wait_until(lambda: len(seen) == 1)
    assert seen[0].id == late.id


async def test_subscribe_while_running_starts_consuming_that_type(wait_until: WaitUntil, backend: Backend) -> None:
    """A subscription added to a running bus is consumed without a restart."""
    seen_a, handler_a = collector()
    seen_b, handler_b = collector()
    async with backend.make() as bus:
        bus.subscribe("a.x", handler_a)
        await bus.publish("a.x", 1)
        await wait_until(lambda: len(seen_a) == 1)
        bus.subscribe("b.x", handler_b)
        await bus.publish("b.x", 2)
        await wait_until(lambda: len(seen_b) == 1)
    assert [e.data for e in seen_a + seen_b] == [1, 2]


async def test_idempotent_handler_processes_redelivered_event_once(wait_until: WaitUntil, backend: Backend) -> None:
    """With idempotent(), a redelivery caused by another handler's failure does not repeat the work."""
    processed: list[str] = []
    flaky_calls: list[str] = []

    @idempotent(backend.store, namespace="billing")
    async def bill(event: Event) -> None:
        processed.append(event.id)

    async def flaky(event: Event) -> None:
        flaky_calls.append(event.id)
        if len(flaky_calls) == 1:
            raise RuntimeError("first delivery fails")

    async with backend.make() as bus:
        bus.subscribe("reading.stored", bill)
        bus.subscribe("reading.stored", flaky)
        event = await bus.publish("reading.stored", {"kw": 2})
        await wait_until(lambda: bus.stats.handled == 1)
        duplicate = await bus.publish("reading.stored", {"kw": 2}, event_id=event.id)
        await wait_until(lambda: bus.stats.handled == 2)
    assert duplicate.id == event.id
    assert processed == [event.id]
    assert flaky_calls == [event.id] * 3


async def test_publish_on_closed_bus_raises(backend: Backend) -> None:
    """Publishing before start or after close is a typed error."""
    bus = backend.make()
    with pytest.raises(EventBusClosedError) as info:
        await bus.publish("t.x", 1)
    assert info.value.error_code == "EVENT_BUS_CLOSED"
    async with bus:
        pass
    with pytest.raises(EventBusClosedError):
        await bus.publish("t.x", 1)
    with pytest.raises(EventBusClosedError):
        await bus.start()


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        pytest.param("bad type", {}, id="space-in-type"),
        pytest.param("devices/+/status", {}, id="wildcard-type"),
        pytest.param("", {}, id="empty-type"),
        pytest.param("t.x", {"when": object()}, id="not-json"),
        pytest.param("t.x", {"v": float("nan")}, id="nan"),
        pytest.param("t.x", "x" * 5000, id="too-large"),
    ],
)
async def test_invalid_publish_is_rejected(backend: Backend, event_type: str, data: Any) -> None:
    """Bad event types, non-JSON data and oversized events raise InvalidEventError before sending."""
    async with backend.make(max_event_bytes=4096) as bus:
        with pytest.raises(InvalidEventError) as info:
            await bus.publish(event_type, data)
    assert isinstance(info.value, MessagingError)
    assert info.value.error_code == "INVALID_EVENT"
    assert bus.stats.published == 0


@pytest.mark.parametrize(
    "options",
    [
        {"max_deliveries": 0},
        {"min_idle": 0},
        {"batch_size": 0},
        {"maxlen": 0},
        {"group": ""},
        {"group": "a b"},
        {"start_from": "latest"},
        {"shutdown_timeout": -1},
        {"max_event_bytes": 10},
    ],
    ids=lambda options: next(iter(options)),
)
async def test_invalid_options_raise_configuration_error(backend: Backend, options: dict[str, Any]) -> None:
    """Out-of-range options are refused at construction with a typed error naming the option."""
    with pytest.raises(EventBusConfigurationError) as info:
        backend.make(**options)
    assert info.value.details["option"] == next(iter(options))


async def test_subscribe_rejects_invalid_event_type(backend: Backend) -> None:
    """subscribe() validates the event type like publish()."""
    bus = backend.make()
    with pytest.raises(InvalidEventError):
        bus.subscribe("a#b", collector()[1])
    await bus.aclose()
