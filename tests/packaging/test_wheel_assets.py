"""Static files ship in the wheels: Swagger UI in energy-common, the dashboard in meter-service."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]


def test_energy_common_wheel_carries_swagger_ui(built_distributions: dict[str, Any]) -> None:
    """The wheel holds the vendored Swagger UI files and their license next to the code serving them."""
    names = set(zipfile.ZipFile(built_distributions["energy-common"].wheel).namelist())
    folder = "energy_common/apidocs/swagger_ui/"
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE", "NOTICE", "VENDORED.md"):
        assert folder + name in names, name
    assert "energy_common/apidocs/_swagger.py" in names


def test_meter_service_wheel_carries_the_dashboard(
    hatch_bin: Path, run_cmd: Callable[..., str], tmp_path: Path
) -> None:
    """The meter-service wheel holds the dashboard's three files, byte for byte."""
    folder = REPO / "examples" / "meter-service"
    run_cmd([hatch_bin, "build", "-t", "wheel", tmp_path], cwd=folder)
    (wheel,) = tmp_path.glob("meter_service-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        for name in ("index.html", "dashboard.css", "dashboard.js"):
            packaged = archive.read(f"meter_service/dashboard/{name}")
            assert packaged == (folder / "src" / "meter_service" / "dashboard" / name).read_bytes()
