"""The demo runner: the service on uvicorn with simulated meters, a banner and a live summary."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Generator
from types import FrameType
from typing import Any, TextIO

import uvicorn
from energy_common.health import redact_url
from fastapi import FastAPI

from meter_service.__about__ import __version__
from meter_service._app import create_app
from meter_service._dashboard import DASHBOARD_PATH
from meter_service._runtime import MeterRuntime
from meter_service._settings import MeterSettings

__all__ = ["DemoServer", "banner", "run_demo", "server_config", "summary_line"]


class DemoServer(uvicorn.Server):
    """uvicorn's server, stopping gracefully on SIGINT/SIGTERM without re-raising the signal after."""

    stop_signal: int | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Install graceful-stop handlers for SIGINT and SIGTERM while serving."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, _frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C skips the graceful drain
        self.stop_signal = sig
        self.should_exit = True


#: How the banner describes each ``TRACING_EXPORTER``.
_TRACES = {
    "console": "console (spans printed on stdout)",
    "otlp": "OTLP (OTEL_EXPORTER_OTLP_* variables)",
    "none": "none: recorded for log correlation, not exported (set TRACING_EXPORTER=console|otlp)",
    "off": "off (set TRACING_EXPORTER=console|otlp)",
}


def _database(settings: MeterSettings, fresh_data: bool) -> str:
    url = redact_url(settings.resolved_database_url)
    if settings.database_url is not None:
        return url
    where = settings.resolved_data_dir
    if fresh_data:
        return f"{url} (fresh for this run, removed at exit; --data-dir DIR keeps the data)"
    return f"{url} (kept in {where} across runs)"


def banner(settings: MeterSettings, runtime: MeterRuntime, base: str, *, fresh_data: bool = False) -> str:
    """The lines printed once the service is up: the dashboard first, then how to call the API.

    Args:
        settings: The service's settings.
        runtime: The running service.
        base: Its base URL.
        fresh_data: The SQLite directory was made for this run (and is removed at exit).
    """
    password = runtime.generated_admin_password
    shown = password if password is not None else "$ADMIN_PASSWORD"
    origin = "generated for this run; set ADMIN_PASSWORD to choose it" if password else "from ADMIN_PASSWORD"
    if runtime.broker is not None:
        mqtt = (
            f"embedded amqtt broker on {runtime.broker.host}:{runtime.broker.port} (MQTT 3.1.1; NOT enforced "
            "there: logins and per-meter topics; the service still drops unregistered meters and forged replies)"
        )
    else:
        mqtt = f"{redact_url(settings.mqtt_url or '')} (MQTT {runtime.mqtt.protocol})"
    engines = "Redis " + redact_url(settings.redis_url) if settings.redis_url else "in-memory"
    meters = (
        f"{settings.simulator_meters} simulated meters, one reading each per {settings.simulator_interval:g} s"
        if runtime.fleet is not None
        else "off"
    )
    device = f"{settings.simulator_id_prefix}001"
    login = f'{{"username":"{settings.admin_username}","password":"{shown}"}}'
    return "\n".join(
        [
            "",
            f"Dashboard: {base}{DASHBOARD_PATH}  (log in as {settings.admin_username} / {shown})",
            "",
            f"Meter service {__version__} is running on {base}",
            f"  API docs      {base}/docs",
            f"  Metrics       {base}/metrics",
            f"  Readiness     {base}/health/ready",
            f"  Database      {_database(settings, fresh_data)}",
            f"  MQTT          {mqtt}; telemetry on {runtime.telemetry_filter}",
            f"  Cache, events {engines}",
            f"  Simulator     {meters}",
            f"  Admin user    {settings.admin_username} / {shown} ({origin})",
            f"  Traces        {_TRACES[settings.tracing_exporter]}",
            "",
            "Try it (another terminal):",
            f"  TOKEN=$(curl -s -X POST {base}/api/v1/auth/token -H 'Content-Type: application/json' \\",
            f"      -d '{login}' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"data\"][\"access_token\"])')",
            f'  curl -s -H "Authorization: Bearer $TOKEN" "{base}/api/v1/devices/{device}/readings?limit=5"',
            f'  curl -s -H "Authorization: Bearer $TOKEN" "{base}/api/v1/devices/{device}/summary"',
            '  curl -s -X POST -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \\',
            f'      -d \'{{"command":"read_meter"}}\' {base}/api/v1/devices/{device}/commands',
            "",
            "Telemetry summary every few seconds below; Ctrl-C stops cleanly.",
            "",
        ]
    )


