"""Deprecated alias of :mod:`energy_common.http_client` (energy-libs-compat): import ``energy_common.http_client`` instead."""

from libs._alias import alias

__getattr__, __dir__, __all__ = alias(__name__, "energy_common.http_client")
