"""MQTT for services: :class:`MQTTManager` and what its handlers see (seed path ``libs.messaging.mqtt``).

The parts, one module each: ``_manager`` (the front door) owns ``_session`` (the
supervised connection over ``_client``, the only module touching aiomqtt/paho
internals, with its ``_wire`` codec), ``_inbound`` (queue, handlers, acks, with
``_dead_letters``), ``_outbound`` (the publish pipeline, with ``_payload``), ``_router``
(subscriptions), ``_observe`` (spans and metrics) and ``_tasks`` (named, owned tasks); settings are one
``_options.MQTTOptions``. Names load on first use, so importing the package is cheap.

``DeviceManager`` belongs to :mod:`energy_messaging.devices`; it resolves here too
because the seed imported it from ``libs.messaging.mqtt``.

Example:
    >>> from energy_messaging.mqtt import DeviceManager, MQTTManager
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from energy_messaging._lazy import lazy_names

if TYPE_CHECKING:
    from energy_messaging._metrics import MetricsSink
    from energy_messaging.devices._manager import DeviceManager
    from energy_messaging.mqtt._drops import BrokerDrops
    from energy_messaging.mqtt._manager import MQTTManager
    from energy_messaging.mqtt._message import DeadLetter, MQTTMessage
    from energy_messaging.mqtt._observe import topic_template
    from energy_messaging.mqtt._options import DeadLetterHook, LastWill, MQTTOptions, MQTTSettings, ProtocolChoice
    from energy_messaging.mqtt._router import Handler, Subscription
    from energy_messaging.mqtt._state import MQTTState

_LAZY: dict[str, str] = {
    "BrokerDrops": "energy_messaging.mqtt._drops",
    "DeadLetter": "energy_messaging.mqtt._message",
    "DeadLetterHook": "energy_messaging.mqtt._options",
    "Handler": "energy_messaging.mqtt._router",
    "LastWill": "energy_messaging.mqtt._options",
    "MQTTManager": "energy_messaging.mqtt._manager",
    "MQTTMessage": "energy_messaging.mqtt._message",
    "MQTTOptions": "energy_messaging.mqtt._options",
    "MQTTSettings": "energy_messaging.mqtt._options",
    "MQTTState": "energy_messaging.mqtt._state",
    "MetricsSink": "energy_messaging._metrics",
    "ProtocolChoice": "energy_messaging.mqtt._options",
    "Subscription": "energy_messaging.mqtt._router",
    "topic_template": "energy_messaging.mqtt._observe",
    "DeviceManager": "energy_messaging.devices._manager",  # the seed imported it from here
}

__all__ = [
    "BrokerDrops",
    "DeadLetter",
    "DeadLetterHook",
    "DeviceManager",
    "Handler",
    "LastWill",
    "MQTTManager",
    "MQTTMessage",
    "MQTTOptions",
    "MQTTSettings",
    "MQTTState",
    "MetricsSink",
    "ProtocolChoice",
    "Subscription",
    "topic_template",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
