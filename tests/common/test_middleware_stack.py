"""Tests for energy_common.middleware.setup_middleware through a real FastAPI app.

Covers the order of the stack, security headers on every kind of response, correlation
ids, the request log, CORS and non-HTTP scopes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from energy_common.config import Settings
from energy_common.context import get_correlation_id
from energy_common.exceptions import ConfigurationError
from energy_common.logging import capture_logs
from energy_common.middleware import (
    DOCS_CSP,
    BodySizeLimitMiddleware,
    CorrelationIdMiddleware,
    CORSMiddleware,
    ErrorEnvelopeMiddleware,
    RequestLogMiddleware,
    SecurityHeadersMiddleware,
    setup_middleware,
    validate_cors,
)
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ORIGIN = "https://app.example.com"
SECURITY_HEADERS = {
    "strict-transport-security": "max-age=31536000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "x-permitted-cross-domain-policies": "none",
    "cache-control": "no-store",
}


class Login(BaseModel):
    """A request body with a secret field."""

    username: str
    password: str


def build_app(settings: Settings | None = None, **kwargs: Any) -> FastAPI:
    """A small service with the standard stack."""
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> dict[str, Any]:
        return {"ok": True, "cid": get_correlation_id()}

    @app.get("/users/{user_id}")
    async def user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    meters = APIRouter(prefix="/meters")

    @meters.get("/{meter_id}")
    async def meter(meter_id: str) -> dict[str, str]:
        return {"id": meter_id}

    app.include_router(meters, prefix="/api/v1")

    @app.post("/login")
    async def login(body: Login) -> dict[str, str]:
        return {"user": body.username}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("internal detail")

    @app.get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> dict[str, str]:
        return {}

    @app.get("/cached")
    async def cached() -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse({}, headers={"Cache-Control": "max-age=60", "X-Frame-Options": "SAMEORIGIN"})

    setup_middleware(app, settings or Settings(service_name="test", cors_origins=[ORIGIN], max_body_size=64), **kwargs)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client for the standard app."""
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def test_stack_order() -> None:
    """The stack is installed outermost first in the documented order, instrumentation after the correlation id."""

    class Tracing:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await self.app(scope, receive, send)

    class Metrics(Tracing):
        pass

    app = build_app(instrumentation=[Middleware(Tracing), Middleware(Metrics)])
    order = [entry.cls for entry in app.user_middleware]
    assert order == [
        CorrelationIdMiddleware,
        Tracing,
        Metrics,
        RequestLogMiddleware,
        SecurityHeadersMiddleware,
        CORSMiddleware,
        BodySizeLimitMiddleware,
        ErrorEnvelopeMiddleware,
    ]


def test_cors_is_left_out_without_origins() -> None:
    """Without configured origins no CORS middleware is installed (browsers then refuse cross-origin)."""
    app = build_app(Settings(service_name="test"))
    assert CORSMiddleware not in [entry.cls for entry in app.user_middleware]


def test_setup_twice_is_refused() -> None:
    """A second setup_middleware would double every header and log line, so it is refused."""
    app = build_app()
    with pytest.raises(ConfigurationError, match="already"):
        setup_middleware(app, Settings(service_name="test"))


async def test_setup_after_start_is_refused() -> None:
    """Middleware cannot be added once the app has handled a request."""
    app = FastAPI()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        await http.get("/nothing")
    with pytest.raises(ConfigurationError, match="before"):
        setup_middleware(app, Settings(service_name="test"))


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/ok", {}, 200),
        ("GET", "/missing", {}, 404),
        ("POST", "/login", {"content": b"x" * 100, "headers": {"content-type": "application/json"}}, 413),
        ("POST", "/login", {"json": {"username": "ann"}}, 422),
        ("GET", "/boom", {}, 500),
        ("DELETE", "/ok", {}, 405),
    ],
)
async def test_security_headers_on_every_response(
    client: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    """Every response, errors included, carries the full security header set and the request id."""
    response = await client.request(method, path, **kwargs)
    assert response.status_code == status
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, name
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert response.headers["cross-origin-embedder-policy"] == "require-corp"
    assert "geolocation=()" in response.headers["permissions-policy"]
    assert response.headers["x-request-id"]
    if status >= 400:
        assert response.json()["success"] is False


async def test_docs_get_a_docs_friendly_csp(client: httpx.AsyncClient) -> None:
    """Swagger UI gets a CSP that lets it load its assets, and no COEP."""
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-security-policy"] == DOCS_CSP
    assert "cross-origin-embedder-policy" not in response.headers
    assert response.headers["x-frame-options"] == "DENY"


async def test_app_headers_win(client: httpx.AsyncClient) -> None:
    """Headers the app set itself are not overridden nor duplicated."""
    response = await client.get("/cached")
    assert response.headers.get_list("cache-control") == ["max-age=60"]
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]


