"""Pure-ASGI middleware and exception handlers for FastAPI services (extra ``web``).

``setup_middleware(app, settings)`` installs, outermost first::

    correlation id → [instrumentation, e.g. tracing, metrics] → request log
      → security headers → CORS → body size limit → error envelope → app

and ``install_exception_handlers(app)`` so that every error (energy errors, validation
errors, ``HTTPException``, anything unhandled) leaves as the standard envelope. Each
middleware is a small pure-ASGI class usable on its own.

Example:
    >>> from fastapi import FastAPI
    >>> from energy_common.config import Settings
    >>> from energy_common.middleware import setup_middleware
    >>> app = FastAPI()
    >>> setup_middleware(app, Settings(service_name="meter-api", cors_origins=["https://app.example.com"]))
"""

from energy_common._extras import missing_extra

try:
    import fastapi  # noqa: F401
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by the packaging tests
    raise missing_extra("energy-common", "web", exc) from exc

from energy_common.middleware._body_limit import BodySizeLimitMiddleware
from energy_common.middleware._correlation import CorrelationIdMiddleware
from energy_common.middleware._cors import CORSMiddleware, validate_cors
from energy_common.middleware._errors import ErrorEnvelopeMiddleware
from energy_common.middleware._handlers import HTTP_ERROR_CODES, VALIDATION_STATUS, install_exception_handlers
from energy_common.middleware._render import error_response
from energy_common.middleware._request_log import DEFAULT_EXCLUDE, RequestLogMiddleware
from energy_common.middleware._security_headers import API_CSP, DOCS_CSP, SecurityHeadersMiddleware
from energy_common.middleware._setup import build_middleware, setup_middleware
from energy_common.middleware._validation import sanitize_errors

__all__ = [
    "API_CSP",
    "DEFAULT_EXCLUDE",
    "DOCS_CSP",
    "HTTP_ERROR_CODES",
    "VALIDATION_STATUS",
    "BodySizeLimitMiddleware",
    "CORSMiddleware",
    "CorrelationIdMiddleware",
    "ErrorEnvelopeMiddleware",
    "RequestLogMiddleware",
    "SecurityHeadersMiddleware",
    "build_middleware",
    "error_response",
    "install_exception_handlers",
    "sanitize_errors",
    "setup_middleware",
    "validate_cors",
]
