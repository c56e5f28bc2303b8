"""Structured logging: one JSON object per line, redacted, with the request context.

:func:`setup_logging` configures the *root* logger, so the lines of every library and of
the application share one format::

    {
        "timestamp": "2026-01-01T12:00:00.000Z",
        "level": "INFO",
        "service": "auth",
        "logger": "auth",
        "message": "GET /users 200 12.3 ms",
        "correlation_id": "req-1",
        "trace_id": "...",
        "span_id": "...",
        "status_code": 200,
    }

``trace_id``/``span_id`` appear while an OpenTelemetry span is active. Fields whose name
looks secret (authorization, cookie, password, token, secret, api_key ...) are replaced
by ``[REDACTED]`` at any depth, and Bearer tokens, ``password=...`` pairs, URL passwords
and JWTs are removed from messages and tracebacks.

Example:
    >>> from energy_common.logging import setup_logging, ServiceLogger
    >>> _ = setup_logging("my-service", log_level="INFO")
    >>> logger = ServiceLogger("my-service")
    >>> logger.log_database_operation("SELECT", "users", 0.023)  # doctest: +SKIP
"""

from __future__ import annotations

from energy_common._logging._fast import log_fields
from energy_common._logging._format import ConsoleFormatter, JSONFormatter, record_to_dict
from energy_common._logging._redact import REDACTED, is_sensitive_key, redact, redact_text, text_is_clean
from energy_common._logging._service import ServiceLogger
from energy_common._logging._setup import (
    EnergyLogHandler,
    capture_logs,
    get_service_name,
    parse_log_level,
    setup_logging,
)

__all__ = [
    "REDACTED",
    "ConsoleFormatter",
    "EnergyLogHandler",
    "JSONFormatter",
    "ServiceLogger",
    "capture_logs",
    "get_service_name",
    "is_sensitive_key",
    "log_fields",
    "parse_log_level",
    "record_to_dict",
    "redact",
    "redact_text",
    "setup_logging",
    "text_is_clean",
]
