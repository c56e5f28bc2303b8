"""The meter service's API at its edges: what a newcomer meets in the first hour (issue 18, part 3).

One service on the embedded defaults (SQLite in the test's directory, amqtt in-process,
two simulated meters) behind an in-process HTTP client whose every response is checked
against the OpenAPI schema: a status the schema does not document for that operation
fails the test, whichever test sent the request.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("meter_service")

import httpx
from energy_common.logging import capture_logs
from meter_service import MeterSettings, create_app
from meter_service._runtime import private_data_file

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # amqtt's own legacy config

PASSWORD = "correct horse battery staple"


@dataclass
class Api:
    """The running service, its client and its OpenAPI schema."""

    client: httpx.AsyncClient
    schema: dict[str, Any]
    settings: MeterSettings
    headers: dict[str, str]
    unchecked: list[str]

    @property
    def meter(self) -> str:
        """The first simulated meter."""
        return f"{self.settings.simulator_id_prefix}001"


def _operation(schema: dict[str, Any], method: str, path: str) -> tuple[str, dict[str, Any]] | None:
    """The schema's operation for a concrete path, with its template."""
    for template, operations in schema["paths"].items():
        pattern = "^" + re.sub(r"\\{[^}]+\\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in operations:
            return template, operations[method.lower()]
    return None


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    """The service with two meters; every response is checked against the schema."""
    settings = MeterSettings(
        tracing_exporter="off",
        admin_password=PASSWORD,
        jwt_secret_key=secrets.token_urlsafe(32),
        simulator_enabled=True,
        simulator_meters=2,
        simulator_interval=0.2,
        command_timeout=5,
        data_dir=tmp_path / "data",
    )
    app = create_app(settings)
    schema: dict[str, Any] = app.openapi()
    unchecked: list[str] = []

    async def conforms(response: httpx.Response) -> None:
        request = response.request
        found = _operation(schema, request.method, request.url.path)
        if found is None:
            unchecked.append(f"{request.method} {request.url.path}")
            return
        template, operation = found
        documented = set(operation["responses"])
        assert str(response.status_code) in documented, (
            f"{request.method} {template} answered {response.status_code}, documented: {sorted(documented)}"
        )

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://meter.test", timeout=30, event_hooks={"response": [conforms]}
        ) as client:
            token = await client.post("/api/v1/auth/token", json={"username": "admin", "password": PASSWORD})
            headers = {"Authorization": f"Bearer {token.json()['data']['access_token']}"}
            yield Api(client, schema, settings, headers, unchecked)


def test_every_operation_documents_its_error_statuses_with_the_envelope(tmp_path: Path) -> None:
    """Each API operation lists the errors it can answer, each with the error envelope."""
    schema = create_app(MeterSettings(tracing_exporter="off", data_dir=tmp_path)).openapi()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    operations = 0
    for template, methods in schema["paths"].items():
        for method, operation in methods.items():
            responses = operation["responses"]
            errors = {status for status in responses if status >= "400"}
            for status in errors:
                ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorResponse", (method, template, status)
            if not template.startswith("/api/"):
                continue
            operations += 1
            assert {"422", "500", "503"} <= errors, (method, template)
            if template != "/api/v1/auth/token":
                assert {"401", "403"} <= errors, (method, template)
            if "{device_id}" in template:
                assert "404" in errors, (method, template)
            if method in ("post", "put", "patch"):  # a body that is not UTF-8 JSON is a 400
                assert {"400", "413", "429"} <= errors, (method, template)
    assert operations >= 9
    commands = schema["paths"]["/api/v1/devices/{device_id}/commands"]["post"]["responses"]
    assert {"409", "502", "504"} <= set(commands)


