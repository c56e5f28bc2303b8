"""``install_swagger_ui``: ``/docs`` from Swagger UI assets shipped in this package (no CDN)."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from energy_common.exceptions import ConfigurationError, ResourceNotFoundError

__all__ = ["SWAGGER_UI_VERSION", "install_swagger_ui"]

#: Version of the vendored ``swagger-ui-dist`` (see ``swagger_ui/VENDORED.md``).
SWAGGER_UI_VERSION = "5.35.0"

_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}


def _read_asset(name: str) -> bytes:
    return resources.files("energy_common.apidocs").joinpath("swagger_ui", name).read_bytes()


def install_swagger_ui(app: FastAPI, path: str = "/docs", *, title: str | None = None) -> None:
    """Serve Swagger UI at ``path`` from this package's assets instead of a CDN.

    FastAPI's own ``/docs`` loads its script and style from a CDN, so the page is blank
    offline or under a strict CSP. This replaces the app's docs routes (FastAPI's
    ``docs_url``, its OAuth2 redirect and ``redoc_url``: ReDoc is not bundled) with:
    ``path`` (the page), ``path + "/oauth2-redirect"`` and ``path + "/assets/<file>"``
    (Swagger UI 5, :data:`SWAGGER_UI_VERSION`, read once and cached in memory).
    ``setup_middleware``'s security headers give everything under ``/docs`` the docs CSP.

    Args:
        app: The FastAPI app; call before it starts serving.
        path: Where the page lives.
        title: Page title; ``"<app title> - Swagger UI"`` by default.

    Raises:
        ConfigurationError: The app has no OpenAPI schema (``openapi_url=None``), or it
            already started serving requests.

    Example:
        >>> from fastapi import FastAPI
        >>> app = FastAPI()
        >>> install_swagger_ui(app)
        >>> app.docs_url
        '/docs'
    """
    if app.openapi_url is None:
        raise ConfigurationError("install_swagger_ui() needs the app's OpenAPI schema; do not set openapi_url=None.")
    if getattr(app, "middleware_stack", None) is not None:
        raise ConfigurationError("install_swagger_ui() must run before the application starts serving requests.")
    path = "/" + path.strip("/")
    replaced = {app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url} - {None}
    app.router.routes[:] = [route for route in app.router.routes if getattr(route, "path", None) not in replaced]
    app.docs_url, app.redoc_url = path, None
    redirect = f"{path}/oauth2-redirect"
    app.swagger_ui_oauth2_redirect_url = redirect
    openapi_url, page_title = app.openapi_url, title or f"{app.title} - Swagger UI"
    cache: dict[str, bytes] = {}

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=page_title,
            swagger_js_url=f"{root}{path}/assets/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{path}/assets/swagger-ui.css",
            swagger_favicon_url=f"{root}{path}/assets/favicon-32x32.png",
            oauth2_redirect_url=root + redirect,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    async def oauth2_redirect(_request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        media_type = _ASSETS.get(name)
        if media_type is None:
            raise ResourceNotFoundError("Swagger UI asset", name)
        if name not in cache:
            cache[name] = _read_asset(name)
        # The files change only with the package version: let browsers keep them.
        return Response(cache[name], media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})

    app.add_route(path, swagger_ui, include_in_schema=False)
    app.add_route(redirect, oauth2_redirect, include_in_schema=False)
    app.add_route(f"{path}/assets/{{name}}", asset, include_in_schema=False)
