"""Device management: :class:`DeviceManager`, the registry Protocol, commands and the protocol helpers.

The parts: ``_protocol`` (topics and payloads, pure functions), ``_registry`` (device
records, the ``DeviceRegistry`` Protocol, the in-memory registry), ``_commands`` (a
command's lifecycle), ``_store`` (the ``CommandStore`` Protocol, the in-memory store),
``_dispatcher`` (the durable command engine), ``_telemetry`` (command span and
metrics), ``_manager`` (``DeviceManager`` over an ``MQTTManager``) and
``_simulator`` (a device following the protocol; public in :mod:`energy_messaging.simulator`).
The Redis-backed registry and command store need the ``redis`` extra and live in
:mod:`energy_messaging.redis_registry` and :mod:`energy_messaging.redis_commands`; the
SQL command store needs ``sql`` (:mod:`energy_messaging.sql_commands`). Names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from energy_messaging._lazy import lazy_names

if TYPE_CHECKING:
    from energy_messaging.devices._commands import Command, CommandHook, CommandState
    from energy_messaging.devices._dispatcher import CommandOptions
    from energy_messaging.devices._manager import DeviceManager, TelemetryHandler, command_result
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
    from energy_messaging.devices._store import CommandStore, InMemoryCommandStore
    from energy_messaging.devices._telemetry import CommandMetrics

_LAZY: dict[str, str] = {
    "CONTEXT_FIELD": "energy_messaging.devices._protocol",
    "Command": "energy_messaging.devices._commands",
    "CommandHook": "energy_messaging.devices._commands",
    "CommandMetrics": "energy_messaging.devices._telemetry",
    "CommandOptions": "energy_messaging.devices._dispatcher",
    "CommandState": "energy_messaging.devices._commands",
    "CommandStore": "energy_messaging.devices._store",
    "Device": "energy_messaging.devices._registry",
    "DeviceManager": "energy_messaging.devices._manager",
    "DeviceRegistry": "energy_messaging.devices._registry",
    "DeviceState": "energy_messaging.devices._registry",
    "DeviceTopics": "energy_messaging.devices._protocol",
    "InMemoryCommandStore": "energy_messaging.devices._store",
    "InMemoryDeviceRegistry": "energy_messaging.devices._registry",
    "StatusUpdate": "energy_messaging.devices._protocol",
    "TelemetryHandler": "energy_messaging.devices._manager",
    "accepts_status": "energy_messaging.devices._registry",
    "command_payload": "energy_messaging.devices._protocol",
    "command_result": "energy_messaging.devices._manager",
    "parse_reply": "energy_messaging.devices._protocol",
    "parse_status": "energy_messaging.devices._protocol",
    "reply_payload": "energy_messaging.devices._protocol",
    "status_payload": "energy_messaging.devices._protocol",
}

__all__ = [
    "CONTEXT_FIELD",
    "Command",
    "CommandHook",
    "CommandMetrics",
    "CommandOptions",
    "CommandState",
    "CommandStore",
    "Device",
    "DeviceManager",
    "DeviceRegistry",
    "DeviceState",
    "DeviceTopics",
    "InMemoryCommandStore",
    "InMemoryDeviceRegistry",
    "StatusUpdate",
    "TelemetryHandler",
    "accepts_status",
    "command_payload",
    "command_result",
    "parse_reply",
    "parse_status",
    "reply_payload",
    "status_payload",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