async def test_an_unknown_command_is_the_clients_error_logged_without_a_trace(api: Api) -> None:
    """The meter's UNKNOWN_COMMAND answers 422 COMMAND_REJECTED with the meter's code, logged at INFO."""
    with capture_logs("INFO") as logs:
        response = await api.client.post(
            f"/api/v1/devices/{api.meter}/commands", json={"command": "self_destruct"}, headers=api.headers
        )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["error_code"] == "COMMAND_REJECTED"
    assert error["details"]["error"]["code"] == "UNKNOWN_COMMAND"
    assert error["details"]["command"] == "self_destruct"
    assert "self_destruct" in error["message"]
    assert [line["message"] for line in logs if line["logger"] == "meter_service"][-1].endswith(": failed")
    assert any(" 422 " in line["message"] for line in logs if line["logger"] == "energy.request")
    assert not [line for line in logs if "exception" in line or line["level"] in ("WARNING", "ERROR", "CRITICAL")]
    ok = await api.client.post(
        f"/api/v1/devices/{api.meter}/commands", json={"command": "read_meter", "timeout": 5}, headers=api.headers
    )
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(
    "body",
    [
        b'{"command": "read_meter", "timeout": 5e-324}',
        b'{"command": "read_meter", "timeout": 0.05}',
        b'{"command": "read_meter", "timeout": 61}',
        b'{"command": "read_meter", "timeout": NaN}',
        b'{"command": "read_meter", "timeout": Infinity}',
        b'{"command": "read_meter", "params": {"level": NaN}}',
        b'{"command": "read_meter", "params": {"deep": [[{"x": -Infinity}]]}}',
    ],
)
async def test_command_timeouts_and_params_are_bounded(api: Api, body: bytes) -> None:
    """Timeouts outside 0.1-60 s and non-finite numbers anywhere are refused with 422, never sent."""
    response = await api.client.post(
        f"/api/v1/devices/{api.meter}/commands",
        content=body,
        headers={**api.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["error_code"] == "VALIDATION_ERROR"


async def test_a_body_that_is_not_json_text_is_a_documented_400(api: Api) -> None:
    """Bytes that are not UTF-8 get FastAPI's 400 in the envelope, which the schema documents."""
    response = await api.client.post(
        "/api/v1/devices", content=b"\xff\xfe\x00", headers={**api.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["error_code"] == "BAD_REQUEST"


@pytest.mark.parametrize(
    "metadata",
    [
        b'{"level": NaN}',
        b'{"site": {"limits": [1, Infinity]}}',
        b'{"x": -Infinity}',
        b'{"a": ' * 20 + b"1" + b"}" * 20,
    ],
)
async def test_non_finite_metadata_is_refused(api: Api, metadata: bytes) -> None:
    """NaN or infinity in device metadata, or nesting past 16 levels, is a 422; nothing is registered."""
    body = b'{"device_id": "meter-nan", "metadata": ' + metadata + b"}"
    response = await api.client.post(
        "/api/v1/devices", content=body, headers={**api.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["errors"][0]["loc"][:2] == ["body", "metadata"]
    assert (await api.client.get("/api/v1/devices/meter-nan", headers=api.headers)).status_code == 404


async def test_finite_metadata_round_trips(api: Api) -> None:
    """Metadata with ordinary numbers is stored and read back unchanged."""
    metadata = {"site": "north", "limits": [1.5, 2, -3e10], "nested": {"ok": True, "none": None}}
    created = await api.client.post(
        "/api/v1/devices", json={"device_id": "meter-ok", "metadata": metadata}, headers=api.headers
    )
    assert created.status_code == 201, created.text
    read = await api.client.get("/api/v1/devices/meter-ok", headers=api.headers)
    assert read.json()["data"]["metadata"] == metadata


@pytest.mark.parametrize("suffix", ["", "/status", "/readings", "/summary"])
async def test_an_unknown_meter_is_404_on_every_route_after_the_auth_checks(api: Api, suffix: str) -> None:
    """GET /devices/meter-999 and its readings and summary agree: 404, but 401 without a token."""
    path = f"/api/v1/devices/meter-999{suffix}"
    response = await api.client.get(path, headers=api.headers)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["error_code"] == "RESOURCE_NOT_FOUND"
    assert (await api.client.get(path)).status_code == 401
    known = await api.client.get(f"/api/v1/devices/{api.meter}{suffix}", headers=api.headers)
    assert known.status_code == 200, known.text


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/api/v1/devices", "GET, POST"),
        ("PUT", "/api/v1/devices", "GET, POST"),
        ("PATCH", "/api/v1/devices/meter-001", "DELETE, GET"),
        ("GET", "/api/v1/devices/meter-001/commands", "POST"),
        ("GET", "/api/v1/auth/token", "POST"),
    ],
)
async def test_405_lists_every_method_of_the_path(api: Api, method: str, path: str, allow: str) -> None:
    """A wrong method gets 405 with an Allow header naming every method the path serves."""
    response = await api.client.request(method, path, headers=api.headers)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json()["error"]["error_code"] == "METHOD_NOT_ALLOWED"


async def test_docs_work_offline_and_are_counted_under_their_routes(api: Api) -> None:
    """/docs loads Swagger UI from the service itself; /docs and /openapi.json are not 'unmatched' metrics."""
    page = await api.client.get("/docs")
    assert page.status_code == 200
    assert "https://" not in page.text
    assert (await api.client.get("/docs/assets/swagger-ui-bundle.js")).status_code == 200
    assert (await api.client.get("/openapi.json")).status_code == 200
    metrics = (await api.client.get("/metrics")).text
    counted = [line for line in metrics.splitlines() if line.startswith("meter_http_requests_total{")]
    assert any('route="/docs"' in line for line in counted), counted
    assert any('route="/openapi.json"' in line for line in counted), counted
    assert not any('route="unmatched"' in line for line in counted), counted


async def test_the_ingestion_counters(api: Api) -> None:
    """GET /api/v1/ingestion counts stored readings (rising while the meters publish); it needs a token."""
    first = (await api.client.get("/api/v1/ingestion", headers=api.headers)).json()["data"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        later = (await api.client.get("/api/v1/ingestion", headers=api.headers)).json()["data"]
        if later["stored"] > first["stored"]:
            break
    assert later["stored"] > first["stored"]
    assert later["received"] >= later["stored"]
    assert (await api.client.get("/api/v1/ingestion")).status_code == 401


async def test_the_embedded_database_is_private(api: Api) -> None:
    """The data directory is 0700 and the SQLite file (with the admin's hash) 0600."""
    directory = api.settings.resolved_data_dir
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_private_data_file_narrows_what_an_older_version_left(tmp_path: Path) -> None:
    """An existing 0755 directory and 0644 file of ours are narrowed to 0700 and 0600."""
    directory = tmp_path / "old"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    database = directory / "meter.db"
    database.write_bytes(b"")
    database.chmod(0o644)
    assert private_data_file(database) == database
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    fresh = private_data_file(tmp_path / "a" / "b" / "meter.db")
    assert stat.S_IMODE(fresh.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


async def test_the_dashboard_is_served_with_its_own_strict_csp(api: Api) -> None:
    """/ leads to /dashboard/, whose page and two files come from the package under a 'self'-only CSP."""
    root = await api.client.get("/")
    assert root.status_code == 307
    assert root.headers["location"] == "/dashboard/"
    page = await api.client.get("/dashboard/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "https://" not in page.text
    for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        asset = await api.client.get(f"/dashboard/{name}")
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith(kind)
        assert "https://" not in asset.text
    assert (await api.client.get("/dashboard/index.html")).status_code == 404
    assert (await api.client.get("/dashboard/_app.py")).status_code == 404
