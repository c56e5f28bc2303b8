"""ASGI types and the small helpers both middlewares share (route template, method)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

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


def route_template(scope: Scope, root_path: str) -> str | None:
    """Return the route template the router matched, after the app ran, or None.

    Starlette and FastAPI store the matched route in ``scope["route"]``; a mount adds its
    prefix to ``root_path``, which is put in front of the inner route's template.
    """
    route = scope.get("route")
    if route is None:
        return None
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    inner_root = scope.get("root_path", "")
    if isinstance(inner_root, str) and len(inner_root) > len(root_path) and inner_root.startswith(root_path):
        template = inner_root[len(root_path) :] + template
    return template
