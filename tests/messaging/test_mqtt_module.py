"""The seed import path ``energy_messaging.mqtt`` stays light and still offers every name."""

from __future__ import annotations

import subprocess
import sys

import energy_messaging
import pytest
from energy_messaging import mqtt

SCRIPT = """
import asyncio, sys
from energy_messaging.mqtt import DeviceManager, MQTTManager

DEFERRED = (
    "json",
    "energy_messaging.mqtt._options",
    "energy_messaging.mqtt._state",
    "energy_messaging.mqtt._client",
    "energy_messaging.mqtt._wire",
)
print(sorted(m for m in DEFERRED if m in sys.modules))
mqtt = MQTTManager("127.0.0.1", {port}, connect_timeout=0.3)
mqtt.state
print(sorted(m for m in DEFERRED if m in sys.modules))
try:
    asyncio.run(mqtt.connect())
except Exception as exc:
    print(type(exc).__name__)
print(sorted(m for m in DEFERRED if m in sys.modules))
"""


def test_seed_import_defers_what_only_use_needs(unused_tcp_port: int) -> None:
    """The seed import loads neither json, the options, the state module nor the wire-level client; using a manager does."""
    code = SCRIPT.format(port=unused_tcp_port)  # nothing listens there: the connect attempt fails
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split("\n")[:4] == [
        "[]",
        "['energy_messaging.mqtt._options', 'energy_messaging.mqtt._state', 'json']",
        "MessagingConnectionError",
        (
            "['energy_messaging.mqtt._client', 'energy_messaging.mqtt._options', 'energy_messaging.mqtt._state', "
            "'energy_messaging.mqtt._wire', 'json']"
        ),
    ]


def test_lazy_names_resolve_to_the_package_objects() -> None:
    """LastWill and MQTTState load on first use, are listed by dir(), and unknown names raise AttributeError."""
    assert mqtt.LastWill is energy_messaging.LastWill
    assert mqtt.MQTTState is energy_messaging.MQTTState
    assert {"LastWill", "MQTTState", "MQTTManager"} <= set(dir(mqtt))
    with pytest.raises(AttributeError):
        _ = mqtt.NoSuchName
