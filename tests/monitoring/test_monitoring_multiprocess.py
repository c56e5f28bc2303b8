"""Tests for multiprocess mode: worker processes sharing PROMETHEUS_MULTIPROC_DIR, one aggregated scrape."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from energy_monitoring.metrics import (
    MULTIPROC_ENV,
    MetricsError,
    check_multiprocess_setup,
    mark_process_dead,
    multiprocess_dir,
    render_metrics,
)
from prometheus_client.parser import text_string_to_metric_families

WORKER = textwrap.dedent(
    """
    import sys
    from energy_monitoring.metrics import increment_counter, observe, set_gauge, setup_metrics

    setup_metrics("worker-test")
    n = int(sys.argv[1])
    for _ in range(n):
        increment_counter("jobs.done", tags={"kind": "a"})
    set_gauge("active_connections", n)
    observe("payload.size", n * 10, buckets=[35, 50])
    print("ready", flush=True)
    sys.stdin.read()  # stay alive (live gauges count) until the test closes stdin
    """
)


def samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse a scrape into {(sample name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def start_worker(directory: Path, n: int) -> subprocess.Popen[str]:
    """Start a worker process that records ``n`` jobs into ``directory`` and waits."""
    env = {**os.environ, MULTIPROC_ENV: str(directory)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    """Let a worker exit by closing its stdin."""
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=30)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def test_two_worker_processes_are_aggregated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counters and histograms sum over two workers; a dead worker's live gauge disappears."""
    first = start_worker(tmp_path, 3)
    second = start_worker(tmp_path, 4)
    try:
        monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
        assert multiprocess_dir() == tmp_path
        scraped = samples(render_metrics()[0])
        base = (("service", "worker-test"),)
        assert scraped[("jobs_done_total", (("kind", "a"), *base))] == 7
        assert scraped[("active_connections", base)] == 7
        assert scraped[("payload_size_count", base)] == 2
        assert scraped[("payload_size_bucket", (("le", "35.0"), *base))] == 1
        assert scraped[("payload_size_bucket", (("le", "50.0"), *base))] == 2

        stop(second)
        mark_process_dead(second.pid)
        scraped = samples(render_metrics()[0])
        assert scraped[("jobs_done_total", (("kind", "a"), *base))] == 7
        assert scraped[("active_connections", base)] == 3
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                stop(proc)


def test_missing_directory_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A multiprocess directory that does not exist raises MetricsError naming it."""
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path / "nope"))
    with pytest.raises(MetricsError, match="not a writable directory"):
        check_multiprocess_setup()


def test_directory_set_after_import_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting the variable after prometheus_client was imported is detected (values would be lost)."""
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    with pytest.raises(MetricsError, match="before it starts"):
        check_multiprocess_setup()


def test_mode_is_off_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PROMETHEUS_MULTIPROC_DIR the checks pass and mark_process_dead is a no-op."""
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    monkeypatch.delenv(MULTIPROC_ENV.lower(), raising=False)
    assert check_multiprocess_setup() is None
    mark_process_dead(12345)


APP = textwrap.dedent(
    """
    import os
    from fastapi import FastAPI
    from energy_monitoring.metrics import setup_metrics
    from energy_monitoring.web import add_metrics_route, instrument_app

    setup_metrics("uvicorn-test")
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})

    @app.get("/pid/{n}")
    async def pid(n: int) -> dict[str, int]:
        return {"pid": os.getpid()}

    add_metrics_route(app)
    instrument_app(app, tracing=False, exclude_paths=["/metrics"])
    """
)


def get(port: int, path: str) -> tuple[int, bytes]:
    """One GET on a fresh connection (so the kernel may hand it to either worker)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_uvicorn_with_two_workers_serves_one_aggregated_scrape(tmp_path: Path) -> None:
    """uvicorn --workers 2: requests land on both workers and /metrics counts every one of them."""
    pytest.importorskip("uvicorn")
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    (tmp_path / "mp_app.py").write_text(APP)
    port = free_port()
    env = {**os.environ, MULTIPROC_ENV: str(metrics_dir)}
    argv = [sys.executable, "-m", "uvicorn", "mp_app:app", "--workers", "2", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--lifespan", "off", "--log-level", "warning"]
    server = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                get(port, "/pid/0")
                break
            except OSError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                assert server.poll() is None, server.stdout.read() if server.stdout else b""
                time.sleep(0.1)
        pids: Counter[int] = Counter()
        sent = 1
        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in range(40):  # bounded: at most 40 x 16 requests, ~10 s
                time.sleep(0.2)  # the second worker may still be importing
                results = list(pool.map(lambda i: get(port, f"/pid/{i}"), range(16)))
                sent += len(results)
                assert all(status == 200 for status, _ in results)
                pids.update(json.loads(body)["pid"] for _, body in results)
                if len(pids) == 2 and min(pids.values()) >= 5:
                    break
        assert len(pids) == 2, f"requests reached only {dict(pids)}"
        key = (
            "http_requests_total",
            (("method", "GET"), ("route", "/pid/{n}"), ("service", "uvicorn-test"), ("status", "2xx")),
        )
        # A worker records a request just after sending its response: poll briefly (bounded).
        for _ in range(50):
            status, body = get(port, "/metrics")
            assert status == 200
            scraped = samples(body)
            if scraped.get(key) == sent:
                break
            time.sleep(0.1)
        assert scraped[key] == sent
        assert not any("/pid/1" in str(labels) for _, labels in scraped)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
        if server.stdout is not None:
            server.stdout.close()
