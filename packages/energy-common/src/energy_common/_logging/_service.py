"""``ServiceLogger``: typed helpers for the log lines every service writes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from energy_common._logging._format import _RESERVED

__all__ = ["ServiceLogger"]


def _fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    # LogRecord refuses extras that collide with its own attributes ("name", "msg", ...).
    return {f"{key}_" if key in _RESERVED else key: value for key, value in fields.items()}


class ServiceLogger:
    """A service's logger with helpers for API calls, database operations and events.

    Records go through the stdlib logger named ``logger_name`` (default: the service
    name), so :func:`setup_logging` formats them like every other line.

    Args:
        service: The service name, e.g. ``"auth-service"``.
        logger_name: Logger to write to; defaults to ``service``.

    Example:
        >>> from energy_common.logging import ServiceLogger
        >>> logger = ServiceLogger("my-service")
        >>> logger.log_api_call("GET", "/users", 200, 0.145)
    """

    def __init__(self, service: str, *, logger_name: str | None = None) -> None:
        self.service = service
        self.logger = logging.getLogger(logger_name or service)

    def log(self, level: int, message: str, /, **fields: Any) -> None:
        """Log ``message`` at ``level`` with ``fields`` as structured extras."""
        if self.logger.isEnabledFor(level):
            self.logger.log(level, message, extra=_fields(fields), stacklevel=2)

    def debug(self, message: str, /, **fields: Any) -> None:
        """Log at DEBUG with structured fields."""
        self.log(logging.DEBUG, message, **fields)

    def info(self, message: str, /, **fields: Any) -> None:
        """Log at INFO with structured fields."""
        self.log(logging.INFO, message, **fields)

    def warning(self, message: str, /, **fields: Any) -> None:
        """Log at WARNING with structured fields."""
        self.log(logging.WARNING, message, **fields)

    def error(self, message: str, /, **fields: Any) -> None:
        """Log at ERROR with structured fields."""
        self.log(logging.ERROR, message, **fields)

    def exception(self, message: str, /, **fields: Any) -> None:
        """Log at ERROR with the current exception's traceback."""
        # Called from inside an ``except`` block of the caller, which ruff cannot see.
        self.logger.exception(message, extra=_fields(fields), stacklevel=2)  # noqa: LOG004

    def log_api_call(self, method: str, path: str, status: int, duration_s: float, **fields: Any) -> None:
        """Log one API call: INFO below 400, WARNING for 4xx, ERROR for 5xx.

        Args:
            method: HTTP method.
            path: Path or route template (prefer the template: it has no ids or secrets).
            status: HTTP status code.
            duration_s: Duration in seconds (logged as ``duration_ms``).
            **fields: Extra structured fields.
        """
        level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
        duration_ms = round(duration_s * 1000.0, 3)
        self.log(
            level,
            f"{method} {path} {status} {duration_ms} ms",
            event="api_call",
            http_method=method,
            path=path,
            status_code=status,
            duration_ms=duration_ms,
            **fields,
        )

    def log_database_operation(self, operation: str, table: str, duration_s: float, **fields: Any) -> None:
        """Log one database operation (``SELECT``, ``INSERT`` ...) on ``table`` at INFO."""
        duration_ms = round(duration_s * 1000.0, 3)
        self.log(
            logging.INFO,
            f"{operation} {table} {duration_ms} ms",
            event="database_operation",
            operation=operation,
            table=table,
            duration_ms=duration_ms,
            **fields,
        )

    def log_event(self, event: str, message: str | None = None, *, level: int = logging.INFO, **fields: Any) -> None:
        """Log a named business or system event (``device_registered``, ``cache_miss`` ...).

        Args:
            event: Stable event name, written as the ``event`` field.
            message: Human-readable message; defaults to the event name.
            level: Logging level number.
            **fields: Extra structured fields.
        """
        self.log(level, message or event, event=event, **fields)
