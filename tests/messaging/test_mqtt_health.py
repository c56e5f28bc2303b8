"""The MQTT health check follows the energy_common.health check shape and reports failures by raising."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from energy_common.health import HealthCheckDegraded
from energy_messaging import MQTTHealthCheck, MQTTManager, MQTTMessage
from energy_messaging.errors import MessagingConnectionError, MessagingError
from energy_messaging.mqtt import BrokerDrops
from energy_messaging.mqtt._drops import parse_counter

pytestmark = pytest.mark.mqtt


async def test_health_check(mqtt_broker: Any) -> None:
    """Connected → a details mapping; silence beyond max_silence or a disconnect → raises."""
    mqtt = MQTTManager(mqtt_broker.host, mqtt_broker.port)
    check = MQTTHealthCheck(mqtt, name="broker", critical=False, timeout=1.0)
    assert (check.name, check.critical, check.timeout) == ("broker", False, 1.0)
    with pytest.raises(MessagingConnectionError):
        await check.check()
    async with mqtt:
        details = await check.check()
        assert details is not None
        assert details["protocol"] == "5"
        assert details["reconnect_count"] == 0
        silent = MQTTHealthCheck(mqtt, max_silence=0.0)
        with pytest.raises(MessagingError):
            await silent.check()
    with pytest.raises(MessagingConnectionError):
        await check.check()


async def test_broker_drops_make_the_check_degraded(mosquitto_factory: Any, wait_until: Any) -> None:
    """A subscriber whose broker queue overflows makes the drop counter grow and the check degraded."""
    broker = mosquitto_factory(["max_inflight_messages 2", "max_queued_messages 5", "sys_interval 1"])
    release = asyncio.Event()

    async def stuck(message: MQTTMessage) -> None:
        await release.wait()  # never acknowledges while the test publishes

    async with (
        MQTTManager(broker.host, broker.port, client_id="drops-watch") as watch,
        MQTTManager(broker.host, broker.port, client_id="drops-slow", max_queued_messages=1) as slow,
        MQTTManager(broker.host, broker.port, client_id="drops-pub") as pub,
    ):
        grown: list[int] = []
        drops = BrokerDrops(watch, on_growth=grown.append)
        await drops.start()
        check = MQTTHealthCheck(watch, drops=drops, drop_window=60)
        await wait_until(lambda: drops.available, 10)
        details = await check.check()
        assert details is not None
        assert (details["broker_dropped"], details["broker_last_drop_at"]) == (0, None)
        await slow.subscribe("drops/stream", stuck, qos=1)
        for n in range(60):
            await pub.publish("drops/stream", {"n": n}, qos=1)
        await wait_until(lambda: drops.dropped > 0, 10)
        assert sum(grown) == drops.dropped
        with pytest.raises(HealthCheckDegraded) as caught:
            await check.check()
        assert caught.value.details["broker_dropped"] == drops.dropped
        assert "max_queued_messages" in caught.value.message
        forgiving = MQTTHealthCheck(watch, drops=drops, drop_window=0.0)
        await asyncio.sleep(0.01)
        assert await forgiving.check() is not None  # the drops are older than its window
        release.set()


def test_the_drop_counter_ignores_what_is_no_counter() -> None:
    """Payloads that are not a counter are ignored; a smaller value (a restarted broker) is a new baseline."""
    drops = BrokerDrops(MQTTManager("127.0.0.1"))
    assert (parse_counter(b" 42\n"), parse_counter(b"-1"), parse_counter(b"1e3"), parse_counter(b"")) == (
        42,
        None,
        None,
        None,
    )
    drops.observe(b"oops")
    assert not drops.available
    for value in (b"10", b"15", b"3", b"4"):
        drops.observe(value)
    assert (drops.total, drops.dropped) == (4, 6)
    assert drops.dropped_within(60)
