"""HealthChecker: run every registered check concurrently, each under its own timeout."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from energy_common.exceptions import ConfigurationError
from energy_common.health._redact import describe_error, redact
from energy_common.health._types import CheckResult, HealthCheck, HealthCheckDegraded, HealthReport, HealthStatus

__all__ = ["HealthChecker"]

# Extra time a check gets to honour cancellation after its timeout before it is abandoned.
_CANCEL_GRACE = 1.0


def _validate_timeout(value: float | None, what: str) -> None:
    if value is not None and (not isinstance(value, int | float) or not math.isfinite(value) or value <= 0):
        raise ConfigurationError(f"{what} must be a positive number of seconds, got {value!r}.")


class HealthChecker:
    """Run a service's health checks concurrently and aggregate them into a report.

    Args:
        service: The service name shown in every report.
        default_timeout: Seconds allowed for a check whose ``timeout`` is None.
        cache_ttl: Serve the last report for this many seconds instead of probing again
            (``0`` disables the cache). Keeps a busy probe endpoint off the database.
        clock: Monotonic clock used for the cache (tests pass a fake one).

    Raises:
        ConfigurationError: A timeout or the TTL is not a positive number.

    Example:
        >>> from energy_common.health import HealthChecker, DatabaseHealthCheck, RedisHealthCheck
        >>> checker = HealthChecker("my-service")  # doctest: +SKIP
        >>> checker.add_check(DatabaseHealthCheck(engine))  # doctest: +SKIP
        >>> checker.add_check(RedisHealthCheck(redis_client))  # doctest: +SKIP
        >>> report = await checker.run_all_checks()  # doctest: +SKIP
        >>> report.status, report.to_dict()  # doctest: +SKIP
    """

    def __init__(
        self,
        service: str,
        *,
        default_timeout: float = 5.0,
        cache_ttl: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not service:
            raise ConfigurationError("HealthChecker needs a non-empty service name.")
        _validate_timeout(default_timeout, "default_timeout")
        if not isinstance(cache_ttl, int | float) or not math.isfinite(cache_ttl) or cache_ttl < 0:
            raise ConfigurationError(f"cache_ttl must be zero or a positive number of seconds, got {cache_ttl!r}.")
        self.service = service
        self.default_timeout = float(default_timeout)
        self.cache_ttl = float(cache_ttl)
        self._clock = clock
        self._checks: dict[str, HealthCheck] = {}
        self._cache: dict[bool, tuple[float, HealthReport]] = {}
        # Checks that ignored cancellation: kept referenced until they finish.
        self._stragglers: set[asyncio.Task[CheckResult]] = set()

    @property
    def checks(self) -> tuple[HealthCheck, ...]:
        """The registered checks, in the order they were added."""
        return tuple(self._checks.values())

    def add_check(self, check: HealthCheck) -> HealthCheck:
        """Register a check and return it.

        Raises:
            ConfigurationError: ``check`` does not implement :class:`HealthCheck`, its
                name is taken, or its timeout is not positive.
        """
        if not isinstance(check, HealthCheck):
            raise ConfigurationError(
                f"{type(check).__name__} is not a health check: it needs name, critical, timeout and async check()."
            )
        if not check.name or check.name in self._checks:
            raise ConfigurationError(
                f"A health check needs a unique, non-empty name; {check.name!r} is taken or empty."
            )
        _validate_timeout(check.timeout, f"timeout of health check {check.name!r}")
        self._checks[check.name] = check
        self._cache.clear()
        return check

    def remove_check(self, name: str) -> None:
        """Unregister the check called ``name`` (no error if there is none)."""
        self._checks.pop(name, None)
        self._cache.clear()

    @property
    def last_report(self) -> HealthReport | None:
        """The most recent full report, if any run finished."""
        entry = self._cache.get(False)
        return entry[1] if entry else None

    async def run_all_checks(self, *, critical_only: bool = False, use_cache: bool = True) -> HealthReport:
        """Run the checks concurrently and return the aggregated report.

        Args:
            critical_only: Run only the critical checks (what readiness needs).
            use_cache: Allow a report younger than ``cache_ttl`` to be returned.

        Returns:
            The report; a check that raised or timed out is ``unhealthy`` in it, never
            an exception here.
        """
        now = self._clock()
        cached = self._cache.get(critical_only)
        if use_cache and self.cache_ttl > 0 and cached is not None and now - cached[0] < self.cache_ttl:
            return dataclasses.replace(cached[1], cached=True)
        checks = [c for c in self._checks.values() if c.critical or not critical_only]
        started = time.perf_counter()
        results = await self._run(checks)
        report = HealthReport(
            service=self.service,
            status=self._aggregate(results),
            timestamp=datetime.now(UTC),
            duration_ms=(time.perf_counter() - started) * 1000,
            checks=tuple(results),
        )
        self._cache[critical_only] = (self._clock(), report)
        return report

    async def _run(self, checks: list[HealthCheck]) -> list[CheckResult]:
        if not checks:
            return []
        tasks = [asyncio.create_task(self._run_one(check), name=f"health-check:{check.name}") for check in checks]
        bound = max(self._timeout_of(check) for check in checks) + _CANCEL_GRACE
        _, pending = await asyncio.wait(tasks, timeout=bound)
        results: list[CheckResult] = []
        for check, task in zip(checks, tasks, strict=True):
            if task in pending:
                # The check swallowed its cancellation: report it and let it finish on its own.
                task.cancel()
                self._stragglers.add(task)
                task.add_done_callback(self._stragglers.discard)
                results.append(
                    CheckResult(
                        check.name,
                        HealthStatus.UNHEALTHY,
                        check.critical,
                        bound * 1000,
                        error=f"Check did not stop after its {self._timeout_of(check):g} s timeout.",
                    )
                )
            else:
                results.append(task.result())
        return results

    def _timeout_of(self, check: HealthCheck) -> float:
        return check.timeout if check.timeout is not None else self.default_timeout

    async def _run_one(self, check: HealthCheck) -> CheckResult:
        timeout = self._timeout_of(check)
        started = time.perf_counter()
        status, error, details = HealthStatus.HEALTHY, None, {}
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                returned = await check.check()
            if isinstance(returned, Mapping):
                details = dict(returned)
        except HealthCheckDegraded as exc:
            status, error, details = HealthStatus.DEGRADED, redact(exc.message), dict(exc.details)
        except TimeoutError as exc:
            status = HealthStatus.UNHEALTHY
            error = f"Timed out after {timeout:g} s." if scope.expired() else describe_error(exc)
        except Exception as exc:  # noqa: BLE001 - any failure of a dependency probe is a result, not a crash
            status, error = HealthStatus.UNHEALTHY, describe_error(exc)
        duration_ms = (time.perf_counter() - started) * 1000
        return CheckResult(check.name, status, check.critical, duration_ms, error=error, details=details)

    @staticmethod
    def _aggregate(results: list[CheckResult]) -> HealthStatus:
        if any(r.critical and r.status is HealthStatus.UNHEALTHY for r in results):
            return HealthStatus.UNHEALTHY
        if any(r.status is not HealthStatus.HEALTHY for r in results):
            return HealthStatus.DEGRADED
        return HealthStatus.HEALTHY
