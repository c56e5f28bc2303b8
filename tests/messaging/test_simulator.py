"""The simulator follows the device protocol: status with sequence, telemetry, command replies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from energy_messaging import DeviceSimulator, MQTTManager, MQTTMessage
from energy_messaging.devices import command_payload, parse_status

WaitUntil = Callable[..., Awaitable[None]]

pytestmark = pytest.mark.mqtt


async def test_simulator_protocol(wait_until: WaitUntil, mqtt_broker: Any, mqtt_topic_prefix: str) -> None:
    """Online status (retained, with seq), telemetry at its rate, replies to reply_to with the command id."""
    root = f"{mqtt_topic_prefix}/devices"
    status: list[dict[str, Any]] = []
    telemetry: list[dict[str, Any]] = []
    replies: list[dict[str, Any]] = []
    async with MQTTManager(mqtt_broker.host, mqtt_broker.port, protocol="3.1.1") as mqtt:

        async def on_status(m: MQTTMessage) -> None:
            status.append(m.payload)

        async def on_telemetry(m: MQTTMessage) -> None:
            telemetry.append(m.payload)

        async def on_reply(m: MQTTMessage) -> None:
            replies.append(m.payload)

        await mqtt.subscribe(f"{root}/s1/status", on_status)
        await mqtt.subscribe(f"{root}/s1/telemetry", on_telemetry)
        await mqtt.subscribe(f"{root}/s1/replies/me", on_reply)
        async with DeviceSimulator(
            "s1", mqtt_broker.host, mqtt_broker.port, topic_root=root, interval=0.05, protocol="3.1.1"
        ) as sim:
            await wait_until(lambda: len(telemetry) >= 3 and bool(status))
            # A 3.1.1 command carries id and reply_to in the payload.
            for cid, name, params in [("c1", "read_meter", {}), ("c2", "set_interval", {"seconds": -1})]:
                await mqtt.publish(
                    f"{root}/s1/commands", command_payload(cid, name, params, reply_to=f"{root}/s1/replies/me")
                )
            await wait_until(lambda: len(replies) >= 2)
            seq = sim.seq
    update = parse_status(status[0])
    assert (update.status, update.seq) == ("online", seq)
    assert parse_status(status[-1]).status == "offline"  # clean stop publishes offline
    assert telemetry[1]["energy_kwh"] >= telemetry[0]["energy_kwh"]
    by_id = {r["id"]: r for r in replies}
    assert by_id["c1"]["status"] == "ok"
    assert "power_w" in by_id["c1"]["result"]
    assert by_id["c2"]["status"] == "error"
    assert by_id["c2"]["error"]["code"] == "COMMAND_ERROR"


def test_simulator_refuses_unknown_protocol() -> None:
    """An unknown protocol name is refused when the simulator is built."""
    from energy_messaging.errors import MessagingError

    with pytest.raises(MessagingError):
        DeviceSimulator("s1", protocol="4")
