"""Counters of cache and rate-limit outcomes, and the throttled degradation warning."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

__all__ = ["CacheStats", "DegradationLog"]


@dataclass(slots=True)
class CacheStats:
    """Counters since the manager was created (read them for metrics).

    Attributes:
        hits: Reads that found a value.
        misses: Reads that found nothing (including reads degraded by a backend failure).
        errors: Backend failures seen (each also counted below when degraded).
        degraded_reads: Reads answered as misses because the backend was unreachable.
        dropped_writes: Writes dropped because the backend was unreachable.
        loads: Loader calls made by ``get_or_set``.
    """

    hits: int = 0
    misses: int = 0
    errors: int = 0
    degraded_reads: int = 0
    dropped_writes: int = 0
    loads: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counters as a plain dict."""
        return asdict(self)


class DegradationLog:
    """Logs a backend failure at WARNING at most once per ``interval`` seconds (DEBUG otherwise)."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval
        self._last = float("-inf")

    def warn(self, message: str, *args: object) -> None:
        """Log ``message`` (``%``-style ``args``), throttled at WARNING level."""
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._logger.warning(message, *args)
        else:
            self._logger.debug(message, *args)
