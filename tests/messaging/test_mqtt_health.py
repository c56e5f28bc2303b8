"""The MQTT health check follows the energy_common.health check shape and reports failures by raising."""

from __future__ import annotations

from typing import Any

import pytest
from energy_messaging import MQTTHealthCheck, MQTTManager
from energy_messaging.errors import MessagingConnectionError, MessagingError

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
