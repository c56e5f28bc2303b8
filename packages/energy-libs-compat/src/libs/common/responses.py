"""Deprecated alias of :mod:`energy_common.responses` (energy-libs-compat): import ``energy_common.responses`` instead."""

from libs._alias import alias

__getattr__, __dir__, __all__ = alias(__name__, "energy_common.responses")
