"""Pure helpers for ASGI scopes, shared by the middleware of every energy package.

No web framework is imported here: the functions read only the plain ``scope`` dict,
so energy-monitoring's pure-ASGI middleware uses them without the ``web`` extra.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["route_template"]


def _fastapi_template(scope: Mapping[str, Any]) -> object:
    """FastAPI (0.120+) keeps the matched route with every router prefix applied here."""
    fastapi_scope = scope.get("fastapi")
    if not isinstance(fastapi_scope, Mapping):
        return None
    context = fastapi_scope.get("effective_route_context")
    if context is None:
        return None
    template = getattr(context, "path_format", None)
    if isinstance(template, str):
        return template
    return getattr(getattr(context, "starlette_route", None), "path_format", None)


def _endpoint_template(scope: Mapping[str, Any]) -> object:
    """A plain Starlette route under FastAPI's router (``/docs``, ``/openapi.json``, ``add_route``).

    FastAPI's router leaves neither ``scope["route"]`` nor its effective route for these,
    only the matched ``endpoint`` and the ``router``: the route is the router's one whose
    endpoint that is (a scan, on these few non-API routes only).
    """
    endpoint = scope.get("endpoint")
    routes = getattr(scope.get("router"), "routes", None)
    if endpoint is None or not isinstance(routes, list):
        return None
    for route in routes:
        if getattr(route, "endpoint", None) is endpoint:
            return getattr(route, "path_format", None)
    return None


def route_template(scope: Mapping[str, Any], root_path: str = "") -> str | None:
    """Return the route template the app matched (``/api/v1/devices/{device_id}``), or None.

    Call it after the app ran. FastAPI's effective route (with the prefixes of every
    ``include_router``) wins over ``scope["route"]``, which on recent FastAPI holds only the
    inner route; a plain Starlette route under FastAPI's router (``/docs``, ``/openapi.json``)
    is found by its endpoint; a Starlette ``Mount`` adds its prefix to ``root_path``, which is put in
    front of the inner template.

    Args:
        scope: The request's ASGI scope, after the app handled it.
        root_path: The ``root_path`` the scope had when the middleware received it.

    Returns:
        The template, or None when no route matched (404s, scanners): never the raw path.

    Example:
        >>> class Route:
        ...     path_format = "/users/{user_id}"
        >>> route_template({"route": Route(), "root_path": "/v2"}, root_path="")
        '/v2/users/{user_id}'
    """
    template = _fastapi_template(scope)
    if not isinstance(template, str):
        route = scope.get("route")
        if route is not None:
            template = getattr(route, "path_format", None) or getattr(route, "path", None)
        else:
            template = _endpoint_template(scope)
        if not isinstance(template, str):
            return None
    inner_root = scope.get("root_path", "")
    if isinstance(inner_root, str) and len(inner_root) > len(root_path) and inner_root.startswith(root_path):
        template = inner_root[len(root_path) :] + template
    return template
