"""Deprecated alias of :mod:`energy_monitoring.tracing` (energy-libs-compat): import ``energy_monitoring.tracing`` instead."""

from libs._alias import alias

__getattr__, __dir__, __all__ = alias(__name__, "energy_monitoring.tracing")
