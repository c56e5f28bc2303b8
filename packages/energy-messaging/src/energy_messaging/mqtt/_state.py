"""The state snapshot of an :class:`MQTTManager` (loaded on first use of ``state``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["MQTTState"]


@dataclass(frozen=True, slots=True)
class MQTTState:
    """Snapshot of an :class:`MQTTManager` for health checks and metrics.

    ``max_inflight`` is the outgoing window in use (``max_inflight`` capped by the broker's
    Receive Maximum); ``max_packet_size`` the broker's Maximum Packet Size, None when it
    advertised none (both from the MQTT 5 CONNACK of the last connection).
    ``session_present`` tells whether the last CONNACK resumed a stored session;
    ``held_messages`` counts messages waiting for a handler in the resume hold;
    ``dead_letter_reasons`` counts dead letters by reason (``no_handler``,
    ``decode_error``, ``validation_error``, ``handler_error``, ``processing_error``);
    ``tasks`` names the manager's running tasks.
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
    session_present: bool = False
    held_messages: int = 0
    dead_letter_reasons: dict[str, int] | None = None
    tasks: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the health endpoint)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["dead_letter_reasons"] = dict(self.dead_letter_reasons or {})
        data["tasks"] = list(self.tasks)
        return data
