"""MQTTManager against the real Mosquitto: routing, shared subscriptions, dead letters, context."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from energy_common.context import correlation_scope, get_correlation_id
from energy_messaging import DeadLetter, MQTTManager, MQTTMessage
from energy_messaging.errors import (
    MessagingConnectionError,
    NotConnectedError,
    PayloadEncodeError,
    PublishBufferFullError,
    PublishError,
    TopicValidationError,
)
from pydantic import BaseModel

WaitUntil = Callable[..., Awaitable[None]]

pytestmark = pytest.mark.mqtt


async def test_wildcard_routing_and_params(
    wait_until: WaitUntil, make_manager: Callable[..., MQTTManager], mqtt_topic_prefix: str
) -> None:
    """'+', '#' and named levels route to the right handlers with parameters and decoded JSON."""
    p = mqtt_topic_prefix
    seen: dict[str, list[MQTTMessage]] = {"plus": [], "hash": [], "named": []}
    async with make_manager() as mqtt:

        async def plus(m: MQTTMessage) -> None:
            seen["plus"].append(m)

        await mqtt.subscribe(f"{p}/devices/+/status", plus)

        @mqtt.on(f"{p}/devices/#")
        async def everything(m: MQTTMessage) -> None:
            seen["hash"].append(m)

        @mqtt.on(f"{p}/devices/{{device_id}}/telemetry")
        async def named(m: MQTTMessage) -> None:
            seen["named"].append(m)

        await asyncio.sleep(0.2)  # the decorator subscribes in the background
        await mqtt.publish(f"{p}/devices/s1/telemetry", {"power_w": 12.5})
        await mqtt.publish(f"{p}/devices/s2/status", {"status": "online", "seq": 1})
        await wait_until(lambda: len(seen["hash"]) == 2 and len(seen["named"]) == 1 and len(seen["plus"]) == 1)
        assert seen["named"][0].params == {"device_id": "s1"}
        assert seen["named"][0].payload == {"power_w": 12.5}
        assert seen["named"][0].raw == b'{"power_w":12.5}'
        assert seen["plus"][0].topic == f"{p}/devices/s2/status"
        assert mqtt.protocol == "5"


async def test_shared_subscription_handles_each_message_once(
    wait_until: WaitUntil, make_manager: Callable[..., MQTTManager], mqtt_topic_prefix: str
) -> None:
    """Three managers in one $share group together handle every message exactly once."""
    handled: list[list[int]] = [[], [], []]
    managers = [make_manager() for _ in range(3)]
    for index, mqtt in enumerate(managers):
        await mqtt.connect()

        async def handler(m: MQTTMessage, index: int = index) -> None:
            handled[index].append(m.payload["n"])

        await mqtt.subscribe(f"$share/grp/{mqtt_topic_prefix}/t/{{device_id}}", handler)
    try:
        async with make_manager() as publisher:
            for n in range(300):
                await publisher.publish(f"{mqtt_topic_prefix}/t/d{n % 7}", {"n": n}, wait=False)
            await wait_until(lambda: sum(map(len, handled)) >= 300, 10)
            await asyncio.sleep(0.2)
        everything = sorted(n for part in handled for n in part)
        assert everything == list(range(300))
        assert sum(1 for part in handled if part) >= 2  # the broker really spread the load
    finally:
        for mqtt in managers:
            await mqtt.disconnect()


async def test_malformed_payload_goes_to_dead_letter_and_consumer_continues(
    wait_until: WaitUntil, make_manager: Callable[..., MQTTManager], mqtt_topic_prefix: str
) -> None:
    """Undecodable and invalid payloads reach the hook and the dead-letter topic; later messages still flow."""

    class Reading(BaseModel):
        power_w: float

    letters: list[DeadLetter] = []
    topic_letters: list[Any] = []
    good: list[Reading] = []
    dlq = f"{mqtt_topic_prefix}/dlq"
    async with make_manager(on_dead_letter=letters.append, dead_letter_topic=dlq) as mqtt:

        async def collect(m: MQTTMessage) -> None:
            topic_letters.append(m.payload)

        async def handle(m: MQTTMessage) -> None:
            good.append(m.payload)

        await mqtt.subscribe(dlq, collect)
        await mqtt.subscribe(f"{mqtt_topic_prefix}/in", handle, model=Reading)
        await mqtt.publish(f"{mqtt_topic_prefix}/in", b"{not json")
        await mqtt.publish(f"{mqtt_topic_prefix}/in", b"\xff\xfe")
        await mqtt.publish(f"{mqtt_topic_prefix}/in", {"power_w": "lots"})
        await mqtt.publish(f"{mqtt_topic_prefix}/in", {"power_w": 3})
        await wait_until(lambda: len(good) == 1 and len(topic_letters) == 3)
        assert [letter.reason for letter in letters] == ["decode_error", "decode_error", "validation_error"]
        assert mqtt.state.dead_letters == 3
        assert topic_letters[0]["reason"] == "decode_error"
        assert topic_letters[0]["payload"] == "{not json"
        assert good[0].power_w == 3


@pytest.mark.parametrize("error", [RuntimeError, asyncio.CancelledError])
async def test_handler_exception_is_counted_and_consumer_continues(
    wait_until: WaitUntil, make_manager: Callable[..., MQTTManager], mqtt_topic_prefix: str, error: type[BaseException]
) -> None:
    """A failing handler is logged and counted; the next message is still handled (by the one worker).

    A handler's own CancelledError is such a failure too: it must not end the worker task.
    """
    handled: list[int] = []
    async with make_manager(handler_concurrency=1) as mqtt:

        async def flaky(m: MQTTMessage) -> None:
            if m.payload["n"] == 0:
                raise error("boom")
            handled.append(m.payload["n"])

        await mqtt.subscribe(f"{mqtt_topic_prefix}/x", flaky)
        await mqtt.publish(f"{mqtt_topic_prefix}/x", {"n": 0})
        await mqtt.publish(f"{mqtt_topic_prefix}/x", {"n": 1})
        await wait_until(lambda: handled == [1])
        assert mqtt.state.handler_errors == 1


async def test_correlation_id_and_raw_mode(
    wait_until: WaitUntil, make_manager: Callable[..., MQTTManager], mqtt_topic_prefix: str
) -> None:
    """The publisher's correlation id is current in the handler; decode=False hands over bytes."""
    got: list[tuple[Any, str | None, str | None]] = []
    async with make_manager() as mqtt:

        async def handler(m: MQTTMessage) -> None:
            got.append((m.payload, m.correlation_id, get_correlation_id()))

        await mqtt.subscribe(f"{mqtt_topic_prefix}/raw", handler, decode=False)
        with correlation_scope("req-77"):
            await mqtt.publish(f"{mqtt_topic_prefix}/raw", b"\x00\x01")
        await wait_until(lambda: len(got) == 1)
    assert got == [(b"\x00\x01", "req-77", "req-77")]