def test_hsts_is_configurable() -> None:
    """HSTS can be tuned (preload, no subdomains) or switched off."""
    plain = SecurityHeadersMiddleware(_noop, hsts_max_age=600, hsts_include_subdomains=False, hsts_preload=True)
    assert (b"strict-transport-security", b"max-age=600; preload") in plain._api
    off = SecurityHeadersMiddleware(_noop, hsts=False)
    assert all(name != b"strict-transport-security" for name, _ in off._api)


async def _noop(scope: Scope, receive: Receive, send: Send) -> None:
    """An ASGI app that does nothing."""


@pytest.mark.parametrize("header", ["X-Request-ID", "X-Correlation-ID"])
async def test_sane_incoming_id_is_adopted(client: httpx.AsyncClient, header: str) -> None:
    """A sane incoming id is used for the request, exposed to the app and echoed as X-Request-ID."""
    response = await client.get("/ok", headers={header: "abc-123.DEF:9"})
    assert response.headers["x-request-id"] == "abc-123.DEF:9"
    assert response.json()["cid"] == "abc-123.DEF:9"
    assert get_correlation_id() is None


@pytest.mark.parametrize("value", ["", "has space", "a" * 129, "semi;colon", 'quote"d', "dévice", "../../etc"])
async def test_bad_incoming_id_is_replaced(client: httpx.AsyncClient, value: str) -> None:
    """An id that is too long or has unsafe characters is replaced by a fresh one."""
    response = await client.get("/ok", headers={"X-Request-ID": value.encode()})
    new_id = response.headers["x-request-id"]
    assert new_id != value
    assert len(new_id) == 32
    assert int(new_id, 16) >= 0
    assert response.json()["cid"] == new_id


async def test_each_request_gets_its_own_id(client: httpx.AsyncClient) -> None:
    """Generated ids differ between requests and only one X-Request-ID header is sent."""
    first = await client.get("/ok")
    second = await client.get("/ok")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert len(first.headers.get_list("x-request-id")) == 1


async def test_request_log_line(client: httpx.AsyncClient) -> None:
    """One structured line per request with method, route template, status, duration, client and id."""
    with capture_logs(logger="energy.request") as logs:
        response = await client.get("/users/42", headers={"X-Request-ID": "req-42"})
    (line,) = logs
    assert response.status_code == 200
    assert line["message"].startswith("GET /users/{user_id} 200 ")
    assert line["route"] == "/users/{user_id}"
    assert line["path"] == "/users/42"
    assert line["http_method"] == "GET"
    assert line["status_code"] == 200
    assert line["duration_ms"] >= 0
    assert line["client"] == "127.0.0.1"

    assert line["correlation_id"] == "req-42"
    assert line["level"] == "INFO"
    json.dumps(line)


async def test_request_log_route_keeps_router_prefixes(client: httpx.AsyncClient) -> None:
    """The logged route template includes the prefix given to include_router."""
    with capture_logs(logger="energy.request") as logs:
        await client.get("/api/v1/meters/m-7")
    (line,) = logs
    assert line["route"] == "/api/v1/meters/{meter_id}"


@pytest.mark.parametrize(("path", "status", "level"), [("/boom", 500, "ERROR"), ("/nowhere", 404, "INFO")])
async def test_request_log_levels(client: httpx.AsyncClient, path: str, status: int, level: str) -> None:
    """Server errors are logged at ERROR; unmatched paths are logged with their raw path."""
    with capture_logs(logger="energy.request") as logs:
        await client.get(path)
    (line,) = logs
    assert (line["status_code"], line["level"], line["path"]) == (status, level, path)


@pytest.mark.parametrize("path", ["/health/live", "/metrics"])
async def test_request_log_exclusions(client: httpx.AsyncClient, path: str) -> None:
    """Probes and scrapes are not logged by default."""
    with capture_logs(logger="energy.request") as logs:
        assert (await client.get(path)).status_code == 200
    assert logs == []


