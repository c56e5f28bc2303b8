"""DeviceManager with the simulator on the real Mosquitto: commands, status, telemetry, lifecycle."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from energy_common.exceptions import ResourceNotFoundError
from energy_messaging import Command, Device, DeviceManager, DeviceSimulator, MQTTManager, MQTTMessage
from energy_messaging.devices import status_payload
from energy_messaging.errors import (
    CommandExpiredError,
    CommandFailedError,
    CommandTimeoutError,
    DeviceOfflineError,
    TopicValidationError,
)

WaitUntil = Callable[..., Awaitable[None]]

pytestmark = pytest.mark.mqtt


@pytest.fixture
def root(mqtt_topic_prefix: str) -> str:
    """Device topic root under this test's prefix."""
    return f"{mqtt_topic_prefix}/devices"


def simulator(mqtt_broker: Any, root: str, device_id: str = "sensor001", **kwargs: Any) -> DeviceSimulator:
    """A simulator for ``device_id`` under ``root``."""
    return DeviceSimulator(
        device_id, mqtt_broker.host, mqtt_broker.port, topic_root=root, client_id=f"sim-{root}-{device_id}", **kwargs
    )


async def test_seed_example_runs(mqtt_broker: Any, root: str) -> None:
    """The seed README's device example works under the new import path (with a simulated sensor)."""
    from energy_messaging.mqtt import DeviceManager, MQTTManager

    async with simulator(mqtt_broker, root, interval=None):
        mqtt = MQTTManager(mqtt_broker.host, mqtt_broker.port, username="user", password="pass")
        await mqtt.connect()
        device_manager = DeviceManager(mqtt, topic_root=root)
        await device_manager.register_device(
            device_id="sensor001", device_type="temperature_sensor", topics=[f"{root}/sensor001/data"]
        )
        result = await device_manager.send_command("sensor001", "read_temperature")
        await mqtt.disconnect()
    assert 18 <= result["temperature"] <= 26


async def test_command_round_trip_and_lifecycle(mqtt: MQTTManager, mqtt_broker: Any, root: str) -> None:
    """A command goes queued → sent → succeeded, visible to the hook, with the device's result."""
    seen: list[tuple[str, str]] = []

    def hook(cmd: Command) -> None:
        seen.append((cmd.command_id, cmd.state))

    devices = DeviceManager(mqtt, topic_root=root, on_command=hook)
    await devices.register_device("sensor001", "meter")
    async with simulator(mqtt_broker, root, interval=None) as sim:
        result = await devices.send_command("sensor001", "set_interval", {"seconds": 2}, timeout=5)
        assert result == {"interval": 2.0}
        assert sim.interval == 2.0
    assert [state for _, state in seen] == ["queued", "sent", "succeeded"]
    assert len({cid for cid, _ in seen}) == 1


async def test_failed_command_raises_typed_error(mqtt: MQTTManager, mqtt_broker: Any, root: str) -> None:
    """A device error reply raises CommandFailedError carrying the device's error object."""
    devices = DeviceManager(mqtt, topic_root=root)
    await devices.register_device("sensor001", "meter")
    async with simulator(mqtt_broker, root, interval=None):
        with pytest.raises(CommandFailedError) as info:
            await devices.send_command("sensor001", "self_destruct", timeout=5)
    assert info.value.details["error"]["code"] == "UNKNOWN_COMMAND"


async def test_command_timeout_and_fire_and_forget(mqtt: MQTTManager, root: str) -> None:
    """No reply within the timeout raises CommandTimeoutError; wait=False returns the sent Command."""
    states: list[str] = []
    devices = DeviceManager(mqtt, topic_root=root, on_command=lambda c: states.append(c.state))
    await devices.register_device("silent", "meter")
    with pytest.raises(CommandTimeoutError) as info:
        await devices.send_command("silent", "ping", timeout=0.3)
    assert info.value.status_code == 504
    assert states[-1] == "timed_out"
    cmd = await devices.send_command("silent", "ping", wait=False)
    assert isinstance(cmd, Command)
    assert cmd.state == "sent"


async def test_unknown_device_and_bad_ids(mqtt: MQTTManager, root: str) -> None:
    """Unknown devices are ResourceNotFoundError; injected ids are refused."""
    devices = DeviceManager(mqtt, topic_root=root)
    with pytest.raises(ResourceNotFoundError):
        await devices.send_command("nobody", "ping")
    with pytest.raises(ResourceNotFoundError):
        await devices.get_device("nobody")
    with pytest.raises(ResourceNotFoundError):
        await devices.unregister_device("nobody")
    with pytest.raises(TopicValidationError):
        await devices.register_device("a/+", "meter")


async def test_last_will_marks_killed_device_offline(
    wait_until: WaitUntil, mqtt: MQTTManager, mqtt_broker: Any, root: str
) -> None:
    """A crashed simulator's Last Will turns the device offline; offline commands fail fast."""
    changes: list[tuple[str, str]] = []
    devices = DeviceManager(mqtt, topic_root=root, on_status=lambda d, s: changes.append((d.device_id, s)))
    await devices.register_device("sensor001", "meter")
    sim = simulator(mqtt_broker, root, interval=None)
    await sim.start()
    await wait_until(lambda: ("sensor001", "online") in changes)
    await sim.kill()
    await wait_until(lambda: ("sensor001", "offline") in changes)
    device = await devices.get_device("sensor001")
    assert device.status == "offline"
    assert device.status_seq == sim.seq
    with pytest.raises(DeviceOfflineError):
        await devices.send_command("sensor001", "ping", when_offline="fail")
    assert [d.device_id for d in await devices.list_devices(status="offline")] == ["sensor001"]


