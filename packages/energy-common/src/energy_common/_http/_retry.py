"""Retry policy: which calls may be repeated, how long to wait, and Retry-After parsing."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from energy_common.exceptions import ConfigurationError

__all__ = ["IDEMPOTENT_METHODS", "RETRY_STATUSES", "RetryPolicy", "parse_retry_after"]

#: Methods that may be repeated without an idempotency key.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
#: Answers worth retrying: throttled, or a gateway/overload that may clear up.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

# Jitter is about spreading load, not secrecy; one module-level generator is enough.
_jitter = random.Random()  # noqa: S311 - not used for anything security related


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a :class:`~energy_common.http_client.ServiceClient` retries.

    Attributes:
        retries: Extra attempts after the first one (0 disables retries).
        backoff_base: Upper bound of the first wait, in seconds; doubles each attempt.
        backoff_max: Upper bound of any computed wait.
        max_retry_after: Longest ``Retry-After`` honoured; a longer one ends the retries.
    """

    retries: int = 2
    backoff_base: float = 0.1
    backoff_max: float = 2.0
    max_retry_after: float = 30.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ConfigurationError(f"retries must be zero or more, got {self.retries!r}.")
        for label in ("backoff_base", "backoff_max", "max_retry_after"):
            value = getattr(self, label)
            if not math.isfinite(value) or value < 0:
                raise ConfigurationError(f"{label} must be zero or a positive number of seconds, got {value!r}.")

    def backoff(self, attempt: int) -> float:
        """Return the wait before retry number ``attempt`` (0-based): exponential with full jitter."""
        ceiling = min(self.backoff_max, self.backoff_base * (2**attempt))
        return _jitter.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait, or None if absent/garbled.

    Accepts delta-seconds (``"3"``, ``"1.5"``) and HTTP dates; a date in the past gives 0.

    Example:
        >>> parse_retry_after("2")
        2.0
        >>> parse_retry_after("soon") is None
        True
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
