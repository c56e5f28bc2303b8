"""Multiprocess mode for pre-fork servers (gunicorn, ``uvicorn --workers N``).

prometheus-client switches to multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` is set
*before it is first imported*: every worker then writes its values to memory-mapped
files in that directory, and a scrape aggregates the files of all workers. These helpers
detect the mode, check the directory and build the aggregating registry.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from prometheus_client import CollectorRegistry, values
from prometheus_client import multiprocess as prom_multiprocess

from energy_monitoring._errors import MetricsError

__all__ = [
    "MULTIPROC_ENV",
    "check_multiprocess_setup",
    "mark_process_dead",
    "multiprocess_dir",
    "multiprocess_registry",
]

logger = logging.getLogger("energy_monitoring.metrics")

#: The environment variable that turns multiprocess mode on.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    """Return the multiprocess directory when ``PROMETHEUS_MULTIPROC_DIR`` is set, else None."""
    raw = os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower())
    return Path(raw) if raw else None


def check_multiprocess_setup() -> Path | None:
    """Check multiprocess mode: the directory exists and values go to it.

    Returns:
        The directory, or None when multiprocess mode is off.

    Raises:
        MetricsError: the directory is missing or not writable, or prometheus-client was
            imported before ``PROMETHEUS_MULTIPROC_DIR`` was set (values would stay in
            this process and never reach a scrape).
    """
    path = multiprocess_dir()
    if path is None:
        return None
    if not path.is_dir() or not os.access(path, os.W_OK):
        raise MetricsError(
            f"{MULTIPROC_ENV}={path} is not a writable directory; create it (empty) before the workers start.",
            {"path": str(path)},
        )
    if values.ValueClass is values.MutexValue:
        raise MetricsError(
            f"{MULTIPROC_ENV} was set after prometheus_client was imported, so this process keeps its values "
            "in memory; set it in the environment of the server process before it starts.",
            {"path": str(path)},
        )
    return path


def multiprocess_registry(path: Path | str | None = None) -> CollectorRegistry:
    """Return a fresh registry that aggregates the files of every worker in ``path``.

    Raises:
        MetricsError: no directory given and multiprocess mode is off.
    """
    directory = path if path is not None else multiprocess_dir()
    if directory is None:
        raise MetricsError(f"Multiprocess mode is off: set {MULTIPROC_ENV} or pass the directory.")
    registry = CollectorRegistry()
    prom_multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return registry


def mark_process_dead(pid: int, path: Path | str | None = None) -> None:
    """Drop the live-gauge files of a dead worker (call it from gunicorn's ``child_exit``).

    Counters and histograms of the dead worker stay (they keep counting in the totals);
    only ``live*`` gauge values disappear. Never raises: failures are logged.
    """
    directory = path if path is not None else multiprocess_dir()
    if directory is None:
        return
    try:
        prom_multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
    except OSError:
        logger.warning("Could not remove the live gauge files of worker %d in %s", pid, directory, exc_info=True)
