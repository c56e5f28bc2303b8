"""energy-messaging: see the package README for the public API."""

from energy_messaging.__about__ import __version__

__all__ = ["__version__"]