def summary_line(runtime: MeterRuntime, previous: int, seconds: float) -> str:
    """One line about the ingestion since the last summary."""
    stats = runtime.ingestor.stats
    rate = (stats.stored - previous) / seconds if seconds > 0 else 0.0
    online = "?"
    if runtime.fleet is not None:
        online = str(sum(1 for meter in runtime.fleet.meters if meter.mqtt.is_connected))
    return (
        f"[{time.strftime('%H:%M:%S')}] telemetry: {stats.stored} readings stored (+{stats.stored - previous}, "
        f"{rate:.1f}/s), {online} meters connected, {stats.batches} batches (last {stats.last_batch}), "
        f"{stats.duplicates} duplicates, {runtime.dead_letters} dead letters, {runtime.events_seen} events consumed"
    )


async def _report(server: DemoServer, app: FastAPI, out: TextIO, every: float, fresh_data: bool) -> None:
    while not server.started:
        if server.should_exit:
            return
        await asyncio.sleep(0.05)
    runtime: MeterRuntime = app.state.meter
    settings = runtime.settings
    port = server.servers[0].sockets[0].getsockname()[1] if server.servers else settings.port
    print(banner(settings, runtime, f"http://{settings.host}:{port}", fresh_data=fresh_data), file=out, flush=True)
    previous, last = 0, time.monotonic()
    while True:
        await asyncio.sleep(every)
        now = time.monotonic()
        print(summary_line(runtime, previous, now - last), file=out, flush=True)
        previous, last = runtime.ingestor.stats.stored, now


def server_config(app: Any, settings: MeterSettings) -> uvicorn.Config:
    """uvicorn's configuration for the service.

    ``proxy_headers=False``: uvicorn would otherwise trust ``X-Forwarded-For`` from
    127.0.0.1 and rewrite the peer address; the service reads forwarded addresses itself,
    only from ``TRUSTED_PROXIES`` (see ``energy_common.proxies``).
    """
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        proxy_headers=False,
    )


async def run_demo(
    settings: MeterSettings, *, duration: float | None, every: float, out: TextIO, fresh_data: bool = False
) -> int:
    """Serve until Ctrl-C/SIGTERM (or ``duration`` seconds); return the process exit code.

    ``fresh_data``: the SQLite directory was made for this run (the banner says so).
    """
    app = create_app(settings)
    config = server_config(app, settings)
    server = DemoServer(config)
    reporter = asyncio.create_task(_report(server, app, out, every, fresh_data), name="meter-demo-summary")
    stopper: asyncio.Task[None] | None = None
    if duration is not None:

        async def stop_later() -> None:
            await asyncio.sleep(duration)
            server.should_exit = True

        stopper = asyncio.create_task(stop_later(), name="meter-demo-duration")
    try:
        await server.serve()
    finally:
        for task in (reporter, stopper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    if not server.started:
        print("The meter service did not start; see the log lines above.", file=out, flush=True)
        return 1
    runtime: MeterRuntime = app.state.meter
    why = f"signal {signal.Signals(server.stop_signal).name}" if server.stop_signal else "end of --duration"
    print(
        f"Meter service stopped cleanly ({why}): {runtime.ingestor.stats.stored} readings stored, "
        "ingestion drained, last batch flushed, MQTT disconnected.",
        file=out,
        flush=True,
    )
    return 0
