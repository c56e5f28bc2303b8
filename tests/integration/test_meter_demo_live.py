"""The running demo seen from outside: its dashboard and /docs in a real browser, its API by schemathesis.

The demo runs as the newcomer starts it (``python -m meter_service``, ten simulated
meters, its own fresh data directory) on a free loopback port.

* Debian's headless chromium (through selenium and Debian's chromium-driver) logs in
  with the banner's password, sees the ten meters with their state, power and today's
  energy, watches the chart of the selected meter move and the ingestion rate appear,
  sends a command and reads the meter's reply, then an unknown command and its refusal.
  Nothing is loaded from outside the service (the page would fail under its CSP).
* schemathesis generates requests for every operation of ``/openapi.json`` (seeded) and
  checks that each status the API answers is documented for that operation.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("meter_service")

NO_VALUE = "\u2013"  # the page's placeholder (an en dash) before a value arrives
_ENGINE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "MQTT_URL", "ENVIRONMENT", "TRACING_EXPORTER", "DATA_DIR")
PASSWORD = "dashboard-test-password"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    """Poll ``condition`` until it returns something truthy, or fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception:  # noqa: BLE001 - the page is still changing under the poll
            value = None
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {seconds} s waiting for {what}")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The demo with ten meters on a free port; yields its base URL and its output file."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key not in _ENGINE_VARIABLES}
    env.update(ADMIN_PASSWORD=PASSWORD, LOG_LEVEL="WARNING", TMPDIR=str(tmp_path))
    argv = [sys.executable, "-m", "meter_service", "--port", str(port), "--interval", "0.5", "--duration", "120"]
    output = tmp_path / "demo.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        with urllib.request.urlopen(f"{base}/health/ready", timeout=2) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)

    try:
        _wait(lambda: process.poll() is None and ready(), 40, "the demo to be ready")
        yield base, output
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.slow
def test_the_dashboard_shows_the_meters_live_and_sends_a_command(demo: tuple[str, Path], chromium: Any) -> None:
    """Log in, see ten meters, see the chart move and the ingestion rate, send a command and see the reply."""
    from selenium.webdriver.common.by import By

    base, output = demo
    lines = [line for line in output.read_text().splitlines() if line.strip() and not line.startswith("{")]
    assert lines[0].startswith(f"Dashboard: {base}/dashboard/"), lines[:3]

    browser = chromium
    browser.get(base + "/")
    assert browser.current_url == f"{base}/dashboard/"
    assert browser.find_element(By.ID, "dashboard").is_displayed() is False
    browser.find_element(By.ID, "password").send_keys("not the password")
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    _wait(lambda: browser.find_element(By.ID, "login-error").text, 10, "the log-in error")
    password = browser.find_element(By.ID, "password")
    password.clear()
    password.send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()

    rows = _wait(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#meters tbody tr")) == 10, 15, "ten meters")
    assert rows
    _wait(lambda: browser.find_element(By.ID, "meter-count").text == "10 of 10 online", 15, "ten meters online")

    def meter_cells() -> list[list[str]]:
        rows = browser.find_elements(By.CSS_SELECTOR, "#meters tbody tr")
        return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]

    def filled() -> list[list[str]]:
        cells = meter_cells()
        return cells if all(row[2] != NO_VALUE and row[3] != NO_VALUE for row in cells) else []

    cells = _wait(filled, 15, "power and today's energy of every meter")
    assert [row[0] for row in cells] == [f"meter-{index:03d}" for index in range(1, 11)]
    assert all(row[1] == "online" for row in cells)
    assert all(0 <= float(row[2]) <= 10_000 for row in cells)
    assert all(float(row[3]) >= 0 for row in cells)

    # The chart of the selected meter (the first) moves: its latest point advances.
    chart = browser.find_element(By.ID, "chart")
    assert browser.find_element(By.ID, "chart-meter").text == "meter-001"
    first = _wait(lambda: chart.get_attribute("data-last-ts"), 15, "a first chart point")
    _wait(lambda: int(chart.get_attribute("data-last-ts") or 0) > int(first), 15, "the chart to move")
    assert int(chart.get_attribute("data-points") or 0) >= 2
    polyline = chart.find_element(By.TAG_NAME, "polyline").get_attribute("points") or ""
    assert len(polyline.split()) >= 2
    rate = _wait(
        lambda: re.search(r"ingestion: ([0-9.]+) readings/s", browser.find_element(By.ID, "ingestion").text),
        15,
        "the ingestion rate",
    )
    assert float(rate.group(1)) > 0

    # Choose another meter, send it a command and read its reply.
    browser.find_elements(By.CSS_SELECTOR, "#meters tbody tr")[2].click()
    assert browser.find_element(By.ID, "command-meter").text == "meter-003"
    browser.find_element(By.ID, "send-command").click()
    result = browser.find_element(By.ID, "command-result")
    _wait(lambda: result.get_attribute("data-outcome") == "ok", 15, "the command's reply")
    assert '"device_id": "meter-003"' in result.text
    assert '"power_w"' in result.text

    command = browser.find_element(By.ID, "command")
    command.clear()
    command.send_keys("self_destruct")
    browser.find_element(By.ID, "send-command").click()
    _wait(lambda: result.get_attribute("data-outcome") == "error", 15, "the refusal")
    assert result.text.startswith("422 COMMAND_REJECTED")
    if os.environ.get("ENERGY_DASHBOARD_SCREENSHOT"):
        browser.save_screenshot(os.environ["ENERGY_DASHBOARD_SCREENSHOT"])

    # Nothing failed to load or was blocked by the CSP.
    problems = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    expected = ("/auth/token - Failed to load resource: the server responded with a status of 401", "/commands - ")
    unexpected = [entry for entry in problems if not any(part in entry["message"] for part in expected)]
    assert not unexpected, unexpected


