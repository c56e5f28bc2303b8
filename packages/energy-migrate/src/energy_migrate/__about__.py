"""Version of the energy-migrate distribution (read by hatch; bump with `hatch version`)."""

__version__ = "0.1.0"
