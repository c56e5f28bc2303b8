"""Deprecated alias of :mod:`energy_common.logging` (energy-libs-compat): import ``energy_common.logging`` instead."""

from libs._alias import alias

__getattr__, __dir__, __all__ = alias(__name__, "energy_common.logging")
