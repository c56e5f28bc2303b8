"""MQTT health check, structurally implementing ``energy_common.health``'s check Protocol."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from energy_messaging._errors import MessagingConnectionError, MessagingError
from energy_messaging.mqtt._manager import MQTTManager

__all__ = ["MQTTHealthCheck"]


class MQTTHealthCheck:
    """Report an :class:`MQTTManager` as healthy while it is connected.

    Args:
        mqtt: The manager to watch.
        name: Name in the health report.
        critical: Whether a failure makes the service unhealthy (not just degraded).
        timeout: Seconds the health runner allows for :meth:`check`.
        max_silence: Fail when no message arrived for this many seconds (None: never).

    Example:
        >>> check = MQTTHealthCheck(MQTTManager("localhost"), max_silence=300)  # doctest: +SKIP
    """

    def __init__(
        self,
        mqtt: MQTTManager,
        *,
        name: str = "mqtt",
        critical: bool = True,
        timeout: float | None = 2.0,
        max_silence: float | None = None,
    ) -> None:
        self.mqtt = mqtt
        self.name = name
        self.critical = critical
        self.timeout = timeout
        self.max_silence = max_silence

    async def check(self) -> Mapping[str, Any] | None:
        """Return the connection state, or raise if disconnected or silent too long.

        Raises:
            MessagingConnectionError: If the manager is not connected.
            MessagingError: If no message arrived within ``max_silence`` seconds.
        """
        state = self.mqtt.state
        if not state.connected:
            raise MessagingConnectionError(
                f"Not connected to the MQTT broker at {self.mqtt.host}:{self.mqtt.port} ({state.last_error}).",
                {"reconnect_count": state.reconnect_count},
            )
        if self.max_silence is not None:
            since = state.last_message_at or state.last_connected_at or 0.0
            if time.time() - since > self.max_silence:
                raise MessagingError(
                    f"No MQTT message for more than {self.max_silence:g} s.", {"last_message_at": state.last_message_at}
                )
        return {
            "protocol": state.protocol,
            "reconnect_count": state.reconnect_count,
            "last_message_at": state.last_message_at,
            "buffered_publishes": state.buffered_publishes,
            "queued_messages": state.queued_messages,
            "handler_errors": state.handler_errors,
            "dead_letters": state.dead_letters,
        }
