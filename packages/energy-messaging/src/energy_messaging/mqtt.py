"""MQTT for services: :class:`MQTTManager` and the device layer (seed path ``libs.messaging.mqtt``).

Example:
    >>> from energy_messaging.mqtt import DeviceManager, MQTTManager
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from energy_messaging._device_manager import DeviceManager
from energy_messaging._manager import MQTTManager
from energy_messaging._message import DeadLetter, MQTTMessage
from energy_messaging._router import Handler, Subscription

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    """Load ``LastWill`` and ``MQTTState`` on first use (PEP 562); the rest came with the manager."""
    if name in ("LastWill", "MQTTState"):
        from energy_messaging import _state  # noqa: PLC0415 - lazy by design

        value = getattr(_state, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'energy_messaging.mqtt' has no attribute {name!r}")


def __dir__() -> list[str]:
    """List the module's names, the lazy ones included."""
    return sorted({*globals(), *__all__})
