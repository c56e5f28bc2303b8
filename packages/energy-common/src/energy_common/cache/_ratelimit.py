"""``RateLimitCache``: an exact sliding window, one atomic round trip per check."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from energy_common.cache._backend import CacheBackend
from energy_common.cache._common import CacheKey, as_backend
from energy_common.cache._keys import make_key
from energy_common.cache._stats import DegradationLog
from energy_common.exceptions import CacheConnectionError, ConfigurationError, ServiceUnavailableError

__all__ = ["FailurePolicy", "RateLimitCache", "RateLimitResult", "RateLimitStats"]

logger = logging.getLogger("energy_common.cache.ratelimit")

# The Redis script packs its reply into one exact double (see _scripts.py).
_MAX_PACKED = 2**53


class FailurePolicy(StrEnum):
    """What a limit does when its backend is unreachable.

    ``CLOSED`` denies with 503 (``ServiceUnavailableError``): the default, and the right
    choice for login, token and device-command endpoints, where an unlimited burst is
    worse than an outage. ``OPEN`` allows the request, logs and counts it: for read
    endpoints where availability matters more than the limit.
    """

    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    """Outcome of one rate-limit check.

    Attributes:
        allowed: Whether the request may proceed (it was counted).
        limit: Requests allowed per window.
        remaining: Requests left in the current window.
        reset_after: Seconds until the oldest counted request leaves the window.
        retry_after: Seconds to wait before retrying (0 when allowed).
        window: Window length in seconds.
        degraded: True when the backend was down and the policy let the request through.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float
    window: float
    degraded: bool = False

    def headers(self) -> dict[str, str]:
        """The ``RateLimit-*`` response headers (IETF draft), plus ``Retry-After`` when denied."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset_after)),
            "RateLimit-Policy": f"{self.limit};w={math.ceil(self.window)}",
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


@dataclass(slots=True)
class RateLimitStats:
    """Counters: checks allowed, denied, and let through or refused because the backend was down."""

    allowed: int = 0
    denied: int = 0
    failed_open: int = 0
    failed_closed: int = 0


class RateLimitCache:
    """Sliding-window rate limiter on Redis (one Lua script, EVALSHA) or the memory backend.

    Exact: under any concurrency, no more than ``limit`` requests are allowed in any
    window of ``window_seconds``. Each check is one round trip.

    Args:
        client: ``redis.asyncio.Redis`` / ``RedisCluster`` or a :class:`CacheBackend`.
        key_prefix: Namespace of the limiter's keys.
        failure_policy: Default behaviour when the backend is unreachable
            (:class:`FailurePolicy`; ``CLOSED`` unless said otherwise).

    Example:
        >>> limiter = RateLimitCache(redis_client)  # doctest: +SKIP
        >>> result = await limiter.check_rate_limit("user:123", limit=100, window_seconds=3600)  # doctest: +SKIP
        >>> result.allowed, result.remaining  # doctest: +SKIP
        (True, 99)
    """

    def __init__(
        self,
        client: Redis | RedisCluster | CacheBackend,
        *,
        key_prefix: str = "ratelimit",
        failure_policy: FailurePolicy | str = FailurePolicy.CLOSED,
    ) -> None:
        self.backend: CacheBackend = as_backend(client)
        self._prefix = key_prefix if not key_prefix or key_prefix.endswith(":") else f"{key_prefix}:"
        self.failure_policy = FailurePolicy(failure_policy)
        self.stats = RateLimitStats()
        self._degraded = DegradationLog(logger)

    def full_key(self, key: CacheKey) -> str:
        """Return the backend key for ``key`` (tuples are escaped part by part)."""
        if isinstance(key, tuple):
            return self._prefix + make_key(*key)
        if not isinstance(key, str) or not key:
            raise ConfigurationError("A rate-limit key must be a non-empty string or a tuple of parts.")
        return self._prefix + key

    async def check_rate_limit(
        self,
        key: CacheKey,
        *,
        limit: int,
        window_seconds: float,
        failure_policy: FailurePolicy | str | None = None,
    ) -> RateLimitResult:
        """Count one request for ``key`` and tell whether it is allowed.

        Args:
            key: Who is limited (``("user", user_id)`` escapes the parts).
            limit: Requests allowed per window (>= 1).
            window_seconds: Window length (> 0).
            failure_policy: Override of the default policy for this limit.

        Raises:
            ConfigurationError: ``limit`` or ``window_seconds`` is out of range.
            ServiceUnavailableError: The backend is down and the policy is ``CLOSED``.
        """
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ConfigurationError("limit must be an integer >= 1.")
        if not window_seconds > 0:
            raise ConfigurationError("window_seconds must be positive.")
        if window_seconds * 1000 * (limit + 1) * 2 >= _MAX_PACKED:
            raise ConfigurationError("limit x window_seconds is too large (keep limit * window_ms below 2**51).")
        full = self.full_key(key)
        try:
            outcome = await self.backend.sliding_window(full, limit, float(window_seconds))
        except CacheConnectionError as exc:
            return self._unavailable(exc, limit, float(window_seconds), failure_policy)
        if outcome.allowed:
            self.stats.allowed += 1
        else:
            self.stats.denied += 1
        return RateLimitResult(
            allowed=outcome.allowed,
            limit=limit,
            remaining=max(limit - outcome.used, 0),
            reset_after=outcome.reset_after,
            retry_after=0.0 if outcome.allowed else outcome.reset_after,
            window=float(window_seconds),
        )

    def _unavailable(
        self, exc: CacheConnectionError, limit: int, window: float, policy: FailurePolicy | str | None
    ) -> RateLimitResult:
        effective = FailurePolicy(policy) if policy is not None else self.failure_policy
        if effective is FailurePolicy.OPEN:
            self.stats.failed_open += 1
            self._degraded.warn("Rate limiting degraded (fail open, request allowed): %s", exc.message)
            return RateLimitResult(
                allowed=True,
                limit=limit,
                remaining=limit,
                reset_after=0.0,
                retry_after=0.0,
                window=window,
                degraded=True,
            )
        self.stats.failed_closed += 1
        self._degraded.warn("Rate limiting unavailable (fail closed, request refused): %s", exc.message)
        error = ServiceUnavailableError(
            "Rate limiting is temporarily unavailable, so the request was refused; retry shortly.",
            {"reason": "rate_limit_backend_unavailable"},
        )
        error.headers = {"Retry-After": "1"}
        raise error from exc

    async def ping(self) -> bool:
        """Ping the backend (for ``energy_common.health.RedisHealthCheck``).

        Raises:
            CacheConnectionError: The backend is unreachable.
        """
        await self.backend.ping()
        return True

    async def health_check(self) -> dict[str, Any]:
        """Ping the backend and report its name and counters.

        Raises:
            CacheConnectionError: The backend is unreachable.
        """
        await self.backend.ping()
        return {
            "backend": self.backend.name,
            "allowed": self.stats.allowed,
            "denied": self.stats.denied,
            "failed_open": self.stats.failed_open,
            "failed_closed": self.stats.failed_closed,
        }
