"""Fixtures shared by the energy-messaging tests: managers on the shared broker (``wait_until`` is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from energy_messaging import MQTTManager


@pytest.fixture
def make_manager(mqtt_broker: Any) -> Callable[..., MQTTManager]:
    """Build managers for the shared broker (not connected; use ``async with``)."""

    def make(**kwargs: Any) -> MQTTManager:
        return MQTTManager(mqtt_broker.host, mqtt_broker.port, **kwargs)

    return make


@pytest.fixture
async def mqtt(make_manager: Callable[..., MQTTManager]) -> AsyncIterator[MQTTManager]:
    """A connected manager on the shared broker."""
    async with make_manager() as manager:
        yield manager
