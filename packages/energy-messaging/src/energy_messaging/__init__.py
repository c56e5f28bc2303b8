"""energy-messaging: MQTT manager, device management and event bus for the energy platform.

Names are imported on first use (PEP 562), so ``import energy_messaging`` stays cheap;
``from energy_messaging import MQTTManager`` works as usual.

Example:
    >>> from energy_messaging import DeviceManager, MQTTManager

Every name also has one public module, its door: ``energy_messaging.mqtt`` (MQTT),
``energy_messaging.devices`` (devices), ``energy_messaging.errors``, ``.topics``,
``.health``, ``.simulator`` and ``.events``.

See the package README for the device protocol and delivery guarantees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from energy_messaging.__about__ import __version__
from energy_messaging._lazy import lazy_names

if TYPE_CHECKING:
    from energy_messaging.devices import (
        Command,
        CommandState,
        Device,
        DeviceManager,
        DeviceRegistry,
        DeviceTopics,
        InMemoryDeviceRegistry,
    )
    from energy_messaging.errors import (
        CommandError,
        CommandExpiredError,
        CommandFailedError,
        CommandTimeoutError,
        DeviceOfflineError,
        MessageTooLargeError,
        MQTTOptionsError,
        NotConnectedError,
        PayloadEncodeError,
        PublishBufferFullError,
        PublishError,
        TopicValidationError,
    )
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
    from energy_messaging.health import (
        MQTTHealthCheck,
    )
    from energy_messaging.mqtt import (
        DeadLetter,
        LastWill,
        MQTTManager,
        MQTTMessage,
        MQTTOptions,
        MQTTState,
        Subscription,
    )
    from energy_messaging.simulator import (
        DeviceSimulator,
    )
    from energy_messaging.topics import (
        TopicPattern,
        build_topic,
        topic_level,
    )

#: Each public name and its public module (its one door; this package only forwards).
_LAZY: dict[str, str] = {
    "DeadLetter": "energy_messaging.mqtt",
    "LastWill": "energy_messaging.mqtt",
    "MQTTManager": "energy_messaging.mqtt",
    "MQTTMessage": "energy_messaging.mqtt",
    "MQTTOptions": "energy_messaging.mqtt",
    "MQTTState": "energy_messaging.mqtt",
    "Subscription": "energy_messaging.mqtt",
    "Command": "energy_messaging.devices",
    "CommandState": "energy_messaging.devices",
    "Device": "energy_messaging.devices",
    "DeviceManager": "energy_messaging.devices",
    "DeviceRegistry": "energy_messaging.devices",
    "DeviceTopics": "energy_messaging.devices",
    "InMemoryDeviceRegistry": "energy_messaging.devices",
    "CommandError": "energy_messaging.errors",
    "CommandExpiredError": "energy_messaging.errors",
    "CommandFailedError": "energy_messaging.errors",
    "CommandTimeoutError": "energy_messaging.errors",
    "DeviceOfflineError": "energy_messaging.errors",
    "MQTTOptionsError": "energy_messaging.errors",
    "MessageTooLargeError": "energy_messaging.errors",
    "NotConnectedError": "energy_messaging.errors",
    "PayloadEncodeError": "energy_messaging.errors",
    "PublishBufferFullError": "energy_messaging.errors",
    "PublishError": "energy_messaging.errors",
    "TopicValidationError": "energy_messaging.errors",
    "MQTTHealthCheck": "energy_messaging.health",
    "DeviceSimulator": "energy_messaging.simulator",
    "TopicPattern": "energy_messaging.topics",
    "build_topic": "energy_messaging.topics",
    "topic_level": "energy_messaging.topics",
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
    "MQTTOptions",
    "MQTTOptionsError",
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


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
