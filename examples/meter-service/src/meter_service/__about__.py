"""Version of the meter service."""

__version__ = "0.1.0"
