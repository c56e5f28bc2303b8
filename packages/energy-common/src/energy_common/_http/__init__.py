"""Implementation of :mod:`energy_common.http_client` (import the public module instead)."""
