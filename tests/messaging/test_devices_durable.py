"""Durable commands on the real Mosquitto and Redis: replicas, deliver_when_online, idempotency, limits, telemetry."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any

import pytest
from energy_common.context import correlation_scope, get_correlation_id
from energy_messaging import DeviceManager, DeviceSimulator, MQTTManager, MQTTMessage
from energy_messaging.devices import Command, CommandOptions, CommandStore, reply_payload, status_payload
from energy_messaging.errors import (
    CommandLimitError,
    CommandNotCancellableError,
    DeviceOfflineError,
    MQTTOptionsError,
)

WaitUntil = Callable[..., Awaitable[None]]

pytestmark = pytest.mark.mqtt


@pytest.fixture
def root(mqtt_topic_prefix: str) -> str:
    """Device topic root under this test's prefix."""
    return f"{mqtt_topic_prefix}/devices"


@pytest.fixture
def shared_store(redis_client: Any, redis_key_prefix: str) -> CommandStore:
    """A Redis command store shared by the replicas of a test."""
    from energy_messaging.redis_commands import RedisCommandStore

    return RedisCommandStore(redis_client, prefix=f"{{{redis_key_prefix}cmd}}:")


class Replicas:
    """Replicas of one service: each its own MQTT connection and DeviceManager over one store."""

    def __init__(self, stack: AsyncExitStack, broker: Any, root: str, store: CommandStore) -> None:
        self.stack, self.broker, self.root, self.store = stack, broker, root, store
        self.group = f"g{uuid.uuid4().hex[:8]}"
        self.transitions: list[tuple[int, str, str]] = []
        #: ``(command_id, state, correlation id current in the hook)`` of every transition.
        self.correlation_ids: list[tuple[str, str, str | None]] = []
        self.count = 0

    async def add(self, **options: Any) -> DeviceManager:
        """Start one more replica (same instance id and share group, so any replica takes a reply)."""
        mqtt = await self.stack.enter_async_context(MQTTManager(self.broker.host, self.broker.port))
        index, self.count = self.count, self.count + 1
        devices = DeviceManager(
            mqtt,
            topic_root=self.root,
            instance_id="svc",
            on_command=lambda c, i=index: self._seen(i, c),
            commands=CommandOptions(store=self.store, reply_share_group=self.group, sweep_interval=0.2, **options),
        )
        self.stack.push_async_callback(devices.aclose)
        return devices

    def _seen(self, index: int, cmd: Command) -> None:
        self.transitions.append((index, cmd.command_id, cmd.state))
        self.correlation_ids.append((cmd.command_id, cmd.state, get_correlation_id()))


@pytest.fixture
async def replicas(mqtt_broker: Any, root: str, shared_store: CommandStore) -> AsyncIterator[Replicas]:
    """A factory of service replicas sharing the Redis store, all stopped afterwards."""
    stack = AsyncExitStack()
    yield Replicas(stack, mqtt_broker, root, shared_store)
    # Closed in a task of its own, bounded: a teardown must end by itself.
    await asyncio.wait_for(stack.aclose(), 30)


def simulator(mqtt_broker: Any, root: str, device_id: str = "m1") -> DeviceSimulator:
    """A simulated meter under ``root``."""
    return DeviceSimulator(device_id, mqtt_broker.host, mqtt_broker.port, topic_root=root, interval=None)


async def wire_listener(mqtt: MQTTManager, root: str, device_id: str = "m1") -> list[dict[str, Any]]:
    """Subscribe to a device's command topic and return the list the commands land in."""
    seen: list[dict[str, Any]] = []

    async def record(message: MQTTMessage) -> None:
        seen.append(message.payload)

    await mqtt.subscribe(f"{root}/{device_id}/commands", record)
    return seen


async def offline(devices: DeviceManager, wait_until: WaitUntil, device_id: str = "m1") -> None:
    """Register the device and announce it offline (retained, as its Last Will would)."""
    await devices.register_device(device_id, "meter")
    await devices.mqtt.publish(f"{devices.topics.root}/{device_id}/status", status_payload("offline", 1), retain=True)

    async def is_offline() -> bool:
        return (await devices.get_device(device_id)).status == "offline"

    for _ in range(500):
        if await is_offline():
            return
        await asyncio.sleep(0.01)
    pytest.fail("the device never went offline")


