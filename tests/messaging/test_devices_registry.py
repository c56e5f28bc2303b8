"""Device registries (in-memory and Redis) share one behaviour, tested by the same bodies."""

from __future__ import annotations

from typing import Any

import pytest
from energy_messaging.devices import Device, DeviceRegistry, InMemoryDeviceRegistry, accepts_status


@pytest.fixture(params=["memory", "redis"])
def registry(request: pytest.FixtureRequest) -> DeviceRegistry:
    """Each registry implementation."""
    if request.param == "memory":
        return InMemoryDeviceRegistry()
    pytest.importorskip("redis")
    from energy_messaging.redis_registry import RedisDeviceRegistry

    client: Any = request.getfixturevalue("redis_client")
    prefix: str = request.getfixturevalue("redis_key_prefix")
    return RedisDeviceRegistry(client, prefix=prefix)


async def test_add_get_list_remove(registry: DeviceRegistry) -> None:
    """Devices round-trip and list by type and status, ordered by id."""
    assert isinstance(registry, DeviceRegistry)
    await registry.add(Device("b", "meter", ["x/b/data"], {"site": 1}))
    await registry.add(Device("a", "thermostat"))
    got = await registry.get("b")
    assert got is not None
    assert (got.device_type, got.topics, got.metadata, got.status) == ("meter", ["x/b/data"], {"site": 1}, "unknown")
    assert [d.device_id for d in await registry.list()] == ["a", "b"]
    assert [d.device_id for d in await registry.list(device_type="meter")] == ["b"]
    assert await registry.get("zzz") is None
    assert await registry.remove("a") is True
    assert await registry.remove("a") is False
    assert [d.device_id for d in await registry.list()] == ["b"]


async def test_status_sequence_rules(registry: DeviceRegistry) -> None:
    """Newer sequences win; a stale Last Will is ignored; unknown devices are not created."""
    await registry.add(Device("d", "meter"))
    assert await registry.set_status("d", "online", 10, 1.0)
    assert not await registry.set_status("d", "offline", 9, 2.0)  # stale will of the previous session
    assert not await registry.set_status("d", "online", 10, 2.0)  # duplicate
    device = await registry.get("d")
    assert device is not None
    assert (device.status, device.status_seq) == ("online", 10)
    assert await registry.set_status("d", "offline", 10, 3.0)  # this session's will
    assert not await registry.set_status("d", "online", 10, 4.0)  # retained online replayed late
    assert [x.device_id for x in await registry.list(status="offline")] == ["d"]
    assert not await registry.set_status("ghost", "online", 1, 1.0)
    assert await registry.get("ghost") is None


async def test_touch_updates_last_seen(registry: DeviceRegistry) -> None:
    """touch() records the last-seen time of a registered device only."""
    await registry.add(Device("d", "meter"))
    await registry.touch("d", 123.5)
    await registry.touch("ghost", 1.0)
    device = await registry.get("d")
    assert device is not None
    assert device.last_seen == 123.5


@pytest.mark.parametrize(
    ("current_seq", "current", "seq", "status", "expected"),
    [
        (None, "unknown", 0, "online", True),
        (5, "online", 6, "online", True),
        (5, "online", 4, "offline", False),
        (5, "online", 5, "offline", True),
        (5, "offline", 5, "online", False),
        (5, "offline", 5, "offline", False),
    ],
)
def test_accepts_status(current_seq: int | None, current: Any, seq: int, status: Any, expected: bool) -> None:
    """The pure status rule behind both registries."""
    assert accepts_status(current_seq, current, seq, status) is expected
