"""Which request context a publish carries (MQTT 5 user properties), against the real Mosquitto."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from energy_common.context import correlation_scope
from energy_messaging import MQTTManager, MQTTMessage

pytestmark = pytest.mark.mqtt


@pytest.mark.parametrize(
    ("correlation_id", "expected"),
    [(None, None), ("req-7", [("x-request-id", "req-7")])],
)
async def test_publish_carries_only_the_context_there_is(
    mqtt_broker: Any, mqtt_topic_prefix: str, correlation_id: str | None, expected: Any
) -> None:
    """Without a correlation id or span nothing is added; with only a correlation id, only it is sent."""
    topic = f"{mqtt_topic_prefix}/ctx"
    seen: list[MQTTMessage] = []
    async with MQTTManager(mqtt_broker.host, mqtt_broker.port, protocol="5") as mqtt:

        async def handler(message: MQTTMessage) -> None:
            seen.append(message)

        await mqtt.subscribe(topic, handler)
        if correlation_id is None:
            await mqtt.publish(topic, {"v": 1})
        else:
            with correlation_scope(correlation_id):
                await mqtt.publish(topic, {"v": 1})
        for _ in range(500):
            if seen:
                break
            await asyncio.sleep(0.01)
    assert len(seen) == 1
    assert seen[0].properties.get("user_properties") == expected
    assert seen[0].correlation_id == correlation_id
    assert seen[0].payload == {"v": 1}
