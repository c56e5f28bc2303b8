"""MemoryHealthCheck: system memory pressure through psutil (extra ``system``).

Import it from here: ``from energy_common.health.memory import MemoryHealthCheck``
(``energy_common.health`` re-exports it lazily, so the package imports without psutil).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from energy_common._extras import missing_extra
from energy_common.exceptions import ConfigurationError
from energy_common.health._types import HealthCheckDegraded

try:
    import psutil
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing_extra("energy-common", "system", exc) from exc

__all__ = ["MemoryHealthCheck"]


class MemoryHealthCheck:
    """Fail when the host's memory use crosses a threshold; degrade a little before.

    Args:
        max_used_ratio: Share of memory in use above which the check fails.
        degraded_used_ratio: Share above which it is degraded.
        name: Name in the report.
        critical: Whether memory pressure makes the service unusable.
        timeout: Seconds allowed; None uses the checker's default.

    Raises:
        ConfigurationError: The ratios are not ``0 < degraded <= max <= 1``.

    Example:
        >>> from energy_common.health.memory import MemoryHealthCheck
        >>> check = MemoryHealthCheck(max_used_ratio=0.95)
    """

    def __init__(
        self,
        *,
        max_used_ratio: float = 0.95,
        degraded_used_ratio: float = 0.90,
        name: str = "memory",
        critical: bool = False,
        timeout: float | None = None,
    ) -> None:
        if not 0 < degraded_used_ratio <= max_used_ratio <= 1:
            raise ConfigurationError("MemoryHealthCheck needs 0 < degraded_used_ratio <= max_used_ratio <= 1.")
        self.max_used_ratio = max_used_ratio
        self.degraded_used_ratio = degraded_used_ratio
        self.name = name
        self.critical = critical
        self.timeout = timeout

    async def check(self) -> Mapping[str, Any]:
        """Read system and process memory and judge the share in use."""
        memory, rss = await asyncio.to_thread(_sample)
        used = 1 - memory.available / memory.total if memory.total else 1.0
        details = {
            "total_bytes": memory.total,
            "available_bytes": memory.available,
            "used_ratio": round(used, 4),
            "process_rss_bytes": rss,
        }
        if used > self.max_used_ratio:
            raise MemoryError(f"{used:.1%} of memory in use (limit {self.max_used_ratio:.0%}).")
        if used > self.degraded_used_ratio:
            raise HealthCheckDegraded(f"{used:.1%} of memory in use.", details)
        return details


def _sample() -> tuple[Any, int]:
    return psutil.virtual_memory(), int(psutil.Process().memory_info().rss)
