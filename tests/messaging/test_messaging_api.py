"""The public API of energy_messaging is pinned and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import energy_common.exceptions as common_errors
import energy_messaging
import pytest
from energy_messaging import errors


def test_version_and_all_are_pinned() -> None:
    """__all__ is sorted, resolvable and holds the MQTT and device names."""
    names = [name for name in energy_messaging.__all__ if not name.startswith("__")]
    assert names == sorted(names)
    for name in energy_messaging.__all__:
        assert hasattr(energy_messaging, name), name
    assert {"MQTTManager", "DeviceManager", "DeviceSimulator", "MQTTHealthCheck", "__version__"} <= set(
        energy_messaging.__all__
    )
    assert isinstance(energy_messaging.__version__, str)


def test_event_bus_names_are_reexported() -> None:
    """The event-bus names resolve from the top package to the same objects as in energy_messaging.events."""
    from energy_messaging import events

    for name in ("Event", "EventBus", "InMemoryEventBus", "create_event_bus", "idempotent", "EventBusError"):
        assert name in energy_messaging.__all__
        assert getattr(energy_messaging, name) is getattr(events, name)


def test_top_level_names_load_lazily() -> None:
    """``import energy_messaging`` does not import aiomqtt until a name is used; unknown names raise AttributeError."""
    code = "import sys, energy_messaging as m; a = 'aiomqtt' in sys.modules; m.MQTTManager; print(a, 'aiomqtt' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["False", "True"]
    with pytest.raises(AttributeError):
        _ = energy_messaging.NoSuchThing
    assert "MQTTManager" in dir(energy_messaging)


def test_seed_import_path() -> None:
    """The seed's ``libs.messaging.mqtt`` import works under its new name."""
    from energy_messaging.mqtt import DeviceManager, MQTTManager

    assert MQTTManager is energy_messaging.MQTTManager
    assert DeviceManager is energy_messaging.DeviceManager


@pytest.mark.parametrize(
    "statement",
    [
        "import energy_messaging",
        "from energy_messaging.mqtt import MQTTManager, DeviceManager",
        "import energy_messaging.devices, energy_messaging.simulator, energy_messaging.health, energy_messaging.topics",
    ],
)
def test_import_does_not_pull_heavy_modules(statement: str) -> None:
    """The MQTT and device modules import none of fastapi, sqlalchemy, redis, httpx, pydantic or OpenTelemetry."""
    code = (
        f"import sys; {statement}; "
        "print(','.join(m for m in ('fastapi','sqlalchemy','redis','httpx','pydantic','opentelemetry') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    ("cls", "base", "code"),
    [
        (errors.TopicValidationError, common_errors.ValidationError, "TOPIC_INVALID"),
        (errors.PayloadEncodeError, common_errors.MessagingError, "PAYLOAD_NOT_SERIALIZABLE"),
        (errors.PublishBufferFullError, common_errors.MessagingConnectionError, "PUBLISH_BUFFER_FULL"),
        (errors.NotConnectedError, common_errors.MessagingConnectionError, "MQTT_NOT_CONNECTED"),
        (errors.DeviceOfflineError, common_errors.MessagingError, "DEVICE_OFFLINE"),
        (errors.CommandTimeoutError, errors.CommandError, "COMMAND_TIMEOUT"),
        (errors.CommandFailedError, errors.CommandError, "COMMAND_FAILED"),
        (errors.CommandExpiredError, errors.CommandError, "COMMAND_EXPIRED"),
        (errors.PublishError, common_errors.MessagingError, "PUBLISH_FAILED"),
        (errors.MessageTooLargeError, errors.PublishError, "MESSAGE_TOO_LARGE"),
    ],
)
def test_error_tree(cls: type[common_errors.EnergyError], base: type[Exception], code: str) -> None:
    """Each error sits under the energy_common tree with a stable code."""
    assert issubclass(cls, base)
    assert issubclass(cls, common_errors.MessagingError)
    assert cls.error_code == code
    assert cls().to_dict()["error_code"] == code
