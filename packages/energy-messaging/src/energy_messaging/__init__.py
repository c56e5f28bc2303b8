"""energy-messaging: MQTT manager, device management and event bus for the energy platform.

Example:
    >>> from energy_messaging import DeviceManager, MQTTManager

See the package README for the device protocol and delivery guarantees.
"""

from energy_messaging.__about__ import __version__
from energy_messaging._commands import Command, CommandState
from energy_messaging._device_manager import DeviceManager
from energy_messaging._errors import (
    CommandError,
    CommandExpiredError,
    CommandFailedError,
    CommandTimeoutError,
    DeviceOfflineError,
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

# --- events: the event-bus helper adds its imports here (energy_messaging.events) ---

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
    "InMemoryDeviceRegistry",
    "LastWill",
    "MQTTHealthCheck",
    "MQTTManager",
    "MQTTMessage",
    "MQTTState",
    "NotConnectedError",
    "PayloadEncodeError",
    "PublishBufferFullError",
    "PublishError",
    "Subscription",
    "TopicPattern",
    "TopicValidationError",
    "__version__",
    "build_topic",
    "topic_level",
    # --- events: the event-bus helper adds its names here, keeping the list sorted ---
]
