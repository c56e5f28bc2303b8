"""Deprecated alias of :mod:`energy_messaging.mqtt` (energy-libs-compat): import ``energy_messaging.mqtt`` instead."""

from libs._alias import alias

__getattr__, __dir__, __all__ = alias(__name__, "energy_messaging.mqtt")
