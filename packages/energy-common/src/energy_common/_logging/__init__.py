"""Private implementation of :mod:`energy_common.logging` (import the public module instead)."""