@pytest.mark.slow
def test_swagger_ui_renders_offline(demo: tuple[str, Path], chromium: Any) -> None:
    """/docs renders every operation from the service's own Swagger UI assets (no CDN)."""
    from selenium.webdriver.common.by import By

    base, _ = demo
    chromium.get(f"{base}/docs")
    _wait(lambda: len(chromium.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock")) >= 10, 20, "the operations")
    paths = {element.text for element in chromium.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert "/api/v1/devices/{device_id}/commands" in {path.replace("\u200b", "") for path in paths}
    assert not [entry for entry in chromium.get_log("browser") if entry["level"] == "SEVERE"]


def _token(base: str) -> str:
    body = json.dumps({"username": "admin", "password": PASSWORD}).encode()
    request = urllib.request.Request(  # noqa: S310 - loopback http only
        f"{base}/api/v1/auth/token", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback http only
        return str(json.load(response)["data"]["access_token"])


@pytest.mark.slow
def test_schemathesis_finds_every_answered_status_documented(demo: tuple[str, Path], tmp_path: Path) -> None:
    """Generated requests to every operation get only statuses, content types and headers the schema documents."""
    st = Path(sys.executable).parent / "st"
    if not st.exists():
        pytest.skip("schemathesis is not installed in this environment (dependency group 'tools')")
    base, _ = demo
    checks = "status_code_conformance,content_type_conformance,response_headers_conformance,allow_header_conformance"
    argv = [str(st), "run", f"{base}/openapi.json", "--checks", checks, "--max-examples", "10", "--seed", "18"]
    argv += ["--header", f"Authorization: Bearer {_token(base)}", "--no-color", "--request-timeout", "15"]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "HOME": str(tmp_path)}  # no user config, reports in tmp
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, timeout=240, check=False)
    report = done.stdout.decode(errors="replace")
    assert done.returncode == 0, report[-6000:] + done.stderr.decode(errors="replace")[-2000:]
    operations = re.search(r"Operations:\s+(\d+) selected / (\d+) total", report)
    assert operations is not None, report[-3000:]
    assert operations.group(1) == operations.group(2)
    assert int(operations.group(1)) >= 12  # every API, health and auth operation
    generated = re.search(r"(\d+) generated", report)
    assert generated is not None
    assert int(generated.group(1)) >= 100
