"""ASGI types and the small helpers both middlewares share (route template, method)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from energy_common.asgi import route_template

__all__ = ["UNMATCHED_ROUTE", "ASGIApp", "Receive", "Scope", "Send", "normalize_method", "route_template"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Route label of requests that matched no route (404s, scanners): never the raw path.
UNMATCHED_ROUTE = "unmatched"

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})


def normalize_method(method: str) -> str:
    """Return the HTTP method, or ``_OTHER`` for non-standard ones (bounded cardinality)."""
    return method if method in _METHODS else "_OTHER"
