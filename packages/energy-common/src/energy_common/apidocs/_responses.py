"""``error_responses``: the error envelope in the OpenAPI schema, per status."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from energy_common.responses import ErrorResponse

__all__ = ["ERROR_DESCRIPTIONS", "error_responses"]

#: What each error status means in the services built on these libraries.
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The request is invalid (VALIDATION_ERROR): fix what `error.details` names.",
    401: "No valid bearer token (AUTHENTICATION_ERROR): log in and send `Authorization: Bearer <token>`.",
    403: "The token lacks the permission this route needs (AUTHORIZATION_ERROR).",
    404: "The resource does not exist (RESOURCE_NOT_FOUND).",
    405: "The path exists but not with this method (METHOD_NOT_ALLOWED); `Allow` lists its methods.",
    409: "The request conflicts with the resource's state (CONFLICT or a more specific code).",
    413: "The request body is larger than the service accepts (PAYLOAD_TOO_LARGE).",
    422: "The request does not match the schema (VALIDATION_ERROR, `error.details.errors`) or was refused.",
    429: "Too many requests (RATE_LIMIT_EXCEEDED): retry after `Retry-After` seconds.",
    500: "An unexpected error (INTERNAL_ERROR): quote the request id when reporting it.",
    502: "A service or device behind this one failed (e.g. EXTERNAL_SERVICE_ERROR, COMMAND_FAILED).",
    503: "The service or one of its engines is unavailable (SERVICE_UNAVAILABLE ...): retry shortly.",
    504: "A service or device behind this one did not answer in time (e.g. COMMAND_TIMEOUT).",
}


def _phrase(status: int) -> str:
    try:
        return f"{HTTPStatus(status).phrase}."
    except ValueError:
        return "The request failed."


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Return FastAPI ``responses=`` documenting the error envelope under each status.

    Every status gets the :class:`~energy_common.responses.ErrorResponse` schema (``success``
    false, ``error.error_code``, ``error.message``, ``error.details``, ``request_id``) and a
    description from :data:`ERROR_DESCRIPTIONS`. Given for 422 it replaces FastAPI's own
    ``HTTPValidationError``, which the services never send. Combine the results with ``|``;
    FastAPI merges app, router and route ``responses`` (the route's win).

    Args:
        *statuses: HTTP error statuses (400-599).

    Raises:
        ValueError: A status is not an HTTP error status.

    Example:
        >>> sorted(error_responses(404, 401))
        [401, 404]
        >>> error_responses(404)[404]["description"].startswith("The resource does not exist")
        True
    """
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(f"error_responses() takes HTTP error statuses (400-599), got {status!r}.")
        description = ERROR_DESCRIPTIONS.get(status) or _phrase(status)
        responses[status] = {"model": ErrorResponse, "description": description}
    return responses
