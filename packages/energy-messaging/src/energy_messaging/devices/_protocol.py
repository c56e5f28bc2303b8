"""The device-side protocol: topics and JSON payloads (pure functions, no IO).

This module is the executable form of the protocol documented in the package README
("Device protocol"); the :class:`~energy_messaging.simulator.DeviceSimulator` and the
:class:`~energy_messaging.devices.DeviceManager` both use it, so they cannot drift.

Topics (``root`` defaults to ``devices``)::

    {root}/{device_id}/telemetry              device -> platform, QoS 1
    {root}/{device_id}/status                 device -> platform, QoS 1, retained (also the Last Will)
    {root}/{device_id}/commands               platform -> device, QoS 1
    {root}/{device_id}/replies/{instance}     device -> platform, QoS 1 (the command's reply_to)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from energy_messaging._topics import build_topic, topic_level, validate_topic
from energy_messaging.mqtt._context import CONTEXT_FIELD

__all__ = [
    "CONTEXT_FIELD",
    "DeviceTopics",
    "StatusUpdate",
    "command_payload",
    "now_ms",
    "parse_reply",
    "parse_status",
    "reply_payload",
    "status_payload",
]


DeviceStatus = Literal["online", "offline"]


def now_ms() -> int:
    """Return the current time in epoch milliseconds (the protocol's ``ts`` unit)."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class DeviceTopics:
    """The topic layout of the device protocol under one root.

    Args:
        root: Topic prefix, e.g. ``"devices"`` or ``"site-7/devices"`` (no wildcards).

    Example:
        >>> DeviceTopics("devices").commands("sensor001")
        'devices/sensor001/commands'
    """

    root: str = "devices"

    def __post_init__(self) -> None:
        validate_topic(self.root)

    def telemetry(self, device_id: str) -> str:
        """Topic a device publishes its readings to."""
        return build_topic(self.root, topic_level(device_id, name="device_id"), "telemetry")

    def status(self, device_id: str) -> str:
        """Retained topic carrying the device's online/offline state (and its Last Will)."""
        return build_topic(self.root, topic_level(device_id, name="device_id"), "status")

    def commands(self, device_id: str) -> str:
        """Topic a device subscribes to for commands."""
        return build_topic(self.root, topic_level(device_id, name="device_id"), "commands")

    def replies(self, device_id: str, instance: str) -> str:
        """Reply topic of one manager instance for one device (sent as ``reply_to``)."""
        return build_topic(self.root, topic_level(device_id, name="device_id"), "replies", instance)

    @property
    def telemetry_filter(self) -> str:
        """Filter matching every device's telemetry, with the ``device_id`` parameter."""
        return f"{self.root}/{{device_id}}/telemetry"

    @property
    def status_filter(self) -> str:
        """Filter matching every device's status topic, with the ``device_id`` parameter."""
        return f"{self.root}/{{device_id}}/status"

    def replies_filter(self, instance: str) -> str:
        """Filter matching the replies addressed to one manager instance."""
        return f"{self.root}/{{device_id}}/replies/{topic_level(instance, name='instance')}"


def status_payload(status: DeviceStatus, seq: int, *, ts: int | None = None) -> dict[str, Any]:
    """Build a status message: ``{"status": "online"|"offline", "seq": n, "ts": ms}``."""
    return {"status": status, "seq": seq, "ts": now_ms() if ts is None else ts}


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A parsed status message."""

    status: DeviceStatus
    seq: int


def parse_status(payload: object) -> StatusUpdate:
    """Parse a status payload; raise ValueError with the reason if it does not follow the protocol."""
    if not isinstance(payload, dict):
        raise ValueError("status payload must be a JSON object")
    status = payload.get("status")
    seq = payload.get("seq")
    if status not in ("online", "offline"):
        raise ValueError("status must be 'online' or 'offline'")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ValueError("seq must be a non-negative integer")
    return StatusUpdate(status, seq)


def command_payload(
    command_id: str,
    command: str,
    params: dict[str, Any] | None,
    *,
    reply_to: str | None,
    expires_at: int | None = None,
) -> dict[str, Any]:
    """Build a command message (see the README for every field)."""
    payload: dict[str, Any] = {"id": command_id, "command": command, "params": params or {}, "ts": now_ms()}
    if reply_to is not None:
        payload["reply_to"] = reply_to
    if expires_at is not None:
        payload["expires_at"] = expires_at
    return payload


def reply_payload(
    command_id: str,
    *,
    result: Any = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a command reply: ``status`` ``"ok"`` with ``result``, or ``"error"`` with ``error``."""
    if error is not None:
        return {"id": command_id, "status": "error", "error": error, "ts": now_ms()}
    return {"id": command_id, "status": "ok", "result": result, "ts": now_ms()}


def parse_reply(payload: object) -> tuple[str, bool, Any]:
    """Return ``(command_id, ok, result_or_error)``; raise ValueError if malformed."""
    if not isinstance(payload, dict):
        raise ValueError("reply payload must be a JSON object")
    command_id = payload.get("id")
    status = payload.get("status")
    if not isinstance(command_id, str) or not command_id:
        raise ValueError("reply needs the command's 'id'")
    if status == "ok":
        return command_id, True, payload.get("result")
    if status == "error":
        error = payload.get("error")
        return command_id, False, error if isinstance(error, dict) else {"message": str(error)}
    raise ValueError("reply status must be 'ok' or 'error'")
