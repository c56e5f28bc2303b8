"""``python -m meter_service``: the demo — the service on 127.0.0.1:8000 with simulated meters.

Every option also has an environment variable (see ``MeterSettings``); the command-line
options win. Unlike the service's settings (traces to the console by default), the demo
exports no traces unless ``TRACING_EXPORTER`` is set, and its banner says so. ``--duration`` stops after that many seconds (for CI and tests).

On the embedded SQLite database each run starts empty in a fresh private directory
(``<tmp>/meter-service-XXXXXXXX``, mode 0700, removed at exit); ``--data-dir DIR`` (or
``DATA_DIR``) keeps the data in ``DIR`` across runs instead. The banner says which.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from pathlib import Path

from energy_common.exceptions import ConfigurationError
from energy_common.logging import setup_logging
from energy_monitoring.tracing import shutdown_tracing

from meter_service._demo import run_demo
from meter_service._settings import MeterSettings

__all__ = ["main", "parse_args"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the demo's command line."""
    parser = argparse.ArgumentParser(prog="python -m meter_service", description=__doc__)
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1, HOST)")
    parser.add_argument("--port", type=int, help="HTTP port (default 8000, PORT; 0 picks a free one)")
    parser.add_argument("--meters", type=int, help="simulated meters (default 10, SIMULATOR_METERS)")
    parser.add_argument("--interval", type=float, help="seconds between two readings of a meter (default 1)")
    parser.add_argument("--no-simulator", action="store_true", help="no simulated meters")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)")
    parser.add_argument("--summary-every", type=float, default=5.0, help="seconds between summary lines")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="keep the SQLite database in this directory across runs (DATA_DIR; default: fresh per run)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; return the exit code (0 after a clean stop)."""
    args = parse_args(argv)
    given = {"host": args.host, "port": args.port, "simulator_meters": args.meters, "simulator_interval": args.interval}
    overrides: dict[str, object] = {name: value for name, value in given.items() if value is not None}
    if "SIMULATOR_ENABLED" not in os.environ:
        overrides["simulator_enabled"] = not args.no_simulator
    fresh: str | None = None
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    elif "DATA_DIR" not in os.environ and "DATABASE_URL" not in os.environ:
        # A fixed directory mixed one run's readings into the next run's summary.
        fresh = tempfile.mkdtemp(prefix="meter-service-")  # mode 0700
        overrides["data_dir"] = Path(fresh)
    if "TRACING_EXPORTER" not in os.environ:
        # The service's default is console (MeterSettings), but console spans of every
        # request would bury the demo's summary: the demo records spans without exporting
        # them and says so in its banner ("Traces  none ... set TRACING_EXPORTER=...").
        overrides["tracing_exporter"] = "none"
    try:
        settings = MeterSettings(**overrides)  # type: ignore[arg-type]
    except ConfigurationError as exc:
        print(f"Invalid settings: {exc.message}", file=sys.stderr)
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)
        return 2
    setup_logging(settings.service_name, log_level=settings.log_level, json=settings.log_json)
    try:
        return asyncio.run(
            run_demo(
                settings, duration=args.duration, every=args.summary_every, out=sys.stdout, fresh_data=fresh is not None
            )
        )
    finally:
        shutdown_tracing()
        if fresh is not None:
            shutil.rmtree(fresh, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
