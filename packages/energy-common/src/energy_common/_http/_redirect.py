"""Redirect safety: credentials never follow a redirect to another origin."""

from __future__ import annotations

import re

import httpx

__all__ = ["SENSITIVE_HEADER", "redirect_method", "same_origin", "strip_credentials"]

#: Header names that carry credentials: never sent to another origin.
SENSITIVE_HEADER = re.compile(
    r"^(authorization|proxy-authorization|cookie|.*(auth|token|api[-_]?key|secret|session|signature|password|credential).*)$",
    re.IGNORECASE,
)

_DEFAULT_PORTS = {"http": 80, "https": 443}


def same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    """Tell whether two URLs share scheme, host and (effective) port."""
    return (
        a.scheme == b.scheme
        and a.host == b.host
        and (a.port or _DEFAULT_PORTS.get(a.scheme)) == (b.port or _DEFAULT_PORTS.get(b.scheme))
    )


def strip_credentials(headers: dict[str, str]) -> dict[str, str]:
    """Return ``headers`` without Authorization, cookies and custom auth headers."""
    return {name: value for name, value in headers.items() if not SENSITIVE_HEADER.match(name)}


def redirect_method(status: int, method: str) -> str:
    """Return the method for the next hop (RFC 9110: 303 becomes GET, 301/302 turn POST into GET)."""
    if status == 303 and method != "HEAD":
        return "GET"
    if status in (301, 302) and method == "POST":
        return "GET"
    return method