async def test_stale_last_will_is_ignored(wait_until: WaitUntil, mqtt: MQTTManager, root: str) -> None:
    """An offline status with an older sequence number (a late Last Will) does not override online."""
    devices = DeviceManager(mqtt, topic_root=root)
    await devices.register_device("d1", "meter")
    status = f"{root}/d1/status"
    await mqtt.publish(status, status_payload("online", 5))
    await wait_until(lambda: devices.registry._devices["d1"].status == "online")  # type: ignore[attr-defined]
    await mqtt.publish(status, status_payload("offline", 4))  # the previous session's will
    await mqtt.publish(status, {"status": "sleeping", "seq": 9})  # invalid: dead-lettered
    await wait_until(lambda: mqtt.state.dead_letters == 1)
    assert (await devices.get_device("d1")).status == "online"
    await mqtt.publish(status, status_payload("offline", 5))
    await wait_until(lambda: devices.registry._devices["d1"].status == "offline")  # type: ignore[attr-defined]


async def test_wait_for_offline_device_then_expire(
    wait_until: WaitUntil, mqtt: MQTTManager, mqtt_broker: Any, root: str
) -> None:
    """when_offline='wait' sends once the device is back, or expires if it stays away."""
    states: list[str] = []
    devices = DeviceManager(mqtt, topic_root=root, on_command=lambda c: states.append(c.state))
    await devices.register_device("sensor001", "meter")
    await mqtt.publish(f"{root}/sensor001/status", status_payload("offline", 1))
    await wait_until(lambda: devices.registry._devices["sensor001"].status == "offline")  # type: ignore[attr-defined]
    with pytest.raises(CommandExpiredError):
        await devices.send_command("sensor001", "ping", when_offline="wait", expires_in=0.2)
    assert states[-1] == "expired"
    pending = asyncio.create_task(devices.send_command("sensor001", "ping", when_offline="wait", timeout=5))
    await asyncio.sleep(0.1)
    async with simulator(mqtt_broker, root, interval=None):
        assert await pending == {"pong": True}


async def test_telemetry_handler_per_type_and_last_seen(
    wait_until: WaitUntil, mqtt: MQTTManager, mqtt_broker: Any, root: str
) -> None:
    """Telemetry reaches the handler of the device's type and updates last-seen; extra topics count too."""
    got: list[tuple[str, dict[str, Any]]] = []
    devices = DeviceManager(mqtt, topic_root=root)

    @devices.on_telemetry("meter")
    async def on_meter(device: Device, message: MQTTMessage) -> None:
        got.append((device.device_id, message.payload))

    await devices.register_device("sensor001", "meter", topics=[f"{root}/sensor001/data"])
    await devices.register_device("other", "thermostat")
    async with simulator(mqtt_broker, root, interval=0.05):
        await wait_until(lambda: len(got) >= 3)
    await mqtt.publish(f"{root}/sensor001/data", {"power_w": 1.0})
    await mqtt.publish(f"{root}/other/telemetry", {"power_w": 2.0})
    await wait_until(lambda: {"power_w": 1.0} in [p for _, p in got])
    assert {device_id for device_id, _ in got} == {"sensor001"}
    assert {"ts", "power_w", "voltage_v", "energy_kwh"} <= set(got[0][1])
    assert (await devices.get_device("sensor001")).last_seen is not None
    assert [d.device_id for d in await devices.list_devices(device_type="thermostat")] == ["other"]


async def test_status_seen_before_registration_is_applied(
    wait_until: WaitUntil,
    mqtt: MQTTManager,
    mqtt_broker: Any,
    root: str,
) -> None:
    """A device that announced itself (retained online) before it was registered is online once registered."""
    devices = DeviceManager(mqtt, topic_root=root)
    await devices.start()
    async with simulator(mqtt_broker, root, interval=None) as sim:
        await wait_until(lambda: "sensor001" in devices._early_status)
        device = await devices.register_device("sensor001", "meter")
        assert (device.status, device.status_seq) == ("online", sim.seq)
        assert (await devices.get_device("sensor001")).status == "online"


@pytest.mark.parametrize("route_telemetry", [True, False])
async def test_route_telemetry_switches_the_telemetry_subscription(
    wait_until: WaitUntil, mqtt_broker: Any, root: str, route_telemetry: bool
) -> None:
    """With route_telemetry=False telemetry is not subscribed (nor handled); with True it is; status works either way."""
    got: list[Any] = []
    statuses: list[str] = []
    async with MQTTManager(mqtt_broker.host, mqtt_broker.port, handler_concurrency=1) as manager:
        devices = DeviceManager(
            manager, topic_root=root, route_telemetry=route_telemetry, on_status=lambda d, s: statuses.append(s)
        )

        @devices.on_telemetry("meter")
        async def on_meter(device: Device, message: MQTTMessage) -> None:
            got.append(message.payload)

        await devices.register_device("d1", "meter")
        # Telemetry first, then a status: in-order delivery to the one worker means the
        # telemetry was handled (or never subscribed) once the status is applied.
        await manager.publish(f"{root}/d1/telemetry", {"power_w": 7.0})
        await manager.publish(f"{root}/d1/status", status_payload("online", 1))
        await wait_until(lambda: statuses == ["online"])
        assert got == ([{"power_w": 7.0}] if route_telemetry else [])
        assert manager.state.messages_received == (2 if route_telemetry else 1)
