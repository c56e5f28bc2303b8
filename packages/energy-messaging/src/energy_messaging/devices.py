"""Device management: :class:`DeviceManager`, the registry Protocol and the protocol helpers.

The Redis-backed registry needs the ``redis`` extra and lives in
:mod:`energy_messaging.redis_registry`.
"""

from energy_messaging._commands import Command, CommandHook, CommandState
from energy_messaging._device_manager import DeviceManager, TelemetryHandler
from energy_messaging._protocol import (
    CONTEXT_FIELD,
    DeviceTopics,
    StatusUpdate,
    command_payload,
    parse_reply,
    parse_status,
    reply_payload,
    status_payload,
)
from energy_messaging._registry import Device, DeviceRegistry, DeviceState, InMemoryDeviceRegistry, accepts_status

__all__ = [
    "CONTEXT_FIELD",
    "Command",
    "CommandHook",
    "CommandState",
    "Device",
    "DeviceManager",
    "DeviceRegistry",
    "DeviceState",
    "DeviceTopics",
    "InMemoryDeviceRegistry",
    "StatusUpdate",
    "TelemetryHandler",
    "accepts_status",
    "command_payload",
    "parse_reply",
    "parse_status",
    "reply_payload",
    "status_payload",
]
