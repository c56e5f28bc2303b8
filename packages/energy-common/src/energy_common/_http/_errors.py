"""Turn a peer's error answer into the platform's exception tree (the one translation boundary)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from energy_common.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ConflictError,
    EnergyError,
    ExternalServiceError,
    RateLimitExceededError,
    ResourceNotFoundError,
    ValidationError,
)
from energy_common.health._redact import redact

__all__ = ["error_for_status", "remote_error_fields"]

_BY_STATUS: dict[int, type[EnergyError]] = {
    400: ValidationError,
    422: ValidationError,
    401: AuthenticationError,
    403: AuthorizationError,
    404: ResourceNotFoundError,
    409: ConflictError,
}

# Longest remote message copied into our error; the rest is cut.
_MAX_REMOTE_MESSAGE = 300


def remote_error_fields(body: Any) -> tuple[str | None, str | None, Any]:
    """Find ``(error_code, message, details)`` in a peer's error body.

    Understands the platform envelope (``{"success": false, "message": ..., "error_code": ...}``,
    also with the error nested under ``error`` or ``data``) and FastAPI's ``{"detail": ...}``.
    """
    if not isinstance(body, Mapping):
        return None, None, None
    candidates = [body] + [body[key] for key in ("error", "data", "meta") if isinstance(body.get(key), Mapping)]
    code = message = details = None
    for part in candidates:
        code = code or _text(part.get("error_code")) or _text(part.get("code"))
        message = message or _text(part.get("message"))
        if details is None and part.get("details") is not None:
            details = part.get("details")
    if message is None and isinstance(body.get("detail"), str):
        message = body["detail"]
    if details is None and isinstance(body.get("detail"), list):
        details = body["detail"]
    return code, message, details


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def error_for_status(
    status: int,
    body: Any,
    *,
    service: str,
    method: str,
    path: str,
    retry_after: float | None = None,
) -> EnergyError:
    """Build the exception for a peer's error status.

    400/422 → ValidationError, 401 → AuthenticationError, 403 → AuthorizationError,
    404 → ResourceNotFoundError, 409 → ConflictError, 429 → RateLimitExceededError,
    anything else (5xx and unlisted 4xx) → ExternalServiceError. ``details`` carries
    ``service``, ``method``, ``path``, ``status_code``, ``remote_error_code`` and, when
    the peer sent them, ``remote_message`` and ``remote_details``.
    """
    code, remote_message, remote_details = remote_error_fields(body)
    details: dict[str, Any] = {
        "service": service,
        "method": method,
        "path": path,
        "status_code": status,
        "remote_error_code": code,
    }
    if remote_message is not None:
        details["remote_message"] = redact(remote_message, max_length=_MAX_REMOTE_MESSAGE)
    if remote_details is not None:
        details["remote_details"] = remote_details
    what = f"{service} answered HTTP {status} to {method} {path}"
    suffix = f": {details['remote_message']}" if remote_message is not None else "."
    error: EnergyError
    if status == 429:
        error = RateLimitExceededError(
            f"{what} (rate limited); retry after {retry_after:g} s."
            if retry_after is not None
            else f"{what} (rate limited).",
            details,
            retry_after=retry_after,
        )
        if retry_after is not None:
            error.headers["Retry-After"] = str(max(1, round(retry_after)))
        return error
    cls = _BY_STATUS.get(status, ExternalServiceError)
    error = ResourceNotFoundError("Resource", None, details) if cls is ResourceNotFoundError else cls(None, details)
    if cls is ExternalServiceError:
        error.message = f"{what}{suffix} Retry later or check that service's health."
    else:
        error.message = f"{what}{suffix}"
    error.args = (error.message,)
    return error
