"""OpenAPI helpers for FastAPI services (extra ``web``): error responses and offline Swagger UI.

* :func:`error_responses` documents the standard error envelope under each error status
  a route can answer, for FastAPI's ``responses=`` (on a route, a router or the app);
* :func:`install_swagger_ui` serves ``/docs`` with Swagger UI assets shipped in this
  package (no CDN: the page works offline and under a ``'self'``-only CSP).

Example:
    >>> from fastapi import FastAPI
    >>> from energy_common.apidocs import error_responses, install_swagger_ui
    >>> app = FastAPI(responses=error_responses(500, 503))
    >>> install_swagger_ui(app)
"""

from energy_common._extras import missing_extra

try:
    import fastapi  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by the packaging tests
    raise missing_extra("energy-common", "web", exc) from exc

from energy_common.apidocs._responses import ERROR_DESCRIPTIONS, error_responses
from energy_common.apidocs._swagger import SWAGGER_UI_VERSION, install_swagger_ui

__all__ = ["ERROR_DESCRIPTIONS", "SWAGGER_UI_VERSION", "error_responses", "install_swagger_ui"]
