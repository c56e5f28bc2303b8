"""Version of the energy-libs meta-package (read by hatch; bump with `hatch version`)."""

__version__ = "0.1.0"
