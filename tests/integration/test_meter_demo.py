"""The README's first command: ``python -m meter_service`` (what ``python3 dev.py demo`` runs).

The real entry point runs as a subprocess on the embedded defaults (its SQLite file in
the test's temp directory, amqtt in-process) on a free port, answers HTTP while it runs,
prints where to look and a live summary, and stops cleanly on ``--duration`` and on
Ctrl-C (SIGINT), exiting 0.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("meter_service")

_ENGINE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "MQTT_URL", "ADMIN_PASSWORD", "ENVIRONMENT", "TRACING_EXPORTER")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback http only
        return int(response.status)


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["duration", "sigint"])
def test_the_demo_command_serves_and_stops_cleanly(tmp_path: Path, stop: str) -> None:
    """The demo serves /docs and readiness, shows telemetry arriving and exits 0 after a clean stop."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key not in _ENGINE_VARIABLES}
    env.update(DATA_DIR=str(tmp_path / "data"), LOG_LEVEL="WARNING")
    argv = [sys.executable, "-m", "meter_service", "--port", str(port), "--meters", "2", "--interval", "0.2"]
    argv += ["--summary-every", "1"]
    if stop == "duration":
        argv += ["--duration", "6"]
    process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status = _get(f"http://127.0.0.1:{port}/health/ready")
                break
            except OSError:
                time.sleep(0.1)
        assert status == 200
        assert _get(f"http://127.0.0.1:{port}/docs") == 200
        time.sleep(2.5)  # a couple of summary lines
        if stop == "sigint":
            process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=40)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-3000:]
    traces = "Traces        none: recorded for log correlation, not exported (set TRACING_EXPORTER=console|otlp)"
    for expected in (
        f"http://127.0.0.1:{port}/docs",
        f"http://127.0.0.1:{port}/metrics",
        "curl -s",
        "Bearer $TOKEN",
        traces,
    ):
        assert expected in text
    summaries = [line for line in text.splitlines() if "telemetry:" in line]
    assert summaries
    assert " 0 readings stored" not in summaries[-1]
    reason = "signal SIGINT" if stop == "sigint" else "end of --duration"
    assert f"Meter service stopped cleanly ({reason})" in text
