"""Device management: :class:`DeviceManager`, the registry Protocol, commands and the protocol helpers.

The parts: ``_protocol`` (topics and payloads, pure functions), ``_registry`` (device
records, the ``DeviceRegistry`` Protocol, the in-memory registry), ``_commands`` (a
command's lifecycle), ``_manager`` (``DeviceManager`` over an ``MQTTManager``) and
``_simulator`` (a device following the protocol; public in :mod:`energy_messaging.simulator`).
The Redis-backed registry needs the ``redis`` extra and lives in
:mod:`energy_messaging.redis_registry`. Names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from energy_messaging._lazy import lazy_names

if TYPE_CHECKING:
    from energy_messaging.devices._commands import Command, CommandHook, CommandState
    from energy_messaging.devices._manager import DeviceManager, TelemetryHandler
    from energy_messaging.devices._protocol import (
        CONTEXT_FIELD,
        DeviceTopics,
        StatusUpdate,
        command_payload,
        parse_reply,
        parse_status,
        reply_payload,
        status_payload,
    )
    from energy_messaging.devices._registry import (
        Device,
        DeviceRegistry,
        DeviceState,
        InMemoryDeviceRegistry,
        accepts_status,
    )

_LAZY: dict[str, str] = {
    "CONTEXT_FIELD": "energy_messaging.devices._protocol",
    "Command": "energy_messaging.devices._commands",
    "CommandHook": "energy_messaging.devices._commands",
    "CommandState": "energy_messaging.devices._commands",
    "Device": "energy_messaging.devices._registry",
    "DeviceManager": "energy_messaging.devices._manager",
    "DeviceRegistry": "energy_messaging.devices._registry",
    "DeviceState": "energy_messaging.devices._registry",
    "DeviceTopics": "energy_messaging.devices._protocol",
    "InMemoryDeviceRegistry": "energy_messaging.devices._registry",
    "StatusUpdate": "energy_messaging.devices._protocol",
    "TelemetryHandler": "energy_messaging.devices._manager",
    "accepts_status": "energy_messaging.devices._registry",
    "command_payload": "energy_messaging.devices._protocol",
    "parse_reply": "energy_messaging.devices._protocol",
    "parse_status": "energy_messaging.devices._protocol",
    "reply_payload": "energy_messaging.devices._protocol",
    "status_payload": "energy_messaging.devices._protocol",
}

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

__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
