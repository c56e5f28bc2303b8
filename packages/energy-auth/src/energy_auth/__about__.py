"""Version of the energy-auth distribution (read by hatch; bump with `hatch version`)."""

__version__ = "0.1.0"