@pytest.mark.parametrize("topic", [f"x/{c}/y" for c in ("+", "#")] + ["a\x00b", ""])
async def test_publish_refuses_injected_topics(make_manager: Callable[..., MQTTManager], topic: str) -> None:
    """Publishing to a wildcard/NUL topic is refused before anything is sent."""
    async with make_manager() as mqtt:
        with pytest.raises(TopicValidationError):
            await mqtt.publish(topic, {"a": 1})


async def test_publish_refuses_unserialisable_payload(make_manager: Callable[..., MQTTManager]) -> None:
    """A payload JSON cannot represent raises PayloadEncodeError."""
    async with make_manager() as mqtt:
        with pytest.raises(PayloadEncodeError):
            await mqtt.publish("t/x", {"a": object()})
        with pytest.raises(PayloadEncodeError):
            await mqtt.publish("t/x", {"a": float("nan")})


async def test_not_started_and_unreachable() -> None:
    """Publishing before connect is a clear error; an unreachable broker fails connect() with a typed error."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mqtt = MQTTManager("127.0.0.1", port, connect_timeout=0.5)
    with pytest.raises(NotConnectedError):
        await mqtt.publish("t/x", {})
    with pytest.raises(MessagingConnectionError) as info:
        await mqtt.connect()
    assert info.value.details["port"] == port
    assert not mqtt.is_connected


async def test_buffer_while_disconnected(wait_until: WaitUntil, mosquitto_factory: Callable[..., Any]) -> None:
    """While the broker is down publishes wait in a bounded buffer, overflow is an error, and the rest arrive later."""
    # As root, mosquitto drops to its own user and cannot write the temporary persistence directory.
    broker = mosquitto_factory()
    received: list[int] = []
    async with (
        MQTTManager(broker.host, broker.port, client_id="buf-sub", reconnect_max_delay=0.5) as sub,
        MQTTManager(broker.host, broker.port, max_buffered_publishes=5, reconnect_max_delay=0.5) as pub,
    ):

        async def handler(m: MQTTMessage) -> None:
            received.append(m.payload["n"])

        await sub.subscribe("buf/t", handler)
        broker.stop()
        await wait_until(lambda: not pub.is_connected)
        for n in range(5):
            await pub.publish("buf/t", {"n": n}, wait=False)
        with pytest.raises(PublishBufferFullError) as info:
            await pub.publish("buf/t", {"n": 99}, wait=False)
        assert info.value.status_code == 503
        assert pub.state.buffered_publishes == 5
        broker.start()
        await wait_until(lambda: sorted(received) == [0, 1, 2, 3, 4], 15)
        assert pub.state.reconnect_count >= 1
        assert sub.state.reconnect_count >= 1


# amqtt 0.12 warns about its own legacy config and plugin loading; not ours to fix.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_fallback_to_mqtt_311_with_context_in_payload(wait_until: WaitUntil, unused_tcp_port: int) -> None:
    """Against the embedded amqtt broker (3.1.1 only) the manager falls back and carries context in ``_ctx``."""
    broker_mod = pytest.importorskip("amqtt.broker")
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{unused_tcp_port}"}},
        "auth": {"allow-anonymous": True},
    }
    broker = broker_mod.Broker(config)
    await broker.start()
    got: list[tuple[Any, str | None]] = []
    try:
        async with MQTTManager("127.0.0.1", unused_tcp_port) as mqtt:
            assert mqtt.protocol == "3.1.1"

            async def handler(m: MQTTMessage) -> None:
                got.append((m.payload, get_correlation_id()))

            await mqtt.subscribe("amq/{device_id}/t", handler)
            with correlation_scope("req-311"):
                await mqtt.publish("amq/d1/t", {"v": 1})
            await wait_until(lambda: len(got) == 1)
    finally:
        await broker.shutdown()
    assert got == [({"v": 1}, "req-311")]


async def test_graceful_shutdown_drains_running_handlers(
    wait_until: WaitUntil, make_manager: Callable[..., MQTTManager], mqtt_topic_prefix: str
) -> None:
    """disconnect() lets queued and running handlers finish before it returns."""
    done: list[int] = []
    sub = make_manager(handler_concurrency=2)
    await sub.connect()

    async def slow(m: MQTTMessage) -> None:
        await asyncio.sleep(0.1)
        done.append(m.payload["n"])

    await sub.subscribe(f"{mqtt_topic_prefix}/slow", slow)
    async with make_manager() as pub:
        for n in range(5):
            await pub.publish(f"{mqtt_topic_prefix}/slow", {"n": n})
    await wait_until(lambda: sub.state.messages_received == 5)
    await sub.disconnect(timeout=10)
    assert sorted(done) == [0, 1, 2, 3, 4]
    assert not sub.is_connected


async def test_unfinished_message_is_redelivered_after_shutdown_timeout(
    wait_until: WaitUntil, make_manager: Callable[..., MQTTManager], mqtt_topic_prefix: str
) -> None:
    """A handler still running at the shutdown deadline leaves its QoS 1 message unacked; the session gets it again."""
    client_id = f"redeliver-{mqtt_topic_prefix.rsplit('/', 1)[-1]}"
    topic = f"{mqtt_topic_prefix}/stuck"
    never = asyncio.Event()
    first = make_manager(client_id=client_id, session_expiry=30)
    await first.connect()

    async def stuck(m: MQTTMessage) -> None:
        await never.wait()

    await first.subscribe(topic, stuck)
    async with make_manager() as pub:
        await pub.publish(topic, {"n": 1})
    await wait_until(lambda: first.state.messages_received == 1)
    await first.disconnect(timeout=0.2)
    again: list[MQTTMessage] = []
    second = make_manager(client_id=client_id, session_expiry=0)

    async def record(m: MQTTMessage) -> None:
        again.append(m)

    await second.subscribe(topic, record)
    async with second:
        await wait_until(lambda: len(again) == 1)
    assert again[0].payload == {"n": 1}
    assert again[0].duplicate


async def test_bounded_queue_applies_back_pressure_without_loss(
    wait_until: WaitUntil, make_manager: Callable[..., MQTTManager], mqtt_topic_prefix: str
) -> None:
    """With a tiny incoming queue and a slow handler, reading pauses and every QoS 0 message still arrives."""
    handled: list[int] = []
    async with make_manager(max_queued_messages=4, handler_concurrency=1) as sub:
        peak = 0

        async def slow(m: MQTTMessage) -> None:
            nonlocal peak
            peak = max(peak, sub.state.queued_messages)
            await asyncio.sleep(0.002)
            handled.append(m.payload["n"])

        await sub.subscribe(f"{mqtt_topic_prefix}/bp", slow, qos=0)
        async with make_manager() as pub:
            for n in range(200):
                await pub.publish(f"{mqtt_topic_prefix}/bp", {"n": n}, qos=0, wait=False)
            await pub.flush()
        await wait_until(lambda: len(handled) == 200, 15)
    assert handled == list(range(200))
    assert peak <= 4 + 16  # the queue bound plus what one socket read can carry


async def test_refused_publish_raises_publish_error(mosquitto_factory: Callable[..., Any], tmp_path: Any) -> None:
    """A QoS 1 publish the broker refuses (ACL) raises PublishError with the MQTT 5 reason code."""
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite allowed/#\n")
    broker = mosquitto_factory([f"acl_file {acl}"])
    async with MQTTManager(broker.host, broker.port) as mqtt:
        await mqtt.publish("allowed/x", {"ok": True})
        with pytest.raises(PublishError) as info:
            await mqtt.publish("denied/x", {"ok": False})
    assert info.value.details["reason_code"] == 0x87


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_trace_context_crosses_mqtt(
    wait_until: WaitUntil, make_manager: Callable[..., MQTTManager], mqtt_topic_prefix: str, protocol: str
) -> None:
    """The publisher's W3C trace context becomes the handler's parent span on MQTT 5 and on 3.1.1."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    parent = SpanContext(trace_id=0x1234, span_id=0x5678, is_remote=False, trace_flags=TraceFlags(1))
    seen: list[tuple[int, Any]] = []
    async with make_manager(protocol=protocol) as mqtt:

        async def handler(m: MQTTMessage) -> None:
            seen.append((trace.get_current_span().get_span_context().trace_id, m.payload))

        await mqtt.subscribe(f"{mqtt_topic_prefix}/trace", handler)
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(parent)))
        try:
            await mqtt.publish(f"{mqtt_topic_prefix}/trace", {"v": 1})
        finally:
            otel_context.detach(token)
        await wait_until(lambda: len(seen) == 1)
    assert seen == [(0x1234, {"v": 1})]  # the _ctx field never reaches the handler


