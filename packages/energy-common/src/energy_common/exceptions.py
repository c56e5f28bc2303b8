"""The platform's exception tree: one root, a stable ``error_code`` and an HTTP status.

Every error raised by the energy libraries derives from :class:`EnergyError`, so a
service can catch the whole family with one ``except`` and the web layer can turn any
of them into the standard error envelope without a lookup table::

    EnergyError                         500  INTERNAL_ERROR
    ├── ValidationError                 400  VALIDATION_ERROR
    │   └── OutOfRangeError             422  VALUE_OUT_OF_RANGE
    ├── AuthenticationError             401  AUTHENTICATION_ERROR
    ├── AuthorizationError              403  AUTHORIZATION_ERROR
    ├── ResourceNotFoundError           404  RESOURCE_NOT_FOUND
    ├── ConflictError                   409  CONFLICT
    ├── PayloadTooLargeError            413  PAYLOAD_TOO_LARGE
    ├── RateLimitExceededError          429  RATE_LIMIT_EXCEEDED
    ├── ConfigurationError              500  CONFIGURATION_ERROR
    ├── ExternalServiceError            502  EXTERNAL_SERVICE_ERROR
    ├── ServiceUnavailableError         503  SERVICE_UNAVAILABLE
    ├── DatabaseError                   500  DATABASE_ERROR
    │   └── DatabaseConnectionError     503  DATABASE_UNAVAILABLE
    ├── CacheError                      500  CACHE_ERROR
    │   └── CacheConnectionError        503  CACHE_UNAVAILABLE
    └── MessagingError                  502  MESSAGING_ERROR
        └── MessagingConnectionError    503  MESSAGING_UNAVAILABLE

Subclasses set ``error_code`` and ``status_code`` as class attributes; sibling
distributions (``energy_auth``, ``energy_messaging``) extend the tree below the
umbrella of their failure domain.

Example:
    >>> from energy_common.exceptions import ValidationError
    >>> err = ValidationError("Invalid email format", {"field": "email"})
    >>> err.error_code, err.status_code
    ('VALIDATION_ERROR', 400)
    >>> err.to_dict()["details"]
    {'field': 'email'}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "AuthenticationError",
    "AuthorizationError",
    "CacheConnectionError",
    "CacheError",
    "ConfigurationError",
    "ConflictError",
    "DatabaseConnectionError",
    "DatabaseError",
    "EnergyError",
    "ExternalServiceError",
    "MessagingConnectionError",
    "MessagingError",
    "OutOfRangeError",
    "PayloadTooLargeError",
    "RateLimitExceededError",
    "ResourceNotFoundError",
    "ServiceUnavailableError",
    "ValidationError",
]


class EnergyError(Exception):
    """Root of every error raised by the energy libraries.

    Args:
        message: What happened and, where possible, what to do next. Defaults to the
            class's ``default_message``.
        details: JSON-ready context for the client (field names, ids, limits). Never
            put secrets here: it is sent in HTTP responses.

    Attributes:
        error_code: Stable, machine-readable code (class attribute).
        status_code: HTTP status the web layer answers with (class attribute).
        headers: Extra HTTP response headers the web layer sends with the error
            (e.g. ``WWW-Authenticate`` for 401, ``RateLimit-*`` for 429). Empty by
            default; set it after construction.
    """

    error_code: ClassVar[str] = "INTERNAL_ERROR"
    status_code: ClassVar[int] = 500
    default_message: ClassVar[str] = "An internal error occurred."

    def __init__(self, message: str | None = None, details: Mapping[str, Any] | None = None) -> None:
        self.message: str = message if message is not None else self.default_message
        self.details: dict[str, Any] = dict(details) if details else {}
        self.headers: dict[str, str] = {}
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready error body: ``error_code``, ``message`` and ``details``."""
        return {"error_code": self.error_code, "message": self.message, "details": dict(self.details)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, details={self.details!r})"


class ValidationError(EnergyError):
    """The input was rejected: fix the request named in ``details`` and send it again."""

    error_code = "VALIDATION_ERROR"
    status_code = 400
    default_message = "The request is invalid."


class OutOfRangeError(ValidationError):
    """A number or date is outside what can be stored or compared (page past int64, year 9999 + offset).

    Answered 422 like FastAPI's own request validation; ``details.field`` names the
    parameter to fix.
    """

    error_code = "VALUE_OUT_OF_RANGE"
    status_code = 422
    default_message = "A value is out of the supported range."


