"""Device simulator following the device protocol (used by tests, benchmark and demo)."""

from energy_messaging.devices._simulator import CommandFunction, DeviceSimulator

__all__ = ["CommandFunction", "DeviceSimulator"]
