"""The live dashboard: static files shipped in the package, served at ``/dashboard/``.

No build step and nothing from a CDN: ``dashboard/index.html``, ``dashboard.css`` and
``dashboard.js`` (plain JavaScript; the chart is an SVG it draws itself, no charting
library). The page calls the service's own public API with the token its log-in form
gets from ``POST /api/v1/auth/token``, kept in the page's memory only.
"""

from importlib import resources

from energy_common.exceptions import ResourceNotFoundError
from fastapi import APIRouter
from starlette.responses import RedirectResponse, Response

__all__ = ["DASHBOARD_CSP", "DASHBOARD_PATH", "dashboard_router"]

#: Where the dashboard lives (``/`` redirects there).
DASHBOARD_PATH = "/dashboard/"
#: The page loads only its own script and style and talks only to its own origin.
DASHBOARD_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_FILES = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
}


def _read(name: str) -> bytes:
    return resources.files("meter_service").joinpath("dashboard", name).read_bytes()


def dashboard_router() -> APIRouter:
    """Build the router of the dashboard page and its two assets (not in the OpenAPI schema)."""
    router = APIRouter(include_in_schema=False)
    files = {name: _read(name) for name in _FILES}  # a few kB, read once

    @router.get("/")
    async def root() -> RedirectResponse:
        return RedirectResponse(DASHBOARD_PATH)

    @router.get("/dashboard")
    async def no_slash() -> RedirectResponse:
        # The page's relative URLs (dashboard.js, ../api/v1) need the trailing slash.
        return RedirectResponse(DASHBOARD_PATH)

    @router.get("/dashboard/")
    async def page() -> Response:
        return Response(
            files["index.html"], media_type=_FILES["index.html"], headers={"Content-Security-Policy": DASHBOARD_CSP}
        )

    @router.get("/dashboard/{name}")
    async def asset(name: str) -> Response:
        if name not in _FILES or name == "index.html":
            raise ResourceNotFoundError("Dashboard file", name)
        return Response(files[name], media_type=_FILES[name])

    return router
