"""Tests for energy_common.apidocs: the error envelope in OpenAPI and Swagger UI served offline."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import energy_common.apidocs
import httpx
import pytest
from energy_common.apidocs import ERROR_DESCRIPTIONS, SWAGGER_UI_VERSION, error_responses, install_swagger_ui
from energy_common.config import Settings
from energy_common.exceptions import ConfigurationError, ResourceNotFoundError
from energy_common.middleware import setup_middleware
from fastapi import FastAPI

ASSETS = Path(energy_common.apidocs.__file__).parent / "swagger_ui"


def build_app() -> FastAPI:
    """A service documenting 401/404 on one route, 503 on all, with offline docs."""
    app = FastAPI(title="Meters", responses=error_responses(503))

    @app.get("/meters/{meter_id}", responses=error_responses(401, 404, 422))
    async def meter(meter_id: int) -> dict[str, int]:
        raise ResourceNotFoundError("Meter", meter_id)

    setup_middleware(app, Settings(service_name="t"))
    install_swagger_ui(app)
    return app


@pytest.fixture
async def client() -> Any:
    """A client for the app."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app()), base_url="http://t") as http:
        yield http


def test_error_responses_document_the_envelope() -> None:
    """Each status maps to the ErrorResponse model with its description; bad statuses are refused."""
    responses = error_responses(404, 429)
    assert set(responses) == {404, 429}
    assert responses[429]["description"] == ERROR_DESCRIPTIONS[429]
    assert responses[404]["model"].__name__ == "ErrorResponse"
    assert error_responses(418)[418]["description"] == "I'm a Teapot."
    for bad in (200, 302, 600, True, "404"):
        with pytest.raises(ValueError, match="HTTP error statuses"):
            error_responses(bad)  # type: ignore[arg-type]


async def test_the_schema_shows_the_envelope_under_each_error_status(client: httpx.AsyncClient) -> None:
    """The route's and the app's statuses are documented with the envelope; 422 is ours, not FastAPI's."""
    schema = (await client.get("/openapi.json")).json()
    responses = schema["paths"]["/meters/{meter_id}"]["get"]["responses"]
    assert set(responses) == {"200", "401", "404", "422", "503"}
    for status in ("401", "404", "422", "503"):
        ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/ErrorResponse"
    envelope = schema["components"]["schemas"]["ErrorResponse"]
    assert {"success", "error", "request_id", "timestamp"} <= set(envelope["properties"])
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    # And the API really answers with that envelope.
    body = (await client.get("/meters/7")).json()
    assert body["success"] is False
    assert body["error"]["error_code"] == "RESOURCE_NOT_FOUND"


async def test_docs_load_every_asset_from_the_service(client: httpx.AsyncClient) -> None:
    """/docs references only its own assets (no CDN), and each is served with its type."""
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "cdn." not in page.text
    assert "https://" not in page.text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert sorted(urls) == [
        "/docs/assets/favicon-32x32.png",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
    ]
    assert "url: '/openapi.json'" in page.text
    assert "'self'" in page.headers["content-security-policy"]
    for url, kind in zip(sorted(urls), ("image/png", "text/javascript", "text/css"), strict=True):
        asset = await client.get(url)
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith(kind)
        assert asset.content == (ASSETS / url.rsplit("/", 1)[1]).read_bytes()
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200
    assert (await client.get("/docs/assets/VENDORED.md")).status_code == 404  # only the listed files
    missing = await client.get("/docs/assets/..%2F_swagger.py")
    assert missing.status_code == 404
    assert missing.json()["error"]["error_code"] == "RESOURCE_NOT_FOUND"
    assert (await client.get("/redoc")).status_code == 404  # ReDoc is not bundled


def test_the_vendored_assets_match_their_recorded_sums() -> None:
    """The files are the ones VENDORED.md names, byte for byte, with their license."""
    notes = (ASSETS / "VENDORED.md").read_text()
    assert f"`swagger-ui-dist` {SWAGGER_UI_VERSION}" in notes
    for name, digest in re.findall(r"\| (\S+\.(?:js|css|png)) \| ([0-9a-f]{64}) \|", notes):
        assert hashlib.sha256((ASSETS / name).read_bytes()).hexdigest() == digest
    assert "Apache License" in (ASSETS / "LICENSE").read_text()


def test_install_swagger_ui_refuses_an_app_without_a_schema() -> None:
    """Without openapi_url there is nothing to show: a ConfigurationError says so."""
    with pytest.raises(ConfigurationError, match="openapi_url"):
        install_swagger_ui(FastAPI(openapi_url=None))
