"""Error envelope middleware: the last line of defence, innermost in the stack."""

from __future__ import annotations

import contextlib
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from energy_common.exceptions import EnergyError
from energy_common.middleware._render import send_error
from energy_common.responses import ErrorResponse

__all__ = ["ErrorEnvelopeMiddleware", "log_exception"]

_logger = logging.getLogger("energy.errors")


def log_exception(exc: BaseException, scope: Scope) -> None:
    """Log an exception that reached the web layer.

    Unexpected exceptions and 5xx energy errors are logged at ERROR with the traceback;
    4xx energy errors at INFO without one (they are the client's problem). Each exception
    is logged once, however many layers see it.
    """
    # An exception re-raised after a streamed response started reaches Starlette's
    # ServerErrorMiddleware (and our handler) again: log it once.
    if getattr(exc, "_energy_logged", False):
        return
    with contextlib.suppress(AttributeError):  # exceptions with __slots__ only
        exc._energy_logged = True  # type: ignore[attr-defined]
    status = exc.status_code if isinstance(exc, EnergyError) else 500
    fields = {
        "event": "http_error",
        "http_method": scope.get("method"),
        "path": scope.get("path"),
        "status_code": status,
        "error_type": type(exc).__name__,
    }
    try:
        if status >= 500:
            _logger.error(
                "Request failed with %s: %s",
                type(exc).__name__,
                exc,
                exc_info=(type(exc), exc, exc.__traceback__),
                extra=fields,
            )
        else:
            _logger.info("Request rejected with %s", type(exc).__name__, extra=fields)
    except Exception:  # noqa: BLE001 - logging must not turn one error into two
        return


class ErrorEnvelopeMiddleware:
    """Turn any exception that escapes the app into the standard error envelope.

    It sits innermost, so the 500 it sends still passes through the security headers,
    CORS and correlation id middlewares (Starlette's own ``ServerErrorMiddleware`` sits
    outside them all). The response never contains a traceback or the exception's
    message; the exception is logged with its traceback instead. If the response had
    already started, the exception is logged and re-raised (the server closes the
    connection).

    Args:
        app: The ASGI app to wrap.
        problem_json: Answer with RFC 9457 ``application/problem+json``.
    """

    def __init__(self, app: ASGIApp, *, problem_json: bool = False) -> None:
        self.app = app
        self.problem_json = problem_json

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; on an escaped exception send the envelope."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log_exception(exc, scope)
            if started:
                raise
            await send_error(scope, send, ErrorResponse.from_exception(exc), problem_json=self.problem_json)
