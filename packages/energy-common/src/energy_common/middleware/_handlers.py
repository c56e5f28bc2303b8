"""``install_exception_handlers``: every error the app raises becomes the envelope."""

from __future__ import annotations

from http import HTTPStatus

import pydantic
from fastapi.exceptions import RequestValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from energy_common.exceptions import EnergyError
from energy_common.middleware._errors import log_exception
from energy_common.middleware._render import error_response
from energy_common.middleware._validation import sanitize_errors
from energy_common.responses import ErrorResponse

__all__ = ["HTTP_ERROR_CODES", "VALIDATION_STATUS", "install_exception_handlers"]

#: Status of request validation failures (FastAPI's convention; business ValidationError is 400).
VALIDATION_STATUS = 422

#: ``error_code`` of a Starlette/FastAPI ``HTTPException`` by status.
HTTP_ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "AUTHENTICATION_ERROR",
    403: "AUTHORIZATION_ERROR",
    404: "RESOURCE_NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    502: "EXTERNAL_SERVICE_ERROR",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves at the request's path, sorted.

    Starlette answers 405 with the ``Allow`` of the first route whose path matched, but
    FastAPI makes one route per method (``GET /devices`` and ``POST /devices`` are two),
    so that header names only one of them. Each method is asked of the app's routes
    instead (``route.matches`` with that method: no router internals, any nesting).
    """
    routes = list(getattr(request.app, "routes", ()))
    scope = request.scope
    return [
        method
        for method in _METHODS
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in routes)
    ]


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase + "."
    except ValueError:
        return "The request failed."


class _Handlers:
    def __init__(self, problem_json: bool) -> None:
        self.problem_json = problem_json

    def _respond(self, request: Request, error: ErrorResponse) -> Response:
        return error_response(error, problem_json=self.problem_json, path=request.url.path)

    async def energy_error(self, request: Request, exc: Exception) -> Response:
        if isinstance(exc, EnergyError) and exc.status_code >= 500:
            log_exception(exc, request.scope)
        return self._respond(request, ErrorResponse.from_exception(exc))

    async def validation_error(self, request: Request, exc: Exception) -> Response:
        raw = exc.errors() if isinstance(exc, RequestValidationError | pydantic.ValidationError) else []
        errors = sanitize_errors(raw)
        count = len(errors)
        message = f"The request is invalid: {count} problem{'s' if count != 1 else ''}; see error.details.errors."
        error = ErrorResponse.build(VALIDATION_STATUS, "VALIDATION_ERROR", message, {"errors": errors})
        return self._respond(request, error)

    async def http_exception(self, request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):  # pragma: no cover - registered for HTTPException only
            return await self.unhandled(request, exc)
        status = exc.status_code
        detail: object = exc.detail  # FastAPI's HTTPException allows any JSON-ready detail
        message = detail if isinstance(detail, str) and detail else _phrase(status)
        details: dict[str, object] = {} if isinstance(detail, str) or detail is None else {"detail": detail}
        code = HTTP_ERROR_CODES.get(status, f"HTTP_{status}")
        headers = dict(exc.headers or {})
        if status == 405:
            allowed = _allowed_methods(request)
            if allowed:
                headers = {name: value for name, value in headers.items() if name.lower() != "allow"}
                headers["Allow"] = ", ".join(allowed)
        error = ErrorResponse.build(status, code, message, details, headers=headers)
        return self._respond(request, error)

    async def unhandled(self, request: Request, exc: Exception) -> Response:
        log_exception(exc, request.scope)
        return self._respond(request, ErrorResponse.internal())


def install_exception_handlers(app: Starlette, *, problem_json: bool = False) -> None:
    """Register handlers that turn every error into the standard envelope.

    Mapping:

    * :class:`~energy_common.exceptions.EnergyError` → its ``status_code``, the envelope
      from ``ErrorResponse.from_exception`` and ``exc.headers`` (429 adds ``Retry-After``).
    * FastAPI ``RequestValidationError`` and ``pydantic.ValidationError`` → 422
      ``VALIDATION_ERROR`` with ``details.errors`` (loc, msg, type; never the submitted
      value, see :func:`sanitize_errors`).
    * Starlette/FastAPI ``HTTPException`` → its status and headers, ``error_code`` from
      :data:`HTTP_ERROR_CODES`; a 405's ``Allow`` lists every method of the path
      (:func:`_allowed_methods`), not only the first route's.
    * Any other exception → 500 ``INTERNAL_ERROR`` with a generic message, logged with
      its traceback. (Starlette re-raises it after responding; ``setup_middleware``'s
      error envelope middleware catches it first so that security headers apply.)

    Args:
        app: The FastAPI or Starlette application.
        problem_json: Answer with RFC 9457 ``application/problem+json`` instead.
    """
    handlers = _Handlers(problem_json)
    app.add_exception_handler(EnergyError, handlers.energy_error)
    app.add_exception_handler(RequestValidationError, handlers.validation_error)
    app.add_exception_handler(pydantic.ValidationError, handlers.validation_error)
    app.add_exception_handler(HTTPException, handlers.http_exception)
    app.add_exception_handler(Exception, handlers.unhandled)
