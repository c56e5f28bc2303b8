"""Deprecated alias of :mod:`energy_messaging` (energy-libs-compat): import ``energy_messaging`` instead."""

from libs._alias import alias

__getattr__, __dir__, __all__ = alias(__name__, "energy_messaging", submodules=("mqtt",))
