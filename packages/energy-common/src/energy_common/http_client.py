"""Resilient service-to-service HTTP client (extra ``http``).

:class:`ServiceClient` calls another platform service with an overall deadline per
call, retries with exponential backoff and full jitter, a circuit breaker, context
propagation, bearer tokens, safe redirects and a response size limit. Errors are
mapped onto the platform's exception tree::

    400, 422        ValidationError
    401             AuthenticationError
    403             AuthorizationError
    404             ResourceNotFoundError
    409             ConflictError
    429             RateLimitExceededError (retry_after)
    other >= 400    ExternalServiceError
    timeout, connection failure, open circuit
                    ServiceUnavailableError

Example:
    >>> from energy_common.http_client import ServiceClient
    >>> async with ServiceClient("http://auth-service:8005") as client:  # doctest: +SKIP
    ...     user_data = await client.get("/users/123")
    ...     result = await client.post("/users", {"name": "John", "email": "john@example.com"})
"""

from __future__ import annotations

from energy_common._extras import missing_extra

try:
    import httpx  # noqa: F401 - fail early with the name of the extra
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing_extra("energy-common", "http", exc) from exc

from energy_common._http._breaker import CircuitBreaker, CircuitState
from energy_common._http._client import ServiceClient, TokenProvider
from energy_common._http._health import CircuitBreakerHealthCheck
from energy_common._http._redirect import SENSITIVE_HEADER
from energy_common._http._retry import IDEMPOTENT_METHODS, RETRY_STATUSES, RetryPolicy, parse_retry_after
from energy_common._http._verbs import CallOptions

__all__ = [
    "IDEMPOTENT_METHODS",
    "RETRY_STATUSES",
    "SENSITIVE_HEADER",
    "CallOptions",
    "CircuitBreaker",
    "CircuitBreakerHealthCheck",
    "CircuitState",
    "RetryPolicy",
    "ServiceClient",
    "TokenProvider",
    "parse_retry_after",
]
