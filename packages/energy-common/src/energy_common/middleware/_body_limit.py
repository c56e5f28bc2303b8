"""Body size limit middleware: 413 in the standard envelope, also for chunked bodies."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from energy_common.exceptions import ConfigurationError, PayloadTooLargeError
from energy_common.middleware._render import send_error
from energy_common.responses import ErrorResponse

__all__ = ["BodySizeLimitMiddleware"]


def _too_large(limit: int) -> ErrorResponse:
    return ErrorResponse.from_exception(
        PayloadTooLargeError(
            f"The request body exceeds the limit of {limit} bytes; send a smaller body.", {"max_body_size": limit}
        )
    )


class BodySizeLimitMiddleware:
    """Answer 413 ``PAYLOAD_TOO_LARGE`` when a request body exceeds ``max_body_size`` bytes.

    A ``Content-Length`` above the limit is refused before the app runs (one within the
    limit needs no counting: the server frames the body by it). A body without one
    (chunked transfer, HTTP/2) is counted as the app reads it: past the limit the read
    raises :class:`~energy_common.exceptions.PayloadTooLargeError` and whatever the app
    then answers (FastAPI turns body-read errors into a 400) is replaced by the 413, as
    long as the response has not started.

    Args:
        app: The ASGI app to wrap.
        max_body_size: Largest accepted body in bytes.
        problem_json: Answer with RFC 9457 ``application/problem+json``.
    """

    def __init__(self, app: ASGIApp, *, max_body_size: int = 1_048_576, problem_json: bool = False) -> None:
        if max_body_size < 1:
            raise ConfigurationError(f"MAX_BODY_SIZE must be a positive number of bytes, got {max_body_size}.")
        self.app = app
        self.max_body_size = max_body_size
        self.problem_json = problem_json

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Enforce the limit on this request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_size
        declared: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = True
        if declared is not None and not chunked and declared.isdigit():
            if int(declared) > limit:
                await send_error(scope, send, _too_large(limit), problem_json=self.problem_json)
                return
            # The server frames the body by Content-Length: it cannot grow past it.
            await self.app(scope, receive, send)
            return
        if declared is None and not chunked and scope.get("http_version") in {"1.0", "1.1"}:
            # HTTP/1.x without Content-Length or Transfer-Encoding has no body (RFC 9112 6.3).
            await self.app(scope, receive, send)
            return

        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise PayloadTooLargeError(f"The request body exceeds the limit of {limit} bytes.")
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                # The app's own answer to the failed read is replaced by the 413.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await send_error(scope, send, _too_large(limit), problem_json=self.problem_json)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not (exceeded and not started):
                raise
            await send_error(scope, send, _too_large(limit), problem_json=self.problem_json)
            return
        if exceeded and not started:
            await send_error(scope, send, _too_large(limit), problem_json=self.problem_json)
