"""The seed import path ``energy_messaging.mqtt`` stays light and still offers every name."""

from __future__ import annotations

import subprocess
import sys

import energy_messaging
import pytest
from energy_messaging import mqtt


def test_seed_import_defers_json_and_state_until_used() -> None:
    """Importing MQTTManager and DeviceManager loads neither json nor the state module; using them does."""
    code = (
        "import sys; from energy_messaging.mqtt import MQTTManager, DeviceManager; "
        "print(sorted(m for m in ('json', 'energy_messaging._state') if m in sys.modules)); "
        "MQTTManager('127.0.0.1').state; print(sorted(m for m in ('json', 'energy_messaging._state') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split("\n")[:2] == ["[]", "['energy_messaging._state', 'json']"]


def test_lazy_names_resolve_to_the_package_objects() -> None:
    """LastWill and MQTTState load on first use, are listed by dir(), and unknown names raise AttributeError."""
    assert mqtt.LastWill is energy_messaging.LastWill
    assert mqtt.MQTTState is energy_messaging.MQTTState
    assert {"LastWill", "MQTTState", "MQTTManager"} <= set(dir(mqtt))
    with pytest.raises(AttributeError):
        _ = mqtt.NoSuchName
