"""Health checks: a checker that runs them concurrently and built-in checks.

Any package adds its own check by implementing the :class:`HealthCheck` Protocol (no
import beyond the Protocol is needed). The core needs no extra: the database check
imports SQLAlchemy when it is built, and the names that need an extra are loaded on
first access from their own modules:

* ``HTTPHealthCheck`` from ``energy_common.health.http`` (extra ``http``),
* ``MemoryHealthCheck`` from ``energy_common.health.memory`` (extra ``system``),
* ``health_router`` from ``energy_common.health.router`` (extra ``web``).

Example:
    >>> from energy_common.health import HealthChecker, DatabaseHealthCheck, RedisHealthCheck
    >>> health_checker = HealthChecker("my-service")
    >>> health_checker.add_check(DatabaseHealthCheck(db_connection))  # doctest: +SKIP
    >>> health_checker.add_check(RedisHealthCheck(redis_client))  # doctest: +SKIP
    >>> result = await health_checker.run_all_checks()  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from energy_common.health._builtin import (
    CallableHealthCheck,
    DatabaseHealthCheck,
    DiskSpaceHealthCheck,
    RedisHealthCheck,
)
from energy_common.health._checker import HealthChecker
from energy_common.health._redact import redact, redact_url
from energy_common.health._types import CheckResult, HealthCheck, HealthCheckDegraded, HealthReport, HealthStatus

if TYPE_CHECKING:
    from energy_common.health.http import HTTPHealthCheck
    from energy_common.health.memory import MemoryHealthCheck
    from energy_common.health.router import health_router

__all__ = [
    "CallableHealthCheck",
    "CheckResult",
    "DatabaseHealthCheck",
    "DiskSpaceHealthCheck",
    "HTTPHealthCheck",
    "HealthCheck",
    "HealthCheckDegraded",
    "HealthChecker",
    "HealthReport",
    "HealthStatus",
    "MemoryHealthCheck",
    "RedisHealthCheck",
    "health_router",
    "redact",
    "redact_url",
]

_LAZY = {
    "HTTPHealthCheck": "energy_common.health.http",
    "MemoryHealthCheck": "energy_common.health.memory",
    "health_router": "energy_common.health.router",
}


def __getattr__(name: str) -> Any:
    """Load the names that need an extra on first access (their ImportError names the extra)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
