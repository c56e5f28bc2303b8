"""MQTT for services: :class:`MQTTManager` and the device layer (seed path ``libs.messaging.mqtt``).

Example:
    >>> from energy_messaging.mqtt import DeviceManager, MQTTManager
"""

from energy_messaging._device_manager import DeviceManager
from energy_messaging._manager import MQTTManager
from energy_messaging._message import DeadLetter, MQTTMessage
from energy_messaging._router import Handler, Subscription
from energy_messaging._state import LastWill, MQTTState

__all__ = [
    "DeadLetter",
    "DeviceManager",
    "Handler",
    "LastWill",
    "MQTTManager",
    "MQTTMessage",
    "MQTTState",
    "Subscription",
]
