"""Smoke run: import every energy package and print its version (the main job until the
reference service exists)."""

from __future__ import annotations

import importlib
import importlib.metadata


def main() -> None:
    """Import each distribution's package and print name, version and location."""
    for dist, module in [
        ("energy-common", "energy_common"),
        ("energy-auth", "energy_auth"),
        ("energy-monitoring", "energy_monitoring"),
        ("energy-messaging", "energy_messaging"),
    ]:
        mod = importlib.import_module(module)
        version = getattr(mod, "__version__", "?")
        assert version == importlib.metadata.version(dist), f"{dist}: metadata and __version__ differ"
        print(f"{dist:<18} {version:<8} {module}")


if __name__ == "__main__":
    main()
