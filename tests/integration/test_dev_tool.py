"""dev.py, the newcomer's entry point: quiet bootstrap, test arguments that reach the right phases."""

from __future__ import annotations

import importlib.util
import os
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _dev() -> ModuleType:
    """dev.py loaded as a module (it is a script)."""
    spec = importlib.util.spec_from_file_location("energy_dev_script", ROOT / "dev.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dev = _dev()


@pytest.mark.parametrize(
    ("args", "selects"),
    [
        (["-x", "-q"], False),
        (["-k", "docs"], False),  # an option's value, though docs/ exists
        (["-m", "not slow", "--timeout", "30"], False),
        (["tests/auth", "-x"], True),
        (["-x", "tests/docs/test_examples.py::test_the_site_has_examples"], True),
        (["no/such/path"], False),
    ],
)
def test_test_paths_are_told_from_options(args: list[str], selects: bool) -> None:
    """Only arguments naming existing test files or nodes count as test paths."""
    assert dev._selects_tests(args) is selects


def _fake_venv(tmp_path: Path, exit_code: int) -> Path:
    """A venv whose python is a script standing in for pip: noisy output, then ``exit_code``."""
    bin_dir = tmp_path / ".venv" / ("Scripts" if os.name == "nt" else "bin")
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text(
        "#!/bin/sh\n"
        "echo \"WARNING: Location 'file:///opt/pypi/simple/hatch/' is ignored\"\n"
        f"echo 'pip noise on stderr' >&2\nexit {exit_code}\n"
    )
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    (bin_dir / "hatch").write_text("")
    return tmp_path / ".venv"


@pytest.mark.skipif(sys.platform == "win32", reason="the stand-in for pip is a shell script")
def test_bootstrap_prints_one_line_and_hides_pip_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A successful install prints dev.py's own line only; pip's warnings stay hidden."""
    monkeypatch.setattr(dev, "VENV", _fake_venv(tmp_path, 0))
    dev.bootstrap()
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"dev.py: installing {dev.HATCH_PIN} and {dev.UV_PIN} into {dev.VENV} ..."]
    assert err == ""
    assert (dev.VENV / ".energy-bootstrap").read_text() == f"{dev.HATCH_PIN} {dev.UV_PIN}\n"


@pytest.mark.skipif(sys.platform == "win32", reason="the stand-in for pip is a shell script")
def test_bootstrap_failure_shows_pip_output_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failed install shows what pip said and exits with what failed, writing no marker."""
    monkeypatch.setattr(dev, "VENV", _fake_venv(tmp_path, 1))
    with pytest.raises(SystemExit, match="pip could not install"):
        dev.bootstrap()
    _, err = capsys.readouterr()
    assert "is ignored" in err
    assert "pip noise on stderr" in err
    assert not (dev.VENV / ".energy-bootstrap").exists()