async def test_reply_taken_by_another_replica_reaches_the_waiting_call(
    replicas: Replicas, mqtt_broker: Any, root: str
) -> None:
    """With a shared reply subscription, replies land on either replica; the sender's wait and any GET see them."""
    a = await replicas.add()
    b = await replicas.add()
    for devices in (a, b):
        await devices.register_device("m1", "meter")
    async with simulator(mqtt_broker, root):
        ids = [(await a.submit_command("m1", "ping", timeout=5)).command_id for _ in range(8)]
        finished = [await a.wait_command(command_id, timeout=10) for command_id in ids]
    assert [cmd.state for cmd in finished] == ["succeeded"] * 8
    assert all(cmd.result == {"pong": True} for cmd in finished)
    assert (await b.get_command(ids[0])).state == "succeeded"
    takers = {index for index, _, state in replicas.transitions if state == "succeeded"}
    assert takers == {0, 1}, "Mosquitto spreads a shared subscription over both replicas"


async def test_deliver_when_online_is_delivered_once(
    replicas: Replicas, mqtt_broker: Any, root: str, wait_until: WaitUntil
) -> None:
    """A command for an offline meter stays queued, then goes out once when it comes online (two replicas see it)."""
    a = await replicas.add()
    b = await replicas.add()
    wire = await wire_listener(a.mqtt, root)
    for devices in (a, b):
        await offline(devices, wait_until)
    cmd = await a.submit_command("m1", "ping", deliver_when_online=True, expires_in=20, timeout=5)
    assert cmd.state == "queued"
    await asyncio.sleep(0.5)  # sweeps of both replicas pass: still offline, still queued
    assert (await b.get_command(cmd.command_id)).state == "queued"
    async with simulator(mqtt_broker, root) as sim:
        done = await b.wait_command(cmd.command_id, timeout=10)
        await asyncio.sleep(0.5)
        assert sim.commands_handled == 1
    assert done.state == "succeeded"
    assert [state for state, _ in done.history] == ["queued", "sent", "succeeded"]
    assert [p["id"] for p in wire] == [cmd.command_id]


async def test_a_queued_command_goes_out_under_the_correlation_id_of_its_request(
    replicas: Replicas, mqtt_broker: Any, root: str, wait_until: WaitUntil
) -> None:
    """Sent when the meter comes online (from the status handler), the command still carries its request's id.

    The wire message, the meter's reply and every transition hook (sent, succeeded) see
    the correlation id current when the command was submitted, not the status message's;
    so does the hook of another queued command that the sweeper expires.
    """
    a = await replicas.add()
    wire: list[tuple[str, str | None]] = []
    replies: list[tuple[str, str | None]] = []

    async def record(message: MQTTMessage) -> None:
        seen = replies if "/replies/" in message.topic else wire
        seen.append((message.payload["id"], message.correlation_id))

    listener = await replicas.stack.enter_async_context(MQTTManager(mqtt_broker.host, mqtt_broker.port))
    await listener.subscribe(f"{root}/m1/commands", record)
    await listener.subscribe(f"{root}/m1/replies/+", record)
    await offline(a, wait_until)
    with correlation_scope("req-queued-42"):
        cmd = await a.submit_command("m1", "ping", deliver_when_online=True, expires_in=20, timeout=5)
    with correlation_scope("req-expiring-7"):
        expiring = await a.submit_command("m1", "ping", deliver_when_online=True, expires_in=0.2)
    assert cmd.state == "queued"
    assert get_correlation_id() is None

    def expired() -> list[tuple[str, str | None]]:
        return [
            (state, cid) for command_id, state, cid in replicas.correlation_ids if command_id == expiring.command_id
        ]

    await wait_until(lambda: ("expired", "req-expiring-7") in expired() or len(expired()) > 1)
    assert expired() == [("queued", "req-expiring-7"), ("expired", "req-expiring-7")]  # the sweeper's transition
    async with simulator(mqtt_broker, root):
        done = await a.wait_command(cmd.command_id, timeout=10)
    assert done.state == "succeeded"
    await wait_until(lambda: wire and replies)
    assert wire == [(cmd.command_id, "req-queued-42")]
    assert replies == [(cmd.command_id, "req-queued-42")]  # the meter answers under the command's id
    hooks = [(state, cid) for command_id, state, cid in replicas.correlation_ids if command_id == cmd.command_id]
    assert hooks == [("queued", "req-queued-42"), ("sent", "req-queued-42"), ("succeeded", "req-queued-42")]


async def test_deliver_when_online_expires_cleanly(replicas: Replicas, root: str, wait_until: WaitUntil) -> None:
    """A queued command whose meter stays offline expires at its expiry and is never published."""
    a = await replicas.add()
    wire = await wire_listener(a.mqtt, root)
    await offline(a, wait_until)
    cmd = await a.submit_command("m1", "ping", deliver_when_online=True, expires_in=0.3)
    done = await a.wait_command(cmd.command_id, timeout=5)
    assert done.state == "expired"
    assert done.error == {"code": "COMMAND_EXPIRED"}
    await a.mqtt.publish(f"{root}/m1/status", status_payload("online", 2), retain=True)
    await asyncio.sleep(0.5)
    assert wire == []
    assert (await a.get_command(cmd.command_id)).state == "expired"


async def test_same_idempotency_key_is_one_command_on_the_wire(replicas: Replicas, root: str) -> None:
    """Concurrent requests with one idempotency key, on two replicas, publish one command and return its id."""
    a = await replicas.add()
    b = await replicas.add()
    wire = await wire_listener(a.mqtt, root)
    for devices in (a, b):
        await devices.register_device("m1", "meter")
    results = await asyncio.gather(
        *(replica.submit_command("m1", "ping", idempotency_key="req-42", timeout=5) for replica in (a, b, a, b))
    )
    assert len({cmd.command_id for cmd in results}) == 1
    await asyncio.sleep(0.5)
    assert [p["id"] for p in wire] == [results[0].command_id]
    again = await b.submit_command("m1", "ping", idempotency_key="req-42")
    assert again.command_id == results[0].command_id


async def test_in_flight_limit_and_cancellation(replicas: Replicas, root: str, wait_until: WaitUntil) -> None:
    """Past max_in_flight a submit is a 429 CommandLimitError; only a queued command can be cancelled."""
    a = await replicas.add(max_in_flight=1)
    wire = await wire_listener(a.mqtt, root, "m2")
    await a.register_device("silent", "meter")
    sent = await a.submit_command("silent", "ping", timeout=30)
    with pytest.raises(CommandLimitError) as info:
        await a.submit_command("silent", "ping")
    assert info.value.status_code == 429
    with pytest.raises(CommandNotCancellableError) as refused:
        await a.cancel_command(sent.command_id)
    assert refused.value.details["state"] == "sent"
    await offline(a, wait_until, "m2")
    queued = await a.submit_command("m2", "ping", deliver_when_online=True, expires_in=30)
    cancelled = await a.cancel_command(queued.command_id)
    assert cancelled.state == "cancelled"
    await a.mqtt.publish(f"{root}/m2/status", status_payload("online", 2), retain=True)
    await asyncio.sleep(0.5)
    assert wire == []
    await offline(a, wait_until, "m3")
    with pytest.raises(DeviceOfflineError):
        await a.submit_command("m3", "ping")


async def test_late_reply_after_timeout_is_recorded(replicas: Replicas, root: str) -> None:
    """A reply that arrives after timed_out keeps the state and is kept in late_reply."""
    a = await replicas.add()
    await a.register_device("slow", "meter")
    cmd = await a.submit_command("slow", "ping", timeout=0.2)
    done = await a.wait_command(cmd.command_id, timeout=5)
    assert done.state == "timed_out"
    await a.mqtt.publish(f"{root}/slow/replies/svc", reply_payload(cmd.command_id, result={"pong": True}))
    for _ in range(200):
        late = await a.get_command(cmd.command_id)
        if late.late_reply is not None:
            break
        await asyncio.sleep(0.02)
    assert late.state == "timed_out"
    assert late.late_reply is not None
    assert (late.late_reply["ok"], late.late_reply["value"]) == (True, {"pong": True})


class Recorder:
    """A CommandMetrics implementation recording what it is given (the service's registry in production)."""

    def __init__(self) -> None:
        self.counters: list[tuple[str, dict[str, object]]] = []
        self.durations: list[tuple[str, float, dict[str, object]]] = []

    def increment_counter(self, name: str, value: float = 1, tags: Mapping[str, object] | None = None) -> None:
        """Record a counter increment."""
        self.counters.append((name, dict(tags or {})))

    def observe_duration(self, name: str, seconds: float, tags: Mapping[str, object] | None = None) -> None:
        """Record a duration."""
        self.durations.append((name, seconds, dict(tags or {})))