async def test_request_log_exclusions_are_configurable() -> None:
    """REQUEST_LOG_EXCLUDE replaces the defaults."""
    app = build_app(Settings(service_name="t", request_log_exclude=["/ok"]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        with capture_logs(logger="energy.request") as logs:
            await http.get("/ok")
            await http.get("/metrics")
    assert [line["path"] for line in logs] == ["/metrics"]


async def test_cors_allows_the_configured_origin(client: httpx.AsyncClient) -> None:
    """A preflight from an allowed origin succeeds; simple responses expose X-Request-ID."""
    preflight = await client.options("/ok", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert preflight.headers["x-content-type-options"] == "nosniff"
    simple = await client.get("/ok", headers={"Origin": ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    assert "X-Request-ID" in simple.headers["access-control-expose-headers"]


async def test_cors_refuses_other_origins(client: httpx.AsyncClient) -> None:
    """A preflight from any other origin is refused and gets no allow-origin header."""
    preflight = await client.options(
        "/ok", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers


@pytest.mark.parametrize(
    ("origins", "regex", "credentials", "match"),
    [
        (["*"], None, True, "CORS_ALLOW_CREDENTIALS"),
        (["*", ORIGIN], None, False, "mixes"),
        (["null"], None, True, "null"),
        (["https://app.example.com/"], None, False, "not an origin"),
        (["app.example.com"], None, False, "not an origin"),
        (["https://app.example.com/path"], None, False, "not an origin"),
        ([], ".*", True, "arbitrary"),
        ([], r"https://.*", True, "arbitrary"),
        ([], "(", False, "compile"),
    ],
)
def test_unsafe_cors_is_refused(origins: list[str], regex: str | None, credentials: bool, match: str) -> None:
    """Unsafe or never-matching CORS setups fail with a clear ConfigurationError."""
    with pytest.raises(ConfigurationError, match=match):
        validate_cors(origins, allow_origin_regex=regex, allow_credentials=credentials)
    with pytest.raises(ConfigurationError, match=match):
        CORSMiddleware(_noop, allow_origins=origins, allow_origin_regex=regex, allow_credentials=credentials)


@pytest.mark.parametrize(
    ("origins", "regex", "credentials"),
    [
        (["*"], None, False),
        ([ORIGIN, "http://localhost:3000", "http://[::1]:8080"], None, True),
        ([], r"https://([a-z0-9-]+\.)?example\.com", True),
    ],
)
def test_safe_cors_is_accepted(origins: list[str], regex: str | None, credentials: bool) -> None:
    """Explicit origins, anchored regexes and credential-less wildcards are fine."""
    validate_cors(origins, allow_origin_regex=regex, allow_credentials=credentials)


MIDDLEWARES: list[Callable[[ASGIApp], ASGIApp]] = [
    CorrelationIdMiddleware,
    RequestLogMiddleware,
    SecurityHeadersMiddleware,
    lambda app: CORSMiddleware(app, allow_origins=[ORIGIN]),
    BodySizeLimitMiddleware,
    ErrorEnvelopeMiddleware,
]


@pytest.mark.parametrize("factory", MIDDLEWARES)
@pytest.mark.parametrize("scope_type", ["lifespan", "websocket"])
async def test_non_http_scopes_pass_through(factory: Callable[[ASGIApp], ASGIApp], scope_type: str) -> None:
    """Every middleware hands non-HTTP scopes to the app untouched, with the original receive/send."""
    seen: list[tuple[Scope, Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, receive, send))

    async def receive() -> Message:
        return {"type": f"{scope_type}.disconnect"}

    async def send(message: Message) -> None:
        raise AssertionError("nothing should be sent")

    scope: Scope = {"type": scope_type, "path": "/ws", "headers": [], "state": {}}
    await factory(app)(scope, receive, send)
    assert seen == [(scope, receive, send)]


async def test_instrumentation_sees_the_correlation_id() -> None:
    """Instrumentation middleware runs inside the correlation id (so spans and metrics can use it)."""
    seen: list[str | None] = []

    class Probe:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(get_correlation_id())
            await self.app(scope, receive, send)

    app = build_app(instrumentation=[Middleware(Probe)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        await http.get("/ok", headers={"X-Request-ID": "probe-1"})
    assert seen == ["probe-1"]


def test_public_names() -> None:
    """The public surface of energy_common.middleware is pinned."""
    import energy_common.middleware as module

    assert set(module.__all__) == {
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
    }