class AuthenticationError(EnergyError):
    """No valid credentials were presented: authenticate and retry."""

    error_code = "AUTHENTICATION_ERROR"
    status_code = 401
    default_message = "Authentication is required."


class AuthorizationError(EnergyError):
    """The caller is authenticated but lacks the permission or role the action needs."""

    error_code = "AUTHORIZATION_ERROR"
    status_code = 403
    default_message = "You do not have permission to perform this action."


class ResourceNotFoundError(EnergyError):
    """A named resource does not exist.

    Args:
        resource: The kind of resource, e.g. ``"User"``.
        resource_id: Its identifier; ``None`` when the lookup was not by id.
        details: Extra context merged into ``details``.

    Example:
        >>> str(ResourceNotFoundError("User", 123))
        "User '123' was not found."
    """

    error_code = "RESOURCE_NOT_FOUND"
    status_code = 404
    default_message = "The resource was not found."

    def __init__(
        self,
        resource: str = "Resource",
        resource_id: object = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.resource = resource
        self.resource_id = resource_id
        message = f"{resource} was not found." if resource_id is None else f"{resource} '{resource_id}' was not found."
        merged: dict[str, Any] = {"resource": resource}
        if resource_id is not None:
            merged["resource_id"] = str(resource_id)
        merged.update(details or {})
        super().__init__(message, merged)


class ConflictError(EnergyError):
    """The request conflicts with the current state (duplicate key, stale version)."""

    error_code = "CONFLICT"
    status_code = 409
    default_message = "The request conflicts with the current state of the resource."


class PayloadTooLargeError(EnergyError):
    """The request body is larger than the service accepts."""

    error_code = "PAYLOAD_TOO_LARGE"
    status_code = 413
    default_message = "The request body is too large."


class RateLimitExceededError(EnergyError):
    """Too many requests: wait ``retry_after`` seconds before trying again.

    Args:
        message: Optional message; a default names the wait.
        details: Extra context.
        retry_after: Seconds until a request may succeed (sent as ``Retry-After``).
    """

    error_code = "RATE_LIMIT_EXCEEDED"
    status_code = 429
    default_message = "Rate limit exceeded."

    def __init__(
        self,
        message: str | None = None,
        details: Mapping[str, Any] | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        if message is None and retry_after is not None:
            message = f"Rate limit exceeded; retry after {retry_after:g} seconds."
        merged = dict(details or {})
        if retry_after is not None:
            merged.setdefault("retry_after", retry_after)
        super().__init__(message, merged)


class ConfigurationError(EnergyError):
    """The service is misconfigured; the message names the setting to fix."""

    error_code = "CONFIGURATION_ERROR"
    status_code = 500
    default_message = "The service is misconfigured."


class ExternalServiceError(EnergyError):
    """Another service answered with an error we cannot hide from the caller."""

    error_code = "EXTERNAL_SERVICE_ERROR"
    status_code = 502
    default_message = "An upstream service failed."


class ServiceUnavailableError(EnergyError):
    """A dependency is unreachable or overloaded; retry later."""

    error_code = "SERVICE_UNAVAILABLE"
    status_code = 503
    default_message = "The service is temporarily unavailable."


class DatabaseError(EnergyError):
    """Umbrella for database failures (statement errors, integrity, connectivity)."""

    error_code = "DATABASE_ERROR"
    status_code = 500
    default_message = "A database error occurred."


class DatabaseConnectionError(DatabaseError):
    """The database could not be reached or dropped the connection; retry later."""

    error_code = "DATABASE_UNAVAILABLE"
    status_code = 503
    default_message = "The database is unavailable."


class CacheError(EnergyError):
    """Umbrella for cache and rate-limit backend failures."""

    error_code = "CACHE_ERROR"
    status_code = 500
    default_message = "A cache error occurred."


class CacheConnectionError(CacheError):
    """The cache backend (Redis) could not be reached."""

    error_code = "CACHE_UNAVAILABLE"
    status_code = 503
    default_message = "The cache is unavailable."


class MessagingError(EnergyError):
    """Umbrella for MQTT, device and event-bus failures."""

    error_code = "MESSAGING_ERROR"
    status_code = 502
    default_message = "A messaging error occurred."


class MessagingConnectionError(MessagingError):
    """The message broker could not be reached."""

    error_code = "MESSAGING_UNAVAILABLE"
    status_code = 503
    default_message = "The message broker is unavailable."
