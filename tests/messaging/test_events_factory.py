"""create_event_bus and the import footprint of energy_messaging.events."""

from __future__ import annotations

import subprocess
import sys

import pytest
from energy_messaging.events import EventBusConfigurationError, InMemoryEventBus, create_event_bus


def test_memory_url_gives_in_process_bus() -> None:
    """memory:// builds the in-process bus with the given options."""
    bus = create_event_bus("memory://", group="billing")
    assert isinstance(bus, InMemoryEventBus)
    assert bus.group == "billing"


def test_redis_url_gives_redis_streams_bus(redis_url: str) -> None:
    """redis:// builds the Redis Streams bus (imported only then)."""
    redis_streams = pytest.importorskip("energy_messaging.events.redis_streams")
    bus = create_event_bus(redis_url, group="billing", consumer="replica-1")
    assert isinstance(bus, redis_streams.RedisStreamsEventBus)
    assert (bus.group, bus.consumer) == ("billing", "replica-1")


@pytest.mark.parametrize(
    ("url", "options"),
    [
        pytest.param("kafka://localhost", {}, id="unknown-scheme"),
        pytest.param("localhost:6379", {}, id="no-scheme"),
        pytest.param("memory://", {"colour": "red"}, id="unknown-option"),
    ],
)
def test_bad_url_or_option_is_a_configuration_error(url: str, options: dict[str, str]) -> None:
    """Unsupported schemes and unknown options raise EventBusConfigurationError."""
    with pytest.raises(EventBusConfigurationError) as info:
        create_event_bus(url, **options)
    assert info.value.error_code == "EVENT_BUS_CONFIGURATION_ERROR"


def test_default_consumer_names_are_unique_per_instance() -> None:
    """Two buses in one process get different consumer names (one per replica)."""
    assert create_event_bus().consumer != create_event_bus().consumer


def test_importing_events_does_not_import_redis() -> None:
    """import energy_messaging.events stays free of redis (the Redis backend is imported lazily)."""
    code = "import sys, energy_messaging.events; print('redis' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "False"


def test_redis_backend_without_extra_names_the_extra() -> None:
    """Without redis installed, importing the Redis backend raises an ImportError naming the extra."""
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "try:\n"
        "    import energy_messaging.events.redis_streams\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert "pip install 'energy-messaging[redis]'" in result.stdout