async def test_one_span_per_command_with_events_and_metrics(replicas: Replicas, mqtt_broker: Any, root: str) -> None:
    """Each command is one CLIENT span with sent/reply/timeout events; outcomes and round trips are counted by state."""
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = sdk_trace.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    metrics = Recorder()
    a = await replicas.add(metrics=metrics, tracer_provider=provider)
    await a.register_device("m1", "meter")
    await a.register_device("silent", "meter")
    async with simulator(mqtt_broker, root):
        assert await a.send_command("m1", "ping", timeout=5) == {"pong": True}
    with pytest.raises(Exception, match="did not answer"):
        await a.send_command("silent", "ping", timeout=0.2)
    spans = {span.name + ":" + span.attributes["energy.command.state"]: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"command ping:succeeded", "command ping:timed_out"}
    ok, late = spans["command ping:succeeded"], spans["command ping:timed_out"]
    assert [event.name for event in ok.events] == ["sent", "reply"]
    assert [event.name for event in late.events] == ["sent", "timeout"]
    assert ok.status.is_ok
    assert not late.status.is_ok
    assert "device" not in str(metrics.counters)
    assert metrics.counters == [("commands", {"state": "succeeded"}), ("commands", {"state": "timed_out"})]
    assert [(name, tags) for name, _, tags in metrics.durations] == [("command.round_trip", {"state": "succeeded"})]


async def test_a_command_sent_by_another_replica_stays_in_its_trace(
    replicas: Replicas, mqtt_broker: Any, root: str, wait_until: WaitUntil
) -> None:
    """The accepting replica is gone when the meter comes online: the one that sends it continues the command's trace."""
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    provider = sdk_trace.TracerProvider()
    first = await replicas.add(tracer_provider=provider)
    await offline(first, wait_until)
    cmd = await first.submit_command("m1", "ping", deliver_when_online=True, expires_in=20, timeout=5)
    # The stored record carries the command span's context (the accepting replica holds the span).
    stored = await replicas.store.get(cmd.command_id)
    assert stored is not None
    assert stored.trace_context is not None
    _, trace_id, span_id, _ = stored.trace_context["traceparent"].split("-")
    (held,) = [first.commands.telemetry._spans[cmd.command_id]]
    assert f"{held.get_span_context().trace_id:032x}" == trace_id
    assert f"{held.get_span_context().span_id:016x}" == span_id
    await first.aclose()  # a deploy: the replica that accepted the command stops
    await first.mqtt.disconnect()

    second = await replicas.add(tracer_provider=provider)
    await offline(second, wait_until)
    carried: list[dict[str, str]] = []

    async def record(message: MQTTMessage) -> None:
        carried.append(dict(message.trace_context or {}))

    await second.mqtt.subscribe(f"{root}/m1/commands", record)
    async with simulator(mqtt_broker, root):
        done = await second.wait_command(cmd.command_id, timeout=10)
    assert done.state == "succeeded"
    await wait_until(lambda: carried, within=5)
    # The command went out in the command span's trace (under it: the publish span, with an SDK).
    (context,) = carried
    assert context["traceparent"].split("-")[1] == trace_id


async def test_a_duplicate_request_opens_no_second_span(replicas: Replicas, mqtt_broker: Any) -> None:
    """A request repeating an idempotency key returns the first command; the span it started is dropped."""
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    provider = sdk_trace.TracerProvider()
    devices = await replicas.add(tracer_provider=provider)
    await devices.register_device("m1", "meter")
    one = await devices.submit_command("m1", "ping", deliver_when_online=True, idempotency_key="k1")
    again = await devices.submit_command("m1", "ping", deliver_when_online=True, idempotency_key="k1")
    assert again.command_id == one.command_id
    assert again.trace_context == one.trace_context
    assert devices.commands.telemetry.open_ids() == {one.command_id}


def test_command_options_are_validated() -> None:
    """Out-of-range command options raise MQTTOptionsError naming the option."""
    with pytest.raises(MQTTOptionsError) as info:
        CommandOptions(max_in_flight=0)
    assert info.value.details["option"] == "max_in_flight"
    with pytest.raises(MQTTOptionsError):
        CommandOptions(sweep_interval=0)


def test_command_record_round_trips_through_json() -> None:
    """Command.to_dict / from_dict keep every field, and unknown keys are ignored."""
    cmd = Command("m1", "ping", {"a": 1}, deliver_when_online=True, idempotency_key="k", expires_at=5.0)
    cmd.trace_context = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    cmd.move("queued", at=1.0)
    again = Command.from_dict({**cmd.to_dict(), "future_field": 1})
    assert again == cmd
    assert again.at("queued") == 1.0
    assert again.at("sent") is None
