"""energy-auth: see the package README for the public API."""

from energy_auth.__about__ import __version__

__all__ = ["__version__"]
