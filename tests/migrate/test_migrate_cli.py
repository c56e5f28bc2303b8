"""Tests for ``python -m energy_migrate migrate``: diff, --write, --check, requirements with pins."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

SERVICE = {
    "app/main.py": (
        "from libs.common.cache import CacheManager  # cache\n"
        "from libs.common.auth import TokenManager\n"
        "from infrastructure.logging import setup_logging\n"
    ),
    "app/health.py": "from libs.common.health import HealthChecker, DatabaseHealthCheck\n",
    "app/plain.py": "import json\n",
    "app/broken.py": "from libs.common import (\n",
    ".venv/lib/site.py": "from libs.common.cache import CacheManager\n",
}


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the tool as a user would."""
    argv = [sys.executable, "-m", "energy_migrate", *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def service(tmp_path: Path) -> Path:
    """A service folder with old imports, an untouched file, a broken file and a virtualenv to skip."""
    for name, text in SERVICE.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def pin(distribution: str) -> str:
    """What the tool pins to: the installed version, else the compatible range."""
    try:
        return f"=={importlib.metadata.version(distribution)}"
    except importlib.metadata.PackageNotFoundError:
        return ">=0.1,<0.2"


def test_dry_run_prints_the_diff_and_requirements_and_writes_nothing(service: Path) -> None:
    """Without --write the tool prints a unified diff and the pinned requirements, and leaves the files alone."""
    result = run("migrate", service)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"--- a/{service / 'app/main.py'}" in out
    assert "-from libs.common.cache import CacheManager  # cache" in out
    assert "+from energy_common.cache import CacheManager  # cache" in out
    assert "+from energy_common.health import HealthChecker, DatabaseHealthCheck" in out
    assert "plain.py" not in out
    assert ".venv" not in out
    assert "broken.py: not valid Python, skipped" in out
    assert f"energy-auth{pin('energy-auth')}" in out.splitlines()
    assert f"energy-common[cache,db]{pin('energy-common')}" in out.splitlines()
    assert "2 file(s) to rewrite" in out
    for name, text in SERVICE.items():
        assert (service / name).read_text() == text


def test_write_applies_and_a_second_run_finds_nothing(service: Path) -> None:
    """--write rewrites the files; a second run (and --check) then reports nothing to do."""
    assert run("migrate", service, "--write").returncode == 0
    assert (service / "app/main.py").read_text() == (
        "from energy_common.cache import CacheManager  # cache\n"
        "from energy_auth import TokenManager\n"
        "from energy_common.logging import setup_logging\n"
    )
    assert (service / ".venv/lib/site.py").read_text() == SERVICE[".venv/lib/site.py"]
    again = run("migrate", service, "--check")
    assert again.returncode == 0
    assert "0 file(s)" in again.stdout
    assert "---" not in again.stdout


def test_check_exits_1_when_something_would_change(service: Path) -> None:
    """--check (for CI) exits 1 while old imports remain, and changes nothing."""
    result = run("migrate", service / "app" / "main.py", "--check")
    assert result.returncode == 1
    assert (service / "app/main.py").read_text() == SERVICE["app/main.py"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("migrate", "/nonexistent/service"), "no such file or folder"),
        (("migrate",), "the following arguments are required"),
        (("migrate", ".", "--write", "--check"), "not allowed with argument"),
        ((), "the following arguments are required"),
    ],
)
def test_bad_command_lines_exit_2_with_a_message(args: tuple[str, ...], message: str) -> None:
    """A missing path, no path or conflicting flags exit 2 with argparse's message."""
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr
