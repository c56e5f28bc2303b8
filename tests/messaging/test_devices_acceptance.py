"""Only registered devices on their own topics reach the application, even where the broker does not enforce.

The shared Mosquitto admits anonymous clients and enforces nothing, which is exactly the
case these checks exist for: an outside client can publish any topic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from energy_messaging import Command, DeviceManager, MQTTManager, MQTTMessage
from energy_messaging.devices import reply_payload, status_payload
from energy_messaging.errors import CommandTimeoutError

WaitUntil = Callable[..., Awaitable[None]]

pytestmark = pytest.mark.mqtt


@pytest.fixture
def root(mqtt_topic_prefix: str) -> str:
    """Device topic root under this test's prefix."""
    return f"{mqtt_topic_prefix}/devices"


@pytest.fixture
async def outsider(make_manager: Callable[..., MQTTManager]) -> Any:
    """An anonymous client of the shared broker: it can publish whatever it likes."""
    async with make_manager() as manager:
        yield manager


async def test_telemetry_of_unregistered_device_is_dead_lettered(
    mqtt: MQTTManager, outsider: MQTTManager, root: str, wait_until: WaitUntil
) -> None:
    """Telemetry for a device never registered (ghost-meter-9) never reaches the handler; it is counted."""
    devices = DeviceManager(mqtt, topic_root=root)
    handled: list[str] = []

    @devices.on_telemetry("meter")
    async def on_meter(device: Any, message: MQTTMessage) -> None:
        handled.append(device.device_id)

    await devices.register_device("meter-1", "meter")
    await outsider.publish(f"{root}/ghost-meter-9/telemetry", {"ts": 1, "power_w": 9e9})
    await outsider.publish(f"{root}/meter-1/telemetry", {"ts": 2, "power_w": 1})
    await wait_until(lambda: handled and mqtt.state.dead_letter_reasons.get("unknown_device"))
    assert handled == ["meter-1"]
    assert mqtt.state.dead_letter_reasons["unknown_device"] == 1


async def test_accept_telemetry_guards_a_service_subscription(
    mqtt: MQTTManager, outsider: MQTTManager, root: str, wait_until: WaitUntil
) -> None:
    """A service's own telemetry subscription admits registered devices only, and sees an unregistration."""
    devices = DeviceManager(mqtt, topic_root=root, route_telemetry=False)
    stored: list[str] = []

    async def ingest(message: MQTTMessage) -> None:
        if await devices.accept_telemetry(message):
            stored.append(message.params["device_id"])

    await mqtt.subscribe(f"{root}/{{device_id}}/telemetry", ingest)
    await devices.register_device("meter-1", "meter")
    for device_id in ("ghost", "meter-1", "ghost", "meter-1"):
        await outsider.publish(f"{root}/{device_id}/telemetry", {"ts": 1})
    await wait_until(lambda: len(stored) == 2 and mqtt.state.dead_letter_reasons.get("unknown_device") == 2)
    await devices.unregister_device("meter-1")
    await outsider.publish(f"{root}/meter-1/telemetry", {"ts": 3})
    await wait_until(lambda: mqtt.state.dead_letter_reasons.get("unknown_device") == 3)
    assert stored == ["meter-1", "meter-1"]


async def test_status_of_unregistered_device_is_not_applied(
    mqtt: MQTTManager, outsider: MQTTManager, root: str, wait_until: WaitUntil
) -> None:
    """A status for an unknown device calls no hook and is counted; the known device's status is applied."""
    changes: list[tuple[str, str]] = []
    devices = DeviceManager(mqtt, topic_root=root, on_status=lambda d, s: changes.append((d.device_id, s)))
    await devices.register_device("meter-1", "meter")
    await outsider.publish(f"{root}/ghost/status", status_payload("offline", 10), retain=False)
    await outsider.publish(f"{root}/meter-1/status", status_payload("online", 10), retain=False)
    await wait_until(lambda: changes and mqtt.state.dead_letter_reasons.get("unknown_device"))
    assert changes == [("meter-1", "online")]


async def test_forged_replies_are_refused(
    mqtt: MQTTManager, outsider: MQTTManager, root: str, wait_until: WaitUntil
) -> None:
    """A reply with a command id never sent, or on another device's reply topic, is refused; the command times out."""
    sent: list[Command] = []
    devices = DeviceManager(mqtt, topic_root=root, on_command=lambda c: sent.append(c) if c.state == "sent" else None)
    await devices.register_device("meter-1", "meter")
    await devices.register_device("meter-2", "meter")
    task = asyncio.create_task(devices.send_command("meter-1", "read_meter", timeout=1.5))
    await wait_until(lambda: sent)
    command_id = sent[0].command_id
    reply_topic = f"{root}/{{}}/replies/{devices.instance_id}"
    forged = reply_payload("0" * 32, result={"FORGED": True})
    await outsider.publish(reply_topic.format("meter-1"), forged)  # a command id never sent
    await outsider.publish(reply_topic.format("meter-2"), reply_payload(command_id, result={"FORGED": True}))
    await wait_until(
        lambda: (
            mqtt.state.dead_letter_reasons.get("unknown_command") == 1
            and mqtt.state.dead_letter_reasons.get("wrong_device") == 1
        )
    )
    with pytest.raises(CommandTimeoutError):
        await task


async def test_reply_from_the_right_device_topic_is_accepted(
    mqtt: MQTTManager, outsider: MQTTManager, root: str, wait_until: WaitUntil
) -> None:
    """The genuine reply (right id, the device's own reply topic) returns its result; a second copy is refused."""
    sent: list[Command] = []
    devices = DeviceManager(mqtt, topic_root=root, on_command=lambda c: sent.append(c) if c.state == "sent" else None)
    await devices.register_device("meter-1", "meter")
    task = asyncio.create_task(devices.send_command("meter-1", "read_meter", timeout=5))
    await wait_until(lambda: sent)
    topic = f"{root}/meter-1/replies/{devices.instance_id}"
    await outsider.publish(topic, reply_payload(sent[0].command_id, result={"kwh": 1}))
    assert await task == {"kwh": 1}
    await outsider.publish(topic, reply_payload(sent[0].command_id, result={"kwh": 2}))
    await wait_until(lambda: mqtt.state.dead_letter_reasons.get("unknown_command") == 1)
