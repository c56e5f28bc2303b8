"""The health check contract (a Protocol) and the report a checker returns."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

from energy_common.exceptions import EnergyError

__all__ = ["CheckResult", "HealthCheck", "HealthCheckDegraded", "HealthReport", "HealthStatus"]


class HealthStatus(enum.StrEnum):
    """Status of one check or of a whole service."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


@runtime_checkable
class HealthCheck(Protocol):
    """What a health check looks like; implement it without importing anything else.

    A check succeeds by returning (optionally with a JSON-ready mapping of details),
    fails by raising any exception, and reports a partial failure by raising
    :class:`HealthCheckDegraded`. The checker applies the timeout; a check only needs to
    be cancellable (plain ``await`` points are).

    Attributes:
        name: Unique name in the report, e.g. ``"database"``.
        critical: Whether the service is unusable when this check fails (``unhealthy``
            and not ready) or merely ``degraded``.
        timeout: Seconds allowed for :meth:`check`; ``None`` uses the checker's default.

    Example:
        >>> class QueueCheck:
        ...     name = "queue"
        ...     critical = False
        ...     timeout = 1.0
        ...
        ...     async def check(self) -> dict[str, int]:
        ...         return {"depth": 3}
        >>> isinstance(QueueCheck(), HealthCheck)
        True
    """

    name: str
    critical: bool
    timeout: float | None

    async def check(self) -> Mapping[str, Any] | None:
        """Probe the dependency; raise on failure, optionally return details."""
        ...


class HealthCheckDegraded(EnergyError):  # noqa: N818 - reads as a state ("the check is degraded"), not a bug
    """Raised by a check whose dependency works, but not fully (e.g. a replica lagging).

    The check's result becomes ``degraded`` and so does the service, even for a critical
    check: a degraded service is still ready.

    Args:
        message: What is degraded and why (no secrets: it is shown in the report).
        details: JSON-ready details shown with the result.
    """

    error_code: ClassVar[str] = "HEALTH_DEGRADED"
    status_code: ClassVar[int] = 200
    default_message: ClassVar[str] = "The dependency is degraded."


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check.

    Attributes:
        name: The check's name.
        status: ``healthy``, ``degraded`` or ``unhealthy``.
        critical: Whether the check is critical.
        duration_ms: Time the check took (or was allowed, on timeout), in milliseconds.
        error: What went wrong, with secrets stripped; None when healthy.
        details: Details returned by the check (or carried by the degraded error).
    """

    name: str
    status: HealthStatus
    critical: bool
    duration_ms: float
    error: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form of this result."""
        return {
            "name": self.name,
            "status": self.status.value,
            "critical": self.critical,
            "duration_ms": round(self.duration_ms, 3),
            "error": self.error,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The outcome of a run of checks for one service.

    Attributes:
        service: The service name given to the checker.
        status: ``unhealthy`` if a critical check failed, else ``degraded`` if any check
            failed or is degraded, else ``healthy``.
        timestamp: When the run finished (UTC).
        duration_ms: Wall time of the whole run.
        checks: One result per check, in the order they were added.
        cached: Whether this report was served from the checker's cache.
    """

    service: str
    status: HealthStatus
    timestamp: datetime
    duration_ms: float
    checks: tuple[CheckResult, ...]
    cached: bool = False

    @property
    def ready(self) -> bool:
        """Whether the service can take traffic (no critical check is unhealthy)."""
        return self.status is not HealthStatus.UNHEALTHY

    def to_dict(self, *, details: bool = True) -> dict[str, Any]:
        """Return the JSON-ready form; ``details=False`` keeps only the statuses."""
        body: dict[str, Any] = {
            "service": self.service,
            "status": self.status.value,
            "timestamp": self.timestamp.isoformat(),
            "duration_ms": round(self.duration_ms, 3),
            "cached": self.cached,
        }
        if details:
            body["checks"] = {result.name: result.to_dict() for result in self.checks}
        else:
            body["checks"] = {result.name: {"status": result.status.value} for result in self.checks}
        return body
