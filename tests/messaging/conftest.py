"""Fixtures shared by the energy-messaging tests: polling for a condition, managers on the shared broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from energy_messaging import MQTTManager

#: ``await wait_until(condition, within=10.0)``
WaitUntil = Callable[..., Awaitable[None]]


async def _wait_until(condition: Callable[[], object], within: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(0.01)


@pytest.fixture
def wait_until() -> WaitUntil:
    """Poll a condition until it holds (``await wait_until(condition, within=10.0)``), failing after ``within`` s."""
    return _wait_until


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
