"""Deprecated alias of :mod:`energy_common` (energy-libs-compat): import ``energy_common`` instead."""

from libs._alias import alias

__getattr__, __dir__, __all__ = alias(
    __name__,
    "energy_common",
    submodules=("auth", "cache", "database", "exceptions", "health", "http_client", "middleware", "responses", "utils"),
)
