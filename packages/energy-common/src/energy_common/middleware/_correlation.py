"""Correlation id middleware: adopt a sane incoming id or make one, expose it, echo it."""

from __future__ import annotations

import os
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from energy_common.context import reset_correlation_id, set_correlation_id
from energy_common.propagation import CORRELATION_HEADERS, extract_correlation_id

__all__ = ["CorrelationIdMiddleware"]

_INCOMING = frozenset(name.encode("latin-1") for name in CORRELATION_HEADERS)
_RESPONSE_HEADER = b"x-request-id"


def _new_id() -> str:
    # Same shape as context.new_correlation_id() (32 lowercase hex), without building a
    # uuid.UUID object on every request.
    return os.urandom(16).hex()


class CorrelationIdMiddleware:
    """Set the correlation id of each HTTP request and echo it as ``X-Request-ID``.

    An incoming ``X-Request-ID`` (or ``X-Correlation-ID``) is adopted when it passes
    :func:`energy_common.context.is_valid_correlation_id` (bounded length, safe charset);
    otherwise a new id is generated. The id is the current value of
    :mod:`energy_common.context` while the request runs (logging, the HTTP client and
    messaging read it), is stored in ``request.state.correlation_id``, and is reset
    afterwards.

    Args:
        app: The ASGI app to wrap.
        generator: Makes a new id when none is adopted (default: 32 random hex characters).
    """

    def __init__(self, app: ASGIApp, *, generator: Callable[[], str] = _new_id) -> None:
        self.app = app
        self.generator = generator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request under its correlation id."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming: dict[str, str] | None = None
        for name, value in scope["headers"]:
            if name in _INCOMING:
                if incoming is None:
                    incoming = {}
                incoming[name.decode("latin-1")] = value.decode("latin-1")
        cid = (extract_correlation_id(incoming) if incoming else None) or self.generator()
        scope.setdefault("state", {})["correlation_id"] = cid
        echo = (_RESPONSE_HEADER, cid.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                # ASGI response header names are lower-case; a plain loop is the cheapest scan.
                for name, _ in headers:
                    if name == _RESPONSE_HEADER:
                        headers = [item for item in headers if item[0] != _RESPONSE_HEADER]
                        break
                message["headers"] = [*headers, echo]
            await send(message)

        token = set_correlation_id(cid)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            reset_correlation_id(token)
