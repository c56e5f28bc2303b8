"""energy-messaging: MQTT manager, device management and event bus for the energy platform.

Names are imported on first use (PEP 562), so ``import energy_messaging`` stays cheap;
``from energy_messaging import MQTTManager`` works as usual.

Example:
    >>> from energy_messaging import DeviceManager, MQTTManager

See the package README for the device protocol and delivery guarantees.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from energy_messaging.__about__ import __version__

if TYPE_CHECKING:
    from energy_messaging._commands import Command, CommandState
    from energy_messaging._device_manager import DeviceManager
    from energy_messaging._errors import (
        CommandError,
        CommandExpiredError,
        CommandFailedError,
        CommandTimeoutError,
        DeviceOfflineError,
        MessageTooLargeError,
        NotConnectedError,
        PayloadEncodeError,
        PublishBufferFullError,
        PublishError,
        TopicValidationError,
    )
    from energy_messaging._health import MQTTHealthCheck
    from energy_messaging._manager import MQTTManager
    from energy_messaging._message import DeadLetter, MQTTMessage
    from energy_messaging._protocol import DeviceTopics
    from energy_messaging._registry import Device, DeviceRegistry, InMemoryDeviceRegistry
    from energy_messaging._router import Subscription
    from energy_messaging._simulator import DeviceSimulator
    from energy_messaging._state import LastWill, MQTTState
    from energy_messaging._topics import TopicPattern, build_topic, topic_level
    from energy_messaging.events import (
        Event,
        EventBus,
        EventBusClosedError,
        EventBusConfigurationError,
        EventBusConnectionError,
        EventBusError,
        EventBusStats,
        EventHandler,
        EventInProgressError,
        IdempotencyStore,
        InMemoryEventBus,
        InMemoryIdempotencyStore,
        InvalidEventError,
        create_event_bus,
        idempotent,
    )

_LAZY: dict[str, str] = {
    "Command": "energy_messaging._commands",
    "CommandError": "energy_messaging._errors",
    "CommandExpiredError": "energy_messaging._errors",
    "CommandFailedError": "energy_messaging._errors",
    "CommandState": "energy_messaging._commands",
    "CommandTimeoutError": "energy_messaging._errors",
    "DeadLetter": "energy_messaging._message",
    "Device": "energy_messaging._registry",
    "DeviceManager": "energy_messaging._device_manager",
    "DeviceOfflineError": "energy_messaging._errors",
    "DeviceRegistry": "energy_messaging._registry",
    "DeviceSimulator": "energy_messaging._simulator",
    "DeviceTopics": "energy_messaging._protocol",
    "InMemoryDeviceRegistry": "energy_messaging._registry",
    "LastWill": "energy_messaging._state",
    "MQTTHealthCheck": "energy_messaging._health",
    "MQTTManager": "energy_messaging._manager",
    "MQTTMessage": "energy_messaging._message",
    "MQTTState": "energy_messaging._state",
    "MessageTooLargeError": "energy_messaging._errors",
    "NotConnectedError": "energy_messaging._errors",
    "PayloadEncodeError": "energy_messaging._errors",
    "PublishBufferFullError": "energy_messaging._errors",
    "PublishError": "energy_messaging._errors",
    "Subscription": "energy_messaging._router",
    "TopicPattern": "energy_messaging._topics",
    "TopicValidationError": "energy_messaging._errors",
    "build_topic": "energy_messaging._topics",
    "topic_level": "energy_messaging._topics",
    "Event": "energy_messaging.events",
    "EventBus": "energy_messaging.events",
    "EventBusClosedError": "energy_messaging.events",
    "EventBusConfigurationError": "energy_messaging.events",
    "EventBusConnectionError": "energy_messaging.events",
    "EventBusError": "energy_messaging.events",
    "EventBusStats": "energy_messaging.events",
    "EventHandler": "energy_messaging.events",
    "EventInProgressError": "energy_messaging.events",
    "IdempotencyStore": "energy_messaging.events",
    "InMemoryEventBus": "energy_messaging.events",
    "InMemoryIdempotencyStore": "energy_messaging.events",
    "InvalidEventError": "energy_messaging.events",
    "create_event_bus": "energy_messaging.events",
    "idempotent": "energy_messaging.events",
}

__all__ = [
    "Command",
    "CommandError",
    "CommandExpiredError",
    "CommandFailedError",
    "CommandState",
    "CommandTimeoutError",
    "DeadLetter",
    "Device",
    "DeviceManager",
    "DeviceOfflineError",
    "DeviceRegistry",
    "DeviceSimulator",
    "DeviceTopics",
    "Event",
    "EventBus",
    "EventBusClosedError",
    "EventBusConfigurationError",
    "EventBusConnectionError",
    "EventBusError",
    "EventBusStats",
    "EventHandler",
    "EventInProgressError",
    "IdempotencyStore",
    "InMemoryDeviceRegistry",
    "InMemoryEventBus",
    "InMemoryIdempotencyStore",
    "InvalidEventError",
    "LastWill",
    "MQTTHealthCheck",
    "MQTTManager",
    "MQTTMessage",
    "MQTTState",
    "MessageTooLargeError",
    "NotConnectedError",
    "PayloadEncodeError",
    "PublishBufferFullError",
    "PublishError",
    "Subscription",
    "TopicPattern",
    "TopicValidationError",
    "__version__",
    "build_topic",
    "create_event_bus",
    "idempotent",
    "topic_level",
]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'energy_messaging' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """List the public names."""
    return sorted(__all__)
