"""Deprecated alias of :mod:`energy_auth` (energy-libs-compat): import ``energy_auth`` instead."""

from libs._alias import alias

__getattr__, __dir__, __all__ = alias(__name__, "energy_auth")
