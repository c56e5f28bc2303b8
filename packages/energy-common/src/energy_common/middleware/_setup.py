"""``setup_middleware``: the standard stack in the documented order."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware

from energy_common.config import Settings, get_settings
from energy_common.exceptions import ConfigurationError
from energy_common.middleware._body_limit import BodySizeLimitMiddleware
from energy_common.middleware._correlation import CorrelationIdMiddleware
from energy_common.middleware._cors import CORSMiddleware
from energy_common.middleware._errors import ErrorEnvelopeMiddleware
from energy_common.middleware._handlers import install_exception_handlers
from energy_common.middleware._request_log import RequestLogMiddleware
from energy_common.middleware._security_headers import (
    API_CSP,
    DEFAULT_DOCS_PATHS,
    SecurityHeadersMiddleware,
)

__all__ = ["build_middleware", "setup_middleware"]


def build_middleware(
    settings: Settings,
    *,
    instrumentation: Sequence[Middleware] = (),
    docs_paths: Sequence[str] = DEFAULT_DOCS_PATHS,
) -> list[Middleware]:
    """Return the standard stack, outermost first, as Starlette ``Middleware`` entries.

    Order: correlation id → ``instrumentation`` (in the given order, e.g. tracing and
    metrics from energy-monitoring) → request log → security headers → CORS (only when
    origins are configured) → body size limit → error envelope.

    Raises:
        ConfigurationError: The CORS settings are unsafe.
    """
    stack = [Middleware(CorrelationIdMiddleware), *instrumentation]
    if settings.request_log_enabled:
        stack.append(Middleware(RequestLogMiddleware, exclude=tuple(settings.request_log_exclude)))
    if settings.security_headers_enabled:
        stack.append(
            Middleware(
                SecurityHeadersMiddleware,
                hsts=settings.hsts_enabled,
                hsts_max_age=settings.hsts_max_age,
                hsts_include_subdomains=settings.hsts_include_subdomains,
                hsts_preload=settings.hsts_preload,
                content_security_policy=settings.content_security_policy or API_CSP,
                docs_paths=tuple(docs_paths),
            )
        )
    if settings.cors_origins or settings.cors_origin_regex:
        stack.append(
            Middleware(
                CORSMiddleware,
                allow_origins=tuple(settings.cors_origins),
                allow_origin_regex=settings.cors_origin_regex,
                allow_credentials=settings.cors_allow_credentials,
                allow_methods=tuple(settings.cors_allow_methods),
                allow_headers=tuple(settings.cors_allow_headers),
                expose_headers=tuple(settings.cors_expose_headers),
                max_age=settings.cors_max_age,
            )
        )
    stack.append(
        Middleware(BodySizeLimitMiddleware, max_body_size=settings.max_body_size, problem_json=settings.problem_json)
    )
    stack.append(Middleware(ErrorEnvelopeMiddleware, problem_json=settings.problem_json))
    return stack


def setup_middleware(
    app: Starlette,
    settings: Settings | None = None,
    *,
    instrumentation: Sequence[Middleware] = (),
    docs_paths: Sequence[str] = DEFAULT_DOCS_PATHS,
    exception_handlers: bool = True,
) -> None:
    """Install the standard middleware stack (and exception handlers) on ``app``.

    The stack goes outside any middleware the app already has; see
    :func:`build_middleware` for the order. Call it once, before the app starts.

    Args:
        app: The FastAPI or Starlette application.
        settings: Settings to read; :func:`~energy_common.config.get_settings` by default.
        instrumentation: Pure-ASGI middlewares placed right after the correlation id
            (energy-monitoring passes its tracing and metrics middlewares here).
        docs_paths: Paths that get the docs-friendly CSP.
        exception_handlers: Also call :func:`install_exception_handlers`.

    Raises:
        ConfigurationError: Called twice, called after the app started, or the CORS
            settings are unsafe.

    Example:
        >>> from fastapi import FastAPI
        >>> from energy_common.config import Settings
        >>> app = FastAPI()
        >>> setup_middleware(app, Settings(service_name="demo"))
    """
    if getattr(app, "middleware_stack", None) is not None:
        raise ConfigurationError("setup_middleware() must run before the application starts serving requests.")
    if any(getattr(entry, "cls", None) is CorrelationIdMiddleware for entry in app.user_middleware):
        raise ConfigurationError("setup_middleware() was already called on this application; call it once.")
    settings = settings if settings is not None else get_settings()
    app.user_middleware[0:0] = build_middleware(settings, instrumentation=instrumentation, docs_paths=docs_paths)
    if exception_handlers:
        install_exception_handlers(app, problem_json=settings.problem_json)
