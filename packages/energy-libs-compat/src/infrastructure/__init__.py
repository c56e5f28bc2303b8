"""energy-libs-compat: ``infrastructure.logging`` as a deprecated alias of :mod:`energy_common.logging`."""
