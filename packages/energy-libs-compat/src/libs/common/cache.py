"""Deprecated alias of :mod:`energy_common.cache` (energy-libs-compat): import ``energy_common.cache`` instead."""

from libs._alias import alias

__getattr__, __dir__, __all__ = alias(__name__, "energy_common.cache")
