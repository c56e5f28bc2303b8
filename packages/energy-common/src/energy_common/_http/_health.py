"""Health check adapter: a client's circuit breaker as a :class:`~energy_common.health.HealthCheck`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from energy_common._http._breaker import CircuitBreaker, CircuitState
from energy_common.exceptions import ServiceUnavailableError
from energy_common.health import HealthCheckDegraded

__all__ = ["CircuitBreakerHealthCheck"]


class CircuitBreakerHealthCheck:
    """Report a peer by the state of its circuit breaker, without calling it.

    Closed is healthy, half-open is degraded (a trial call is probing the peer), open is
    unhealthy. Cheap enough for every probe.

    Args:
        breaker: The breaker, or anything with a ``breaker`` attribute (a ServiceClient).
        name: Name in the report; defaults to ``circuit:<breaker name>``.
        critical: Whether the service is unusable while the peer's circuit is open.
        timeout: Seconds allowed; None uses the checker's default.

    Example:
        >>> checker.add_check(CircuitBreakerHealthCheck(auth_client))  # doctest: +SKIP
    """

    def __init__(
        self, breaker: Any, *, name: str | None = None, critical: bool = False, timeout: float | None = None
    ) -> None:
        self._breaker: CircuitBreaker = getattr(breaker, "breaker", breaker)
        if not isinstance(self._breaker, CircuitBreaker):
            raise TypeError(
                f"CircuitBreakerHealthCheck needs a CircuitBreaker or a ServiceClient, got {type(breaker).__name__}."
            )
        self.name = name or f"circuit:{self._breaker.name}"
        self.critical = critical
        self.timeout = timeout

    async def check(self) -> Mapping[str, Any]:
        """Read the breaker's state."""
        snapshot = self._breaker.snapshot()
        state = self._breaker.state
        if state is CircuitState.OPEN:
            raise ServiceUnavailableError(
                f"The circuit to {self._breaker.name} is open; retry in {snapshot['retry_after']:g} s.", snapshot
            )
        if state is CircuitState.HALF_OPEN:
            raise HealthCheckDegraded(f"The circuit to {self._breaker.name} is half-open (trial call).", snapshot)
        return snapshot
