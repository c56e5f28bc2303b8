"""The device-protocol page's firmware example speaks the protocol the platform implements.

``docs/examples/firmware_device.py`` (shown on the page in parts) runs against Mosquitto
with a real ``DeviceManager`` on the other side, over MQTT 5 and MQTT 3.1.1.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import doc_examples
import pytest
from energy_messaging import CommandFailedError, DeviceManager, MQTTManager, MQTTMessage

pytestmark = pytest.mark.mqtt

FIRMWARE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "firmware_device.py"


def firmware() -> ModuleType:
    """The example file as a module (it is not in a package)."""
    return doc_examples.load_file(FIRMWARE, "firmware_device")


async def until(condition: Callable[[], object], within: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("platform", "device_mqtt5"),
    [("5", True), ("3.1.1", False), ("5", False)],
    ids=["mqtt5", "mqtt311", "platform5-device311"],
)
async def test_firmware_example_round_trip(
    mqtt_broker: Any, mqtt_topic_prefix: str, platform: str, device_mqtt5: bool
) -> None:
    """Status online, telemetry, commands with results and errors, a stale Last Will ignored, offline on exit."""
    root = f"{mqtt_topic_prefix}/devices"
    device_id = f"meter-{uuid.uuid4().hex[:8]}"
    readings: list[dict[str, Any]] = []
    async with MQTTManager(mqtt_broker.host, mqtt_broker.port, protocol=platform) as mqtt:  # type: ignore[arg-type]
        devices = DeviceManager(mqtt, topic_root=root)

        @devices.on_telemetry("smart_meter")
        async def on_reading(device: Any, message: MQTTMessage) -> None:
            readings.append(message.payload)

        await devices.register_device(device_id, "smart_meter")
        device = firmware().Device(device_id, mqtt_broker.host, mqtt_broker.port, mqtt5=device_mqtt5, root=root)
        device.connect()
        try:
            assert await asyncio.to_thread(device.online.wait, 10)

            async def current() -> str:
                return (await devices.get_device(device_id)).status

            async def settle(expected: str) -> None:
                deadline = time.monotonic() + 10
                while (state := await current()) != expected:
                    assert time.monotonic() < deadline, f"device stayed {state}, expected {expected}"
                    await asyncio.sleep(0.02)

            await settle("online")
            device.send_reading()
            await until(lambda: readings)
            assert set(readings[0]) == {"ts", "power_w", "voltage_v"}

            assert await devices.send_command(device_id, "read_meter", timeout=5) == {
                "energy_kwh": 1520.337,
                "power_w": 1834.2,
            }
            assert await devices.send_command(device_id, "set_interval", {"seconds": 30}, timeout=5) == {"interval": 30}
            with pytest.raises(CommandFailedError) as info:
                await devices.send_command(device_id, "self_destruct", timeout=5)
            assert info.value.details["error"]["code"] == "UNKNOWN_COMMAND"

            # The Last Will of an older session, delivered late, does not turn the device offline.
            stale = json.dumps({"status": "offline", "seq": device.seq - 1, "ts": 0})
            await mqtt.publish(f"{root}/{device_id}/status", stale, qos=1)
            await asyncio.sleep(0.3)
            assert await current() == "online"
        finally:
            await asyncio.to_thread(device.disconnect)
        await settle("offline")
        # A retained status stays on the broker: clear it so the shared broker keeps nothing.
        await mqtt.publish(f"{root}/{device_id}/status", b"", qos=1, retain=True)
