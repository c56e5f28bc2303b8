"""A circuit breaker: closed -> open after N failures in a window -> half-open trial -> closed."""

from __future__ import annotations

import enum
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from energy_common.exceptions import ConfigurationError

__all__ = ["CircuitBreaker", "CircuitState"]


class CircuitState(enum.StrEnum):
    """State of a :class:`CircuitBreaker`."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Stop calling a peer that keeps failing, and try it again after a pause.

    ``failure_threshold`` failures within ``failure_window`` seconds open the circuit;
    while open, :meth:`allow` refuses every call for ``recovery_time`` seconds. Then the
    circuit is half-open: up to ``half_open_max_calls`` trial calls go through; a
    success closes it, a failure opens it again. Not thread-safe; safe to share between
    tasks of one event loop (it never awaits).

    Args:
        name: Shown in errors and health details, e.g. the peer's host.
        failure_threshold: Failures that open the circuit.
        failure_window: Seconds over which failures are counted.
        recovery_time: Seconds the circuit stays open before a trial.
        half_open_max_calls: Concurrent trial calls allowed while half-open.
        clock: Monotonic clock (tests pass a fake one).

    Raises:
        ConfigurationError: A threshold or duration is not positive.

    Example:
        >>> breaker = CircuitBreaker("auth-service", failure_threshold=2)
        >>> breaker.record_failure()
        >>> breaker.record_failure()
        >>> breaker.state, breaker.allow()
        (<CircuitState.OPEN: 'open'>, False)
    """

    def __init__(
        self,
        name: str = "default",
        *,
        failure_threshold: int = 5,
        failure_window: float = 30.0,
        recovery_time: float = 15.0,
        half_open_max_calls: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or half_open_max_calls < 1:
            raise ConfigurationError("failure_threshold and half_open_max_calls must be at least 1.")
        for label, value in (("failure_window", failure_window), ("recovery_time", recovery_time)):
            if not math.isfinite(value) or value <= 0:
                raise ConfigurationError(f"{label} must be a positive number of seconds, got {value!r}.")
        self.name = name
        self.failure_threshold = failure_threshold
        self.failure_window = failure_window
        self.recovery_time = recovery_time
        self.half_open_max_calls = half_open_max_calls
        self._clock = clock
        self._failures: deque[float] = deque()
        self._state = CircuitState.CLOSED
        self._opened_at = 0.0
        self._trials = 0
        self.times_opened = 0

    @property
    def state(self) -> CircuitState:
        """The current state (an open circuit turns half-open once ``recovery_time`` passed)."""
        if self._state is CircuitState.OPEN and self._clock() - self._opened_at >= self.recovery_time:
            self._state = CircuitState.HALF_OPEN
            self._trials = 0
        return self._state

    def retry_after(self) -> float:
        """Seconds until an open circuit lets a trial through (0 unless open)."""
        if self.state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self.recovery_time - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """Ask to make a call; True means go ahead and report the outcome afterwards."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.HALF_OPEN and self._trials < self.half_open_max_calls:
            self._trials += 1
            return True
        return False

    def record_success(self) -> None:
        """Report a call that reached a healthy peer (closes a half-open circuit)."""
        if self._state is not CircuitState.CLOSED:
            self._state = CircuitState.CLOSED
            self._trials = 0
        self._failures.clear()

    def record_failure(self) -> None:
        """Report a call that failed because of the peer (connection error, timeout, 5xx)."""
        now = self._clock()
        if self.state is CircuitState.HALF_OPEN:
            self._open(now)
            return
        if self._state is CircuitState.OPEN:
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.failure_window:
            self._failures.popleft()
        if len(self._failures) >= self.failure_threshold:
            self._open(now)

    def release(self) -> None:
        """Give back a trial slot of a call that ended without a verdict (e.g. cancelled)."""
        if self._state is CircuitState.HALF_OPEN and self._trials > 0:
            self._trials -= 1

    def reset(self) -> None:
        """Close the circuit and forget past failures."""
        self._state = CircuitState.CLOSED
        self._failures.clear()
        self._trials = 0

    def snapshot(self) -> dict[str, Any]:
        """Return the state for health details and metrics."""
        state = self.state
        return {
            "name": self.name,
            "state": state.value,
            "recent_failures": len(self._failures),
            "failure_threshold": self.failure_threshold,
            "times_opened": self.times_opened,
            "retry_after": round(self.retry_after(), 3),
        }

    def _open(self, now: float) -> None:
        self._state = CircuitState.OPEN
        self._opened_at = now
        self._trials = 0
        self._failures.clear()
        self.times_opened += 1
