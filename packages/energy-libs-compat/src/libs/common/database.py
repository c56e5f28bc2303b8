"""Deprecated alias of :mod:`energy_common.database` (energy-libs-compat): import ``energy_common.database`` instead."""

from libs._alias import alias

__getattr__, __dir__, __all__ = alias(__name__, "energy_common.database")
