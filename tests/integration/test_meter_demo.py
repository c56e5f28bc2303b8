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
import stat
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
    printed = [line for line in text.splitlines() if line.strip() and not line.startswith("{")]  # not log lines
    assert printed[0].startswith(f"Dashboard: http://127.0.0.1:{port}/dashboard/  (log in as admin / "), printed[:3]
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


@pytest.mark.slow
@pytest.mark.parametrize("keep", [False, True])
def test_the_demo_data_dir_is_fresh_per_run_unless_kept(tmp_path: Path, keep: bool) -> None:
    """Without --data-dir each run gets a new private directory removed at exit; --data-dir keeps it."""
    env = {key: value for key, value in os.environ.items() if key not in (*_ENGINE_VARIABLES, "DATA_DIR")}
    env.update(TMPDIR=str(tmp_path), LOG_LEVEL="WARNING")
    kept = tmp_path / "kept"
    argv = [sys.executable, "-m", "meter_service", "--port", "0", "--meters", "1", "--duration", "3"]
    argv += ["--data-dir", str(kept)] if keep else []
    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, timeout=60, check=False)
    text = done.stdout.decode(errors="replace")
    assert done.returncode == 0, text[-3000:] + done.stderr.decode(errors="replace")[-3000:]
    banner = [line for line in text.splitlines() if line.strip() and not line.startswith("{")]  # not log lines
    assert banner[0].startswith("Dashboard: http://127.0.0.1:"), banner[:3]
    database = next(line for line in banner if line.startswith("  Database"))
    if keep:
        assert f"(kept in {kept} across runs)" in database
        assert stat.S_IMODE(kept.stat().st_mode) == 0o700
        assert stat.S_IMODE((kept / "meter.db").stat().st_mode) == 0o600
    else:
        assert "(fresh for this run, removed at exit; --data-dir DIR keeps the data)" in database
        fresh = Path(database.split("sqlite+aiosqlite:///", 1)[1].split(" ", 1)[0]).parent
        assert fresh.parent == tmp_path
        assert fresh.name.startswith("meter-service-")
        assert not fresh.exists()
