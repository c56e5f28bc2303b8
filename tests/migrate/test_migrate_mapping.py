"""Tests that the tool's extras table agrees with the libraries' own source and metadata."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from energy_migrate._mapping import DISTRIBUTIONS, EXTRAS, NAME_EXTRAS, requirements_for

PACKAGES = Path(__file__).resolve().parents[2] / "packages"
# Extras chosen by a run-time option, not by an import: the tool cannot see them in the code.
RUN_TIME = {
    ("energy_monitoring._setup", "otlp"): "setup_tracing(exporter='otlp')",
    ("energy_auth._passwords", "legacy"): "PasswordHasher(legacy_schemes=['bcrypt'])",
    ("energy_monitoring._clients", "instrument"): "instrument_clients([...]) / instrument_engine(db)",
}
_CALL = re.compile(r'missing_extra\("(?P<dist>[a-z-]+)", "(?P<extra>[a-z]+)"')


def extra_raising_modules() -> list[tuple[str, str, str]]:
    """``(module, distribution, extra)`` for every module of the four libraries that raises a missing-extra error."""
    found = []
    for distribution in DISTRIBUTIONS.values():
        src = PACKAGES / distribution / "src"
        for path in sorted(src.rglob("*.py")):
            if path.name == "_extras.py":  # the helper itself (its docstring shows a call)
                continue
            parts = path.relative_to(src).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found.extend((module, m["dist"], m["extra"]) for m in _CALL.finditer(path.read_text()))
    return found


@pytest.fixture(scope="module")
def sources() -> list[tuple[str, str, str]]:
    """The missing-extra sites of the repository's libraries (skips outside the repository)."""
    if not PACKAGES.is_dir():
        pytest.skip("the libraries' sources are not next to the tests")
    return extra_raising_modules()


def test_every_extra_a_library_asks_for_is_in_the_table(sources: list[tuple[str, str, str]]) -> None:
    """Each public module that raises 'needs the X extra' is mapped to X (private ones through their public door)."""
    mapped = {(module, extra) for module, extras in EXTRAS.items() for extra in extras}
    lazily = {(module, extra) for (module, _), extras in NAME_EXTRAS.items() for extra in extras}
    missing = []
    for module, _, extra in sources:
        public = ".".join(part for part in module.split(".") if not part.startswith("_"))
        door = public if public != module.split(".")[0] else module
        if (module, extra) in RUN_TIME:
            continue
        if not any(m == door or door.startswith(m + ".") for m, e in mapped | lazily if e == extra):
            missing.append((module, extra))
    assert not missing, f"modules needing an extra the migration tool does not list: {missing}"


def test_every_listed_extra_exists() -> None:
    """Each extra the tool recommends is declared by that distribution."""
    for module, extras in [*EXTRAS.items(), *((m, e) for (m, _), e in NAME_EXTRAS.items())]:
        distribution = DISTRIBUTIONS[module.split(".")[0]]
        pyproject = PACKAGES / distribution / "pyproject.toml"
        if not pyproject.is_file():
            pytest.skip("the libraries' metadata is not next to the tests")
        declared = tomllib.loads(pyproject.read_text())["project"].get("optional-dependencies", {})
        assert set(extras) <= set(declared), (module, extras)


def test_requirements_merge_extras_per_distribution() -> None:
    """Imports from several modules of one distribution become one line with the union of extras."""
    used = [
        ("energy_common.cache", "CacheManager"),
        ("energy_common.health", "DatabaseHealthCheck"),
        ("energy_common.cache.web", None),
        ("energy_common.exceptions", "ValidationError"),
        ("energy_auth", "TokenManager"),
        ("energy_auth.fastapi", "get_current_user"),
        ("json", None),
    ]
    lines = [requirement.line(None) for requirement in requirements_for(used)]
    assert lines == ["energy-auth[web]>=0.1,<0.2", "energy-common[cache,db,web]>=0.1,<0.2"]
