"""Security headers middleware: the OWASP Secure Headers Project set on every response."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["API_CSP", "DOCS_CSP", "SecurityHeadersMiddleware"]

#: CSP for JSON APIs: nothing may load, nothing may frame the response.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
#: CSP for FastAPI's Swagger UI and ReDoc pages (CDN assets, inline bootstrap script).
DOCS_CSP = (
    "default-src 'self'; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "font-src 'self' https://fonts.gstatic.com; "
    "worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
)
#: Paths served with :data:`DOCS_CSP` (FastAPI's defaults).
DEFAULT_DOCS_PATHS = ("/docs", "/redoc")

_PERMISSIONS_POLICY = (
    "accelerometer=(), autoplay=(), camera=(), display-capture=(), encrypted-media=(), fullscreen=(), "
    "geolocation=(), gyroscope=(), magnetometer=(), microphone=(), midi=(), payment=(), "
    "picture-in-picture=(), publickey-credentials-get=(), screen-wake-lock=(), sync-xhr=(), usb=(), "
    "xr-spatial-tracking=()"
)


def _encode(headers: Mapping[str, str]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items())


class SecurityHeadersMiddleware:
    """Add the OWASP recommended response headers unless the app set them itself.

    Headers: ``Strict-Transport-Security`` (configurable), ``Content-Security-Policy``
    (strict for the API, docs-friendly for ``/docs`` and ``/redoc``),
    ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``,
    ``Referrer-Policy: no-referrer``, ``Permissions-Policy`` (every feature off),
    ``Cross-Origin-Opener-Policy``, ``Cross-Origin-Resource-Policy``,
    ``Cross-Origin-Embedder-Policy`` (not on docs pages, which load CDN assets),
    ``X-Permitted-Cross-Domain-Policies: none`` and ``Cache-Control: no-store``.

    Args:
        app: The ASGI app to wrap.
        hsts: Send ``Strict-Transport-Security``.
        hsts_max_age: HSTS ``max-age`` in seconds.
        hsts_include_subdomains: Add ``includeSubDomains``.
        hsts_preload: Add ``preload`` (only once the domain is on the preload list).
        content_security_policy: CSP for API responses.
        docs_content_security_policy: CSP for the documentation pages.
        docs_paths: Path prefixes of the documentation pages.
        cache_control: ``Cache-Control`` value when the app sets none; ``None`` to skip.
        extra_headers: More headers to add (override the defaults of the same name).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        hsts: bool = True,
        hsts_max_age: int = 31_536_000,
        hsts_include_subdomains: bool = True,
        hsts_preload: bool = False,
        content_security_policy: str = API_CSP,
        docs_content_security_policy: str = DOCS_CSP,
        docs_paths: Sequence[str] = DEFAULT_DOCS_PATHS,
        cache_control: str | None = "no-store",
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        common = {
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
            "Permissions-Policy": _PERMISSIONS_POLICY,
            "Cross-Origin-Opener-Policy": "same-origin",
            "Cross-Origin-Resource-Policy": "same-origin",
            "X-Permitted-Cross-Domain-Policies": "none",
        }
        if hsts:
            value = f"max-age={int(hsts_max_age)}"
            value += "; includeSubDomains" if hsts_include_subdomains else ""
            value += "; preload" if hsts_preload else ""
            common["Strict-Transport-Security"] = value
        if cache_control:
            common["Cache-Control"] = cache_control
        api = {
            **common,
            "Content-Security-Policy": content_security_policy,
            "Cross-Origin-Embedder-Policy": "require-corp",
        }
        docs = {**common, "Content-Security-Policy": docs_content_security_policy}
        self._api = _encode({**api, **(extra_headers or {})})
        self._docs = _encode({**docs, **(extra_headers or {})})
        self._names = frozenset(name for name, _ in self._api + self._docs)
        self._docs_paths = tuple(path.rstrip("/") for path in docs_paths if path.rstrip("/"))
        self._docs_exact = frozenset(self._docs_paths)
        self._docs_prefixes = tuple(path + "/" for path in self._docs_paths)

    def _is_docs(self, path: str) -> bool:
        return path in self._docs_exact or path.startswith(self._docs_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the headers to the response start message."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._docs if self._docs_paths and self._is_docs(scope["path"]) else self._api

        names = self._names

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                present = {name for name, _ in headers}  # ASGI header names are lower-case
                if present.isdisjoint(names):
                    message["headers"] = [*headers, *extra]
                else:
                    message["headers"] = [*headers, *(item for item in extra if item[0] not in present)]
            await send(message)

        await self.app(scope, receive, send_with_headers)
