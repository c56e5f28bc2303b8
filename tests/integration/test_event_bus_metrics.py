"""The event bus's built-in metrics, recorded through energy-monitoring, on the in-process store and on Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from energy_messaging.events import (
    Event,
    EventBusConfigurationError,
    EventBusConnectionError,
    InMemoryEventBus,
    InvalidEventError,
    MemoryStreams,
    TransportEventBus,
    create_event_bus,
    encode_event,
)
from energy_messaging.events._transport import NoGroupError
from energy_monitoring.metrics import MetricsRegistry

from tests.conftest import free_port, metric_value, wait_for

FAST: dict[str, Any] = {"min_idle": 0.2, "block": 0.1, "retry_backoff": 1.0}
REASONS = ("malformed", "invalid_event", "type_mismatch", "max_deliveries", "handler_error")

BusFactory = Callable[..., TransportEventBus]


@pytest.fixture(params=["memory", "redis"])
def make_bus(request: pytest.FixtureRequest) -> BusFactory:
    """Build buses of one backend (the buses of one test share its store; the test closes them)."""
    if request.param == "memory":
        streams = MemoryStreams()

        def in_memory(**options: Any) -> TransportEventBus:
            return InMemoryEventBus(streams, **options)

        return in_memory
    url = request.getfixturevalue("redis_url")
    request.getfixturevalue("redis_client")  # deletes the test's keys afterwards
    prefix = request.getfixturevalue("redis_key_prefix")

    def on_redis(**options: Any) -> TransportEventBus:
        return create_event_bus(url, namespace=f"{prefix}events", **options)

    return on_redis


async def test_outcomes_dead_letters_and_handler_time_are_counted(make_bus: BusFactory) -> None:
    """ok, retry and dead_letter outcomes, dead letters by reason, handler runs and published events, per type."""
    registry = MetricsRegistry("t")
    bus = make_bus(group="billing", max_deliveries=2, metrics=registry, **FAST)
    handled: list[str] = []

    @bus.subscribe("reading.stored")
    async def on_reading(event: Event) -> None:
        if event.data.get("fail"):
            raise RuntimeError("cannot store")
        handled.append(event.id)

    consumed = {"event_type": "reading.stored", "group": "billing"}
    # Every series exists before the first event (rate() needs the 0).
    for outcome in ("ok", "retry", "dead_letter"):
        assert metric_value(registry, "t_events_consumed_total", **consumed, outcome=outcome) == 0
    for reason in REASONS:
        assert metric_value(registry, "t_events_dead_letters_total", group="billing", reason=reason) == 0
    async with bus:
        for n in range(3):
            await bus.publish("reading.stored", {"n": n})
        await bus.publish("reading.stored", {"fail": True})
        await wait_for(lambda: bus.stats.dead_lettered == 1 and len(handled) == 3)
    assert metric_value(registry, "t_events_published_total", event_type="reading.stored") == 4
    assert metric_value(registry, "t_events_consumed_total", **consumed, outcome="ok") == 3
    assert metric_value(registry, "t_events_consumed_total", **consumed, outcome="retry") == 1
    assert metric_value(registry, "t_events_consumed_total", **consumed, outcome="dead_letter") == 1
    assert metric_value(registry, "t_events_dead_letters_total", group="billing", reason="handler_error") == 1
    assert metric_value(registry, "t_events_dead_letters_total", group="billing", reason="malformed") == 0
    # Three successful runs and two failing ones of the handler.
    assert metric_value(registry, "t_events_handler_duration_seconds_count", **consumed) == 5


async def test_lag_and_pending_follow_a_busy_group(make_bus: BusFactory) -> None:
    """A consumer stuck in a handler: the rest of the stream is lag, the one it holds is pending; then both drain."""
    registry = MetricsRegistry("t")
    # The events are published before the group exists: it starts from the oldest.
    async with make_bus(group="publisher", **FAST) as publisher:
        for n in range(5):
            await publisher.publish("job.run", {"n": n})
    # min_idle long enough that the held entry is not redelivered meanwhile.
    bus = make_bus(group="workers", batch_size=1, metrics=registry, **{**FAST, "min_idle": 30.0})
    release = asyncio.Event()
    done: list[int] = []

    @bus.subscribe("job.run")
    async def on_job(event: Event) -> None:
        await release.wait()
        done.append(event.data["n"])

    labels = {"event_type": "job.run", "group": "workers"}
    async with bus:
        await wait_for(lambda: metric_value(registry, "t_events_lag", **labels) == 4, within=5)
        assert metric_value(registry, "t_events_pending", **labels) == 1
        assert metric_value(registry, "t_events_connected", group="workers") == 1
        release.set()
        await wait_for(lambda: len(done) == 5)
        await wait_for(lambda: metric_value(registry, "t_events_lag", **labels) == 0, within=5)
        await wait_for(lambda: metric_value(registry, "t_events_pending", **labels) == 0, within=5)
    # The publisher-only bus was given no sink: it recorded nothing.
    assert metric_value(registry, "t_events_published_total", event_type="job.run") is None


async def test_malformed_entries_are_counted_by_reason(make_bus: BusFactory) -> None:
    """An entry without an event, an invalid event and an event of another type: one reason each."""
    registry = MetricsRegistry("t")
    bus = make_bus(group="billing", metrics=registry, **FAST)
    seen: list[str] = []

    @bus.subscribe("reading.stored")
    async def on_reading(event: Event) -> None:
        seen.append(event.id)

    stream = bus.stream_for("reading.stored")
    async with bus:
        await bus.stream_transport.append(stream, {"other": b"x"}, maxlen=100)
        await bus.stream_transport.append(stream, {"event": b"{not json"}, maxlen=100)
        other = await bus.publish("device.registered", {"id": "m1"})
        await bus.stream_transport.append(stream, {"event": encode_event(other)}, maxlen=100)
        await bus.publish("reading.stored", {"n": 1})
        await wait_for(lambda: bus.stats.dead_lettered == 3 and len(seen) == 1)
    for reason in ("malformed", "invalid_event", "type_mismatch"):
        assert metric_value(registry, "t_events_dead_letters_total", group="billing", reason=reason) == 1, reason
    consumed = {"event_type": "reading.stored", "group": "billing"}
    assert metric_value(registry, "t_events_consumed_total", **consumed, outcome="dead_letter") == 3
    assert metric_value(registry, "t_events_consumed_total", **consumed, outcome="ok") == 1
    assert metric_value(registry, "t_events_published_total", event_type="device.registered") == 1


async def test_encoded_publishes_are_counted_per_type(make_bus: BusFactory) -> None:
    """publish_encoded and publish_encoded_many (the outbox relay's path) count each event under its type."""
    registry = MetricsRegistry("t")
    async with make_bus(group="source", **FAST) as source:
        a = await source.publish("a.happened", {})
        b = await source.publish("b.happened", {})
    raw_a, raw_b = encode_event(a), encode_event(b)
    async with make_bus(group="relay", metrics=registry, **FAST) as bus:
        await bus.publish_encoded(raw_a)
        await bus.publish_encoded_many([raw_a, raw_b, raw_a])
    assert metric_value(registry, "t_events_published_total", event_type="a.happened") == 3
    assert metric_value(registry, "t_events_published_total", event_type="b.happened") == 1


async def test_lag_is_counted_when_redis_cannot_tell(redis_url: str, redis_key_prefix: str, redis_client: Any) -> None:
    """After XDEL behind the group's last delivered entry Redis reports no lag: the transport counts it."""
    from energy_messaging.events.redis_streams import RedisStreamsTransport, connect

    transport = RedisStreamsTransport(connect(redis_url), owns_client=True)
    stream = f"{redis_key_prefix}stream"
    try:
        with pytest.raises(NoGroupError):
            await transport.group_state(stream, "g")
        await transport.ensure_group(stream, "g", start_id="0")
        with pytest.raises(NoGroupError):
            await transport.group_state(stream, "other")
        ids = [await transport.append(stream, {"event": b"{}"}, maxlen=100) for _ in range(6)]
        await transport.read_new([stream], "g", "c", count=2, block=0.1, acks={})
        state = await transport.group_state(stream, "g")
        assert (state.lag, state.pending) == (4, 2)
        await transport.delete_entries(stream, [ids[3]])
        info = await redis_client.xinfo_groups(stream)
        assert info[0]["lag"] is None  # what the fallback is for
        state = await transport.group_state(stream, "g")
        assert (state.lag, state.pending) == (3, 2)
    finally:
        await transport.aclose()


async def test_memory_lag_counts_around_deleted_entries() -> None:
    """The in-process store counts the entries after the group's last delivered one, deleted ones left out."""
    streams = MemoryStreams()
    await streams.ensure_group("s", "g", start_id="0")
    ids = [await streams.append("s", {"event": b"{}"}, maxlen=100) for _ in range(6)]
    await streams.read_new(["s"], "g", "c", count=2, block=0.01, acks={})
    assert (await streams.group_state("s", "g")).lag == 4
    await streams.delete_entries("s", [ids[4]])
    state = await streams.group_state("s", "g")
    assert (state.lag, state.pending) == (3, 2)
    with pytest.raises(NoGroupError):
        await streams.group_state("s", "other")


async def test_unreachable_backend_reads_disconnected(free_redis_url: str) -> None:
    """With Redis down the consumer keeps retrying; the gauge says so, and sampling never stops the bus."""
    registry = MetricsRegistry("t")
    bus = create_event_bus(free_redis_url, group="billing", metrics=registry, **FAST)

    @bus.subscribe("reading.stored")
    async def on_reading(event: Event) -> None:
        raise AssertionError("nothing can be delivered")

    async with bus:
        await wait_for(lambda: metric_value(registry, "t_events_connected", group="billing") == 0, within=10)
        assert bus.stats.connection_errors >= 1
        with pytest.raises(EventBusConnectionError):
            await bus.publish("reading.stored", {"n": 1})
    failed = {"event_type": "reading.stored", "error": "EVENT_BUS_UNAVAILABLE"}
    assert metric_value(registry, "t_events_publish_errors_total", **failed) == 1
    assert metric_value(registry, "t_events_published_total", event_type="reading.stored") is None


async def test_refused_publishes_are_counted_by_error(make_bus: BusFactory) -> None:
    """A publish the bus refuses (data that is not JSON) is counted under its error code, and nothing is sent."""
    registry = MetricsRegistry("t")
    async with make_bus(group="billing", metrics=registry, **FAST) as bus:
        with pytest.raises(InvalidEventError):
            await bus.publish("reading.stored", {"when": object()})
        assert await bus.stream_transport.range(bus.stream_for("reading.stored"), 10) == []
    failed = {"event_type": "reading.stored", "error": "INVALID_EVENT"}
    assert metric_value(registry, "t_events_publish_errors_total", **failed) == 1


@pytest.fixture
def free_redis_url() -> str:
    """A redis:// URL on a loopback port nothing listens on."""
    pytest.importorskip("redis")
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.mark.parametrize("metrics", [object(), "registry", 42])
def test_a_bad_sink_is_refused(metrics: object) -> None:
    """Anything without the three MetricsSink methods is refused at construction, naming the option."""
    with pytest.raises(EventBusConfigurationError) as caught:
        InMemoryEventBus(metrics=metrics)  # type: ignore[arg-type]
    assert caught.value.details == {"option": "metrics"}
    with pytest.raises(EventBusConfigurationError):
        create_event_bus("memory://", metrics=metrics)
