"""Device records and the registry Protocol, with the in-memory registry."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = ["Device", "DeviceRegistry", "DeviceState", "InMemoryDeviceRegistry", "accepts_status"]

#: ``unknown`` until the device's first status message.
DeviceState = Literal["online", "offline", "unknown"]


@dataclass(slots=True)
class Device:
    """A registered device.

    Attributes:
        device_id: Its id (a single topic level).
        device_type: Selects the telemetry handler.
        topics: Extra topics it publishes telemetry to (besides ``{root}/{id}/telemetry``).
        metadata: Free-form JSON data.
        status: ``online``, ``offline`` or ``unknown``.
        status_seq: Sequence number of the status message that set ``status``.
        last_seen: Epoch seconds of its last telemetry or status message.
        registered_at: Epoch seconds of registration.
    """

    device_id: str
    device_type: str
    topics: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    status: DeviceState = "unknown"
    status_seq: int | None = None
    last_seen: float | None = None
    registered_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Device:
        """Rebuild a device from :meth:`to_dict` output."""
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


def accepts_status(current_seq: int | None, current: DeviceState, seq: int, status: DeviceState) -> bool:
    """Tell whether a status message replaces the current one.

    A newer sequence number always wins; within one sequence (one device session) only
    ``online`` → ``offline`` is a change, so a stale Last Will (older ``seq``) arriving
    after the device reconnected is ignored.
    """
    if current_seq is None or seq > current_seq:
        return True
    return seq == current_seq and current == "online" and status == "offline"


@runtime_checkable
class DeviceRegistry(Protocol):
    """Where devices are stored; share a Redis registry between replicas."""

    async def add(self, device: Device) -> None:
        """Insert or replace a device."""

    async def remove(self, device_id: str) -> bool:
        """Delete a device; return whether it existed."""

    async def get(self, device_id: str) -> Device | None:
        """Return a device or None."""

    async def list(self, device_type: str | None = None, status: DeviceState | None = None) -> list[Device]:
        """Return devices, optionally filtered, ordered by id."""

    async def set_status(self, device_id: str, status: DeviceState, seq: int, seen: float) -> bool:
        """Apply a status message atomically if :func:`accepts_status`; return whether it was applied."""

    async def touch(self, device_id: str, seen: float) -> None:
        """Record that the device was seen at ``seen`` (epoch seconds)."""


class InMemoryDeviceRegistry:
    """Registry in this process's memory (the default; not shared between replicas)."""

    def __init__(self) -> None:
        self._devices: dict[str, Device] = {}

    async def add(self, device: Device) -> None:
        """Insert or replace a device."""
        self._devices[device.device_id] = Device.from_dict(device.to_dict())

    async def remove(self, device_id: str) -> bool:
        """Delete a device; return whether it existed."""
        return self._devices.pop(device_id, None) is not None

    async def get(self, device_id: str) -> Device | None:
        """Return a copy of the device or None."""
        device = self._devices.get(device_id)
        return Device.from_dict(device.to_dict()) if device is not None else None

    async def list(self, device_type: str | None = None, status: DeviceState | None = None) -> list[Device]:
        """Return copies of matching devices, ordered by id."""
        return [
            Device.from_dict(d.to_dict())
            for _, d in sorted(self._devices.items())
            if (device_type is None or d.device_type == device_type) and (status is None or d.status == status)
        ]

    async def set_status(self, device_id: str, status: DeviceState, seq: int, seen: float) -> bool:
        """Apply a status message if it is newer."""
        device = self._devices.get(device_id)
        if device is None or not accepts_status(device.status_seq, device.status, seq, status):
            return False
        device.status, device.status_seq, device.last_seen = status, seq, seen
        return True

    async def touch(self, device_id: str, seen: float) -> None:
        """Record the last-seen time."""
        device = self._devices.get(device_id)
        if device is not None:
            device.last_seen = seen
