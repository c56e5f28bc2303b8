"""Small value types of the MQTT manager: Last Will, state snapshot, dead-letter delivery."""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from energy_messaging._message import DeadLetter

if TYPE_CHECKING:
    from energy_messaging._inbound import DeadLetterHook
    from energy_messaging._manager import MQTTManager

__all__ = ["LastWill", "MQTTState", "dead_letter_task"]

logger = logging.getLogger("energy_messaging.mqtt")


@dataclass(frozen=True, slots=True)
class LastWill:
    """The message the broker publishes for a client whose connection dies.

    Args:
        topic: Where to publish it.
        payload: bytes, str, or a JSON value / pydantic model.
        qos: QoS of the will.
        retain: Whether the broker retains it (usual for status topics).
    """

    topic: str
    payload: Any = None
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class MQTTState:
    """Snapshot of an :class:`MQTTManager` for health checks and metrics.

    ``max_inflight`` is the outgoing window in use (``max_inflight`` capped by the broker's
    Receive Maximum); ``max_packet_size`` the broker's Maximum Packet Size, None when it
    advertised none (both from the MQTT 5 CONNACK of the last connection).
    """

    connected: bool
    protocol: str | None
    client_id: str
    reconnect_count: int
    last_connected_at: float | None
    last_message_at: float | None
    last_error: str | None
    buffered_publishes: int
    queued_messages: int
    messages_received: int
    messages_handled: int
    handler_errors: int
    dead_letters: int
    subscriptions: int
    max_inflight: int
    max_packet_size: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the health endpoint)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


async def dead_letter_task(
    manager: MQTTManager, letter: DeadLetter, hook: DeadLetterHook | None, topic: str | None
) -> None:
    """Deliver one dead letter to the hook and the topic; log, never raise."""
    if hook is not None:
        try:
            result = hook(letter)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("MQTT dead-letter hook failed")
    if topic is not None:
        try:
            await manager.publish(topic, letter.to_dict(), qos=1, wait=False)
        except Exception:
            logger.exception("MQTT dead letter could not be published to %s", topic)
