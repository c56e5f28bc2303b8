"""The wire level under MQTTManager: batched writes against the real Mosquitto."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from energy_messaging import MQTTManager, MQTTMessage

WaitUntil = Callable[..., Awaitable[None]]

pytestmark = pytest.mark.mqtt


@pytest.mark.parametrize("qos", [0, 1])
async def test_burst_larger_than_socket_buffer_arrives_whole_and_in_order(
    wait_until: WaitUntil, mqtt_broker: Any, mqtt_topic_prefix: str, qos: int
) -> None:
    """A burst of publishes bigger than the socket buffer is written completely, in order, byte for byte."""
    topic = f"{mqtt_topic_prefix}/burst"
    payloads = [bytes([n]) * (256 * 1024) + n.to_bytes(2, "big") for n in range(48)]  # 12 MiB in one go
    received: list[bytes] = []
    async with MQTTManager(mqtt_broker.host, mqtt_broker.port, max_queued_messages=64) as sub:

        async def handler(message: MQTTMessage) -> None:
            received.append(message.raw)

        await sub.subscribe(topic, handler, qos=qos, decode=False)
        async with MQTTManager(mqtt_broker.host, mqtt_broker.port) as pub:
            for payload in payloads:
                await pub.publish(topic, payload, qos=qos, wait=False)  # no await point: one write batch
            await asyncio.wait_for(pub.flush(), 30)
            # Small messages queued behind the burst still go out after it.
            await asyncio.wait_for(pub.publish(topic, b"tail", qos=qos), 30)
        await wait_until(lambda: len(received) == len(payloads) + 1, 30)
    digest = [hashlib.sha256(p).hexdigest() for p in received[:-1]]
    assert digest == [hashlib.sha256(p).hexdigest() for p in payloads]
    assert received[-1] == b"tail"


@pytest.mark.parametrize("max_inflight", [0, 1, 3])
async def test_inflight_window_keeps_order(
    wait_until: WaitUntil, mqtt_broker: Any, mqtt_topic_prefix: str, max_inflight: int
) -> None:
    """With a small (or the largest, 0) in-flight window, a QoS 1 burst waits for acknowledgements and arrives in order."""
    topic = f"{mqtt_topic_prefix}/window"
    received: list[int] = []
    async with MQTTManager(mqtt_broker.host, mqtt_broker.port) as sub:

        async def handler(message: MQTTMessage) -> None:
            received.append(message.payload["n"])

        await sub.subscribe(topic, handler, qos=1)
        async with MQTTManager(mqtt_broker.host, mqtt_broker.port, max_inflight=max_inflight) as pub:
            for n in range(300):
                await pub.publish(topic, {"n": n}, qos=1, wait=False)
            await pub.publish(topic, {"n": 300}, qos=1)  # waits behind the window, then for its PUBACK
            assert pub.state.buffered_publishes == 0
        await wait_until(lambda: len(received) == 301)
    assert received == list(range(301))


async def test_publishes_waiting_for_the_window_survive_a_broker_restart(
    wait_until: WaitUntil,
    mosquitto_factory: Callable[..., Any],
) -> None:
    """QoS 1 publishes still waiting for room in the in-flight window when the broker dies are sent after the restart."""
    broker = mosquitto_factory(["autosave_on_changes true"])
    total = 400
    received: set[int] = set()
    options: dict[str, Any] = {"reconnect_min_delay": 0.05, "reconnect_max_delay": 0.3}
    async with (
        MQTTManager(broker.host, broker.port, client_id="window-sub", **options) as sub,
        MQTTManager(broker.host, broker.port, client_id="window-pub", max_inflight=2, **options) as pub,
    ):

        async def handler(message: MQTTMessage) -> None:
            received.add(message.payload["n"])

        await sub.subscribe("window/stream", handler, qos=1)
        for n in range(total):
            await pub.publish("window/stream", {"n": n}, qos=1, wait=False)
        await asyncio.sleep(0.01)  # a few go out; most wait for the window
        await asyncio.to_thread(broker.kill)
        await asyncio.to_thread(broker.start)
        await asyncio.wait_for(pub.flush(), 30)
        await wait_until(lambda: len(received) == total, 30)
        assert pub.state.reconnect_count >= 1
    assert received == set(range(total))


@pytest.fixture
def tls_broker(mosquitto_factory: Callable[..., Any], tmp_path: Path) -> tuple[Any, ssl.SSLContext]:
    """A private Mosquitto with a TLS listener (self-signed certificate for 127.0.0.1) and a client context."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
    subprocess.run(
        [openssl, *request, "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    broker = mosquitto_factory([f"certfile {cert}", f"keyfile {key}"])
    return broker, ssl.create_default_context(cafile=str(cert))


async def test_burst_over_tls_arrives_whole_and_in_order(
    wait_until: WaitUntil, tls_broker: tuple[Any, ssl.SSLContext]
) -> None:
    """Over TLS, batched writes larger than the socket buffer and the reads of many packets lose nothing."""
    broker, context = tls_broker
    payloads = [bytes([n]) * (192 * 1024) + n.to_bytes(2, "big") for n in range(40)] + [b"%d" % n for n in range(500)]
    received: list[bytes] = []
    async with MQTTManager(broker.host, broker.port, tls=context, max_queued_messages=64) as sub:

        async def handler(message: MQTTMessage) -> None:
            received.append(message.raw)

        await sub.subscribe("tls/burst", handler, qos=1, decode=False)
        async with MQTTManager(broker.host, broker.port, tls=context) as pub:
            for payload in payloads:
                await pub.publish("tls/burst", payload, qos=1, wait=False)
            await asyncio.wait_for(pub.flush(), 30)
        await wait_until(lambda: len(received) == len(payloads), 30)
    assert [hashlib.sha256(p).digest() for p in received] == [hashlib.sha256(p).digest() for p in payloads]
