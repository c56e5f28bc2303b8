"""energy-common: the core every Energy Tracking IoT Platform service builds on.

The top-level package is light: it imports only core modules (no web, database, cache or HTTP library). Areas
that need an extra are imported by path, e.g. ``energy_common.cache`` (extra
``cache``), ``energy_common.database`` (extra ``db``), ``energy_common.http_client``
(extra ``http``), ``energy_common.middleware`` (extra ``web``).
"""

from energy_common.__about__ import __version__
from energy_common.context import (
    correlation_scope,
    get_correlation_id,
    new_correlation_id,
    set_correlation_id,
)
from energy_common.exceptions import (
    AuthenticationError,
    AuthorizationError,
    CacheConnectionError,
    CacheError,
    ConfigurationError,
    ConflictError,
    DatabaseConnectionError,
    DatabaseError,
    EnergyError,
    ExternalServiceError,
    MessagingConnectionError,
    MessagingError,
    OutOfRangeError,
    PayloadTooLargeError,
    RateLimitExceededError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    ValidationError,
)

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
    "__version__",
    "correlation_scope",
    "get_correlation_id",
    "new_correlation_id",
    "set_correlation_id",
]
