"""Publishing limits of MQTTManager: payload and packet sizes, the broker's Receive Maximum (real Mosquitto)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from energy_common.exceptions import PayloadTooLargeError, ValidationError
from energy_messaging import MQTTManager, MQTTMessage
from energy_messaging.errors import MessageTooLargeError, MessagingError, PublishError

WaitUntil = Callable[..., Awaitable[None]]

pytestmark = pytest.mark.mqtt


@pytest.mark.parametrize("wait", [True, False])
async def test_payload_above_max_payload_bytes_is_refused_and_publishing_continues(
    wait_until: WaitUntil, mqtt_broker: Any, mqtt_topic_prefix: str, wait: bool
) -> None:
    """A payload over ``max_payload_bytes`` raises MessageTooLargeError up front; the next publishes still arrive."""
    topic = f"{mqtt_topic_prefix}/size"
    received: list[bytes] = []
    async with MQTTManager(mqtt_broker.host, mqtt_broker.port, max_payload_bytes=64) as mqtt:

        async def handler(message: MQTTMessage) -> None:
            received.append(message.raw)

        await mqtt.subscribe(topic, handler, decode=False)
        with pytest.raises(MessageTooLargeError) as info:
            await mqtt.publish(topic, b"x" * 65, wait=wait)
        await mqtt.publish(topic, b"y" * 64, wait=wait)
        await mqtt.publish(topic, {"n": 1}, wait=wait)
        await mqtt.flush()
        await wait_until(lambda: len(received) == 2)
    assert received == [b"y" * 64, b'{"n":1}']
    error = info.value
    assert isinstance(error, PublishError)
    assert isinstance(error, ValidationError)
    assert isinstance(error, PayloadTooLargeError)
    assert (error.error_code, error.status_code) == ("MESSAGE_TOO_LARGE", 413)
    assert error.details == {"topic": topic, "size": 65, "limit": 64, "limit_kind": "max_payload_bytes"}


async def test_default_max_payload_is_one_mebibyte(mqtt_broker: Any, mqtt_topic_prefix: str) -> None:
    """Without the option a payload of 1 MiB is sent and one byte more is refused."""
    async with MQTTManager(mqtt_broker.host, mqtt_broker.port) as mqtt:
        await mqtt.publish(f"{mqtt_topic_prefix}/mib", b"m" * 1_048_576, qos=1)
        with pytest.raises(MessageTooLargeError):
            await mqtt.publish(f"{mqtt_topic_prefix}/mib", b"m" * 1_048_577, qos=1)


@pytest.mark.parametrize("value", [0, -1])
def test_max_payload_bytes_must_be_positive(value: int) -> None:
    """A zero or negative ``max_payload_bytes`` is a configuration error."""
    with pytest.raises(MessagingError, match="max_payload_bytes"):
        MQTTManager(max_payload_bytes=value)


async def test_broker_maximum_packet_size_is_honoured(
    wait_until: WaitUntil, mosquitto_factory: Callable[..., Any]
) -> None:
    """A packet above the Maximum Packet Size Mosquitto advertises is refused up front; the connection stays up."""
    broker = mosquitto_factory(["max_packet_size 2000"])
    received: list[bytes] = []
    async with MQTTManager(broker.host, broker.port, max_payload_bytes=None) as mqtt:
        assert mqtt.state.max_packet_size == 2000

        async def handler(message: MQTTMessage) -> None:
            received.append(message.raw)

        await mqtt.subscribe("limits/packet", handler, decode=False)
        with pytest.raises(MessageTooLargeError) as info:
            async with asyncio.timeout(10):
                await mqtt.publish("limits/packet", b"p" * 1990)
        assert info.value.details["limit"] == 2000
        assert info.value.details["limit_kind"] == "broker_maximum_packet_size"
        await mqtt.publish("limits/packet", b"q" * 1000)
        await wait_until(lambda: received == [b"q" * 1000])
        assert mqtt.state.reconnect_count == 0


async def test_buffered_message_too_large_for_the_new_broker_does_not_jam_the_buffer(
    wait_until: WaitUntil,
    mosquitto_factory: Callable[..., Any],
) -> None:
    """A buffered publish the reconnected broker's packet limit refuses fails alone; those behind it are sent."""
    broker = mosquitto_factory()
    received: list[bytes] = []
    async with MQTTManager(broker.host, broker.port, reconnect_max_delay=0.5, max_payload_bytes=None) as mqtt:

        async def handler(message: MQTTMessage) -> None:
            received.append(message.raw)

        await mqtt.subscribe("limits/buffer", handler, decode=False)
        assert mqtt.state.max_packet_size is None
        broker.stop()
        await wait_until(lambda: not mqtt.is_connected)
        big = asyncio.ensure_future(mqtt.publish("limits/buffer", b"b" * 5000))
        small = asyncio.ensure_future(mqtt.publish("limits/buffer", b"s" * 10))
        await asyncio.sleep(0)
        conf = broker.data_dir / "mosquitto.conf"
        conf.write_text(conf.read_text() + "max_packet_size 2000\n")
        broker.start()
        async with asyncio.timeout(20):
            with pytest.raises(MessageTooLargeError) as info:
                await big
            await small
        await wait_until(lambda: received == [b"s" * 10])
        assert mqtt.state.max_packet_size == 2000
        assert (info.value.details["limit"], info.value.details["limit_kind"]) == (2000, "broker_maximum_packet_size")


@pytest.mark.parametrize(("max_inflight", "expected"), [(100, 3), (0, 3), (2, 2)])
async def test_inflight_window_is_capped_at_the_broker_receive_maximum(
    wait_until: WaitUntil, mosquitto_factory: Callable[..., Any], max_inflight: int, expected: int
) -> None:
    """Mosquitto's ``max_inflight_messages`` is advertised as Receive Maximum and caps the window; all QoS 1 arrive."""
    broker = mosquitto_factory(["max_inflight_messages 3"])
    received: list[int] = []
    async with (
        MQTTManager(broker.host, broker.port) as sub,
        MQTTManager(broker.host, broker.port, max_inflight=max_inflight) as pub,
    ):
        assert pub.state.max_inflight == expected

        async def handler(message: MQTTMessage) -> None:
            received.append(message.payload["n"])

        await sub.subscribe("limits/window", handler, qos=1)
        for n in range(200):
            await pub.publish("limits/window", {"n": n}, qos=1, wait=False)
        await pub.flush()
        await wait_until(lambda: len(received) == 200)
        assert sorted(received) == list(range(200))
        assert pub.state.reconnect_count == 0
