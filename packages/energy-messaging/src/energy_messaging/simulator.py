"""Device simulator following the device protocol (used by tests, benchmark and demo)."""

from energy_messaging._simulator import CommandFunction, DeviceSimulator

__all__ = ["CommandFunction", "DeviceSimulator"]
