"""MQTT health check, structurally implementing ``energy_common.health``'s check Protocol."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from energy_common.health import HealthCheckDegraded

from energy_messaging._errors import MessagingConnectionError, MessagingError
from energy_messaging.mqtt._manager import MQTTManager

if TYPE_CHECKING:
    from energy_messaging.mqtt._drops import BrokerDrops

__all__ = ["MQTTHealthCheck"]


class MQTTHealthCheck:
    """Report an :class:`MQTTManager` as healthy while it is connected.

    Args:
        mqtt: The manager to watch.
        name: Name in the health report.
        critical: Whether a failure makes the service unhealthy (not just degraded).
        timeout: Seconds the health runner allows for :meth:`check`.
        max_silence: Fail when no message arrived for this many seconds (None: never).
        drops: The broker's dropped-messages counter (:class:`BrokerDrops`): while it grew
            within ``drop_window`` seconds the check is degraded (the broker is losing
            messages: a subscriber is behind and its queue is full).
        drop_window: How long a drop keeps the check degraded.

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
        drops: BrokerDrops | None = None,
        drop_window: float = 300.0,
    ) -> None:
        self.mqtt = mqtt
        self.name = name
        self.critical = critical
        self.timeout = timeout
        self.max_silence = max_silence
        self.drops = drops
        self.drop_window = drop_window

    async def check(self) -> Mapping[str, Any] | None:
        """Return the connection state, or raise if disconnected or silent too long.

        Raises:
            MessagingConnectionError: If the manager is not connected.
            MessagingError: If no message arrived within ``max_silence`` seconds.
            HealthCheckDegraded: If the broker dropped messages within ``drop_window`` seconds.
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
        details: dict[str, Any] = {
            "protocol": state.protocol,
            "reconnect_count": state.reconnect_count,
            "last_message_at": state.last_message_at,
            "buffered_publishes": state.buffered_publishes,
            "queued_messages": state.queued_messages,
            "handler_errors": state.handler_errors,
            "dead_letters": state.dead_letters,
        }
        drops = self.drops
        if drops is not None:
            details["broker_dropped"] = drops.dropped if drops.available else None
            details["broker_last_drop_at"] = drops.last_growth_at
            if drops.dropped_within(self.drop_window):
                raise HealthCheckDegraded(
                    f"The MQTT broker dropped {drops.dropped} messages since this process started, the last "
                    f"within {self.drop_window:g} s: a subscriber is behind and its broker queue is full. "
                    "Add replicas or raise the broker's max_queued_messages (see the messaging README).",
                    details,
                )
        return details