async def test_disconnect_still_cancels_a_busy_worker(
    make_manager: Callable[..., MQTTManager], mqtt_topic_prefix: str
) -> None:
    """A handler still running when the shutdown budget ends is cancelled and its worker task ends."""
    started = asyncio.Event()
    mqtt = make_manager(handler_concurrency=1)
    await mqtt.connect()

    async def stuck(m: MQTTMessage) -> None:
        started.set()
        await asyncio.Event().wait()

    await mqtt.subscribe(f"{mqtt_topic_prefix}/stuck", stuck)
    await mqtt.publish(f"{mqtt_topic_prefix}/stuck", {"n": 0})
    await asyncio.wait_for(started.wait(), 5.0)
    await asyncio.wait_for(mqtt.disconnect(timeout=0.2), 10.0)
    workers = [t for t in asyncio.all_tasks() if (t.get_name() or "").startswith("energy-mqtt-handler-")]
    assert workers == []
    assert mqtt.state.handler_errors == 0


async def test_handler_exception_dead_letters_and_acknowledges(
    wait_until: WaitUntil, make_manager: Callable[..., MQTTManager], mqtt_topic_prefix: str
) -> None:
    """A message whose handler raised reaches the dead-letter hook as 'handler_error' and is not redelivered."""
    topic = f"{mqtt_topic_prefix}/poison"
    client_id = f"poison-{mqtt_topic_prefix.rsplit('/', 1)[-1]}"
    letters: list[DeadLetter] = []
    seen: list[int] = []

    async def fails_on_zero(m: MQTTMessage) -> None:
        seen.append(m.payload["n"])
        if m.payload["n"] == 0:
            raise RuntimeError("boom")

    async with make_manager() as publisher:
        async with make_manager(client_id=client_id, on_dead_letter=letters.append) as mqtt:
            await mqtt.subscribe(topic, fails_on_zero, qos=1)
            await publisher.publish(topic, {"n": 0}, qos=1)
            await wait_until(lambda: len(letters) == 1)
            assert mqtt.state.handler_errors == 1
            assert mqtt.state.dead_letters == 1
        assert [(letter.topic, letter.reason, letter.detail, letter.filter) for letter in letters] == [
            (topic, "handler_error", "RuntimeError: boom", topic)
        ]
        assert letters[0].raw == b'{"n":0}'
        # The same persistent session again: an unacknowledged message would come back first.
        async with make_manager(client_id=client_id, clean_start=False) as again:
            await again.subscribe(topic, fails_on_zero, qos=1)
            await publisher.publish(topic, {"n": 1}, qos=1)
            await wait_until(lambda: seen[-1:] == [1])
        async with make_manager(client_id=client_id, clean_start=True):
            pass  # drop the session
    assert seen == [0, 1]


