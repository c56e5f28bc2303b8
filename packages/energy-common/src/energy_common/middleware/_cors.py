"""CORS: Starlette's CORS middleware behind a configuration check that refuses unsafe setups."""

from __future__ import annotations

import re
from collections.abc import Sequence

from starlette.middleware.cors import CORSMiddleware as _StarletteCORS
from starlette.types import ASGIApp, Receive, Scope, Send

from energy_common.exceptions import ConfigurationError

__all__ = ["CORSMiddleware", "validate_cors"]

_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
# Origins no legitimate allow-list should accept together with credentials.
_PROBES = ("https://attacker.invalid", "http://attacker.invalid", "null")


def validate_cors(
    allow_origins: Sequence[str],
    *,
    allow_origin_regex: str | None = None,
    allow_credentials: bool = False,
) -> None:
    """Refuse CORS settings that are unsafe or can never match.

    Raises:
        ConfigurationError: ``*`` with credentials; ``*`` mixed with explicit origins;
            ``null`` with credentials; an origin that is not ``scheme://host[:port]``
            (no path, no trailing slash); a regex that does not compile, or that
            matches any origin while credentials are allowed.
    """
    origins = list(allow_origins)
    if "*" in origins:
        if allow_credentials:
            raise ConfigurationError(
                "CORS_ORIGINS='*' with CORS_ALLOW_CREDENTIALS=true would let every website read authenticated "
                "responses. List the allowed origins explicitly, or turn credentials off.",
                {"setting": "CORS_ORIGINS"},
            )
        if len(origins) > 1:
            raise ConfigurationError("CORS_ORIGINS mixes '*' with explicit origins; use one or the other.")
    for origin in origins:
        if origin == "*":
            continue
        if origin == "null":
            if allow_credentials:
                raise ConfigurationError("CORS_ORIGINS must not contain 'null' when CORS_ALLOW_CREDENTIALS=true.")
            continue
        if not _ORIGIN.fullmatch(origin):
            raise ConfigurationError(
                f"CORS_ORIGINS entry {origin!r} is not an origin: use scheme://host[:port] without path or "
                "trailing slash, e.g. https://app.example.com"
            )
    if allow_origin_regex is not None:
        try:
            pattern = re.compile(allow_origin_regex)
        except re.error as exc:
            raise ConfigurationError(f"CORS_ORIGIN_REGEX does not compile: {exc}.") from exc
        if allow_credentials and any(pattern.fullmatch(probe) for probe in _PROBES):
            raise ConfigurationError(
                "CORS_ORIGIN_REGEX matches arbitrary origins while CORS_ALLOW_CREDENTIALS=true; anchor it to "
                "your own domains, e.g. ^https://([a-z0-9-]+\\.)?example\\.com$"
            )


class CORSMiddleware:
    """Starlette's CORS middleware, checked with :func:`validate_cors` at construction.

    Args:
        app: The ASGI app to wrap.
        allow_origins: Exact origins (``scheme://host[:port]``) or ``["*"]``.
        allow_origin_regex: Regex for origins (anchored to your domains).
        allow_credentials: Allow cookies / Authorization on cross-origin requests.
        allow_methods: Methods allowed cross-origin.
        allow_headers: Request headers allowed cross-origin.
        expose_headers: Response headers readable by the browser.
        max_age: Seconds a browser may cache a preflight answer.

    Raises:
        ConfigurationError: The configuration is unsafe (see :func:`validate_cors`).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        allow_origins: Sequence[str] = (),
        allow_origin_regex: str | None = None,
        allow_credentials: bool = False,
        allow_methods: Sequence[str] = ("GET", "POST", "PUT", "PATCH", "DELETE"),
        allow_headers: Sequence[str] = ("Authorization", "Content-Type", "X-Request-ID"),
        expose_headers: Sequence[str] = ("X-Request-ID",),
        max_age: int = 600,
    ) -> None:
        validate_cors(allow_origins, allow_origin_regex=allow_origin_regex, allow_credentials=allow_credentials)
        self.app = app
        self._cors = _StarletteCORS(
            app,
            allow_origins=list(allow_origins),
            allow_origin_regex=allow_origin_regex,
            allow_credentials=allow_credentials,
            allow_methods=list(allow_methods),
            allow_headers=list(allow_headers),
            expose_headers=list(expose_headers),
            max_age=max_age,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer preflights and add CORS headers to cross-origin responses."""
        if scope["type"] == "http":
            for name, _ in scope["headers"]:
                if name == b"origin":
                    await self._cors(scope, receive, send)
                    return
        # Same-origin and non-browser requests carry no Origin header: no CORS work to do.
        await self.app(scope, receive, send)