async def test_failing_handler_on_the_dead_letter_topic_does_not_loop(
    wait_until: WaitUntil, make_manager: Callable[..., MQTTManager], mqtt_topic_prefix: str
) -> None:
    """A dead letter whose own handler fails goes to the hook but is not published to the dead-letter topic again."""
    dlq = f"{mqtt_topic_prefix}/dlq"
    letters: list[DeadLetter] = []
    async with make_manager(on_dead_letter=letters.append, dead_letter_topic=dlq) as mqtt:

        async def fails(m: MQTTMessage) -> None:
            raise ValueError("nope")

        await mqtt.subscribe(dlq, fails)
        await mqtt.subscribe(f"{mqtt_topic_prefix}/in", fails)
        await mqtt.publish(f"{mqtt_topic_prefix}/in", {"n": 0})
        await wait_until(lambda: len(letters) == 2)
        await mqtt.flush()
        await asyncio.sleep(0.3)  # a loop would add letters meanwhile
    assert [(letter.topic, letter.reason) for letter in letters] == [
        (f"{mqtt_topic_prefix}/in", "handler_error"),
        (dlq, "handler_error"),
    ]


@pytest.mark.parametrize("dead_letters", [False, True])
async def test_back_pressure_never_blocks_the_acks_a_handler_waits_for(
    wait_until: WaitUntil, make_manager: Callable[..., MQTTManager], mqtt_topic_prefix: str, dead_letters: bool
) -> None:
    """With reading paused by a full queue, a handler awaiting its own publish's PUBACK (or a dead letter's) gets it."""
    topic = f"{mqtt_topic_prefix}/flood"
    done: list[int] = []
    options: dict[str, Any] = {"max_queued_messages": 2, "handler_concurrency": 1}
    if dead_letters:
        options["dead_letter_topic"] = f"{mqtt_topic_prefix}/dead"
    async with make_manager(**options) as sub:

        async def relay(message: MQTTMessage) -> None:
            if dead_letters:
                done.append(message.payload["n"])
                raise RuntimeError("to the dead letter")  # its delivery waits for the broker's PUBACK
            await sub.publish(f"{mqtt_topic_prefix}/out", message.payload, qos=1)  # waits for the PUBACK
            done.append(message.payload["n"])

        await sub.subscribe(topic, relay, qos=0)
        async with make_manager() as pub:
            for n in range(300):
                await pub.publish(topic, {"n": n}, qos=0, wait=False)
            await pub.flush()
        await wait_until(lambda: len(done) == 300, 30)
        if dead_letters:
            await wait_until(lambda: sub.state.dead_letters == 300, 10)
