"""Tests for energy_common.health.router (FastAPI) and HTTPHealthCheck against a real uvicorn server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from energy_common.exceptions import ConfigurationError
from energy_common.health import CallableHealthCheck, HealthChecker, HealthStatus
from energy_common.health.http import HTTPHealthCheck
from energy_common.health.router import health_router
from fastapi import FastAPI, Request


class Switch:
    """Dependencies whose health the test flips."""

    def __init__(self) -> None:
        self.db_ok = True
        self.cache_ok = True
        self.db_calls = 0

    async def db(self) -> dict[str, Any]:
        self.db_calls += 1
        if not self.db_ok:
            raise ConnectionError("db at postgresql://app:pw-123@db/x refused")
        return {"pool": 2}

    async def cache(self) -> None:
        if not self.cache_ok:
            raise ConnectionError("cache down")


def build_app(switch: Switch, **options: Any) -> FastAPI:
    """A service with a critical database check and a non-critical cache check."""
    checker = HealthChecker("svc")
    checker.add_check(CallableHealthCheck("db", switch.db))
    checker.add_check(CallableHealthCheck("cache", switch.cache, critical=False))
    app = FastAPI()
    app.include_router(health_router(checker, **options))
    return app


@pytest.fixture
def switch() -> Switch:
    """Healthy dependencies to start with."""
    return Switch()


@pytest.fixture
async def client(switch: Switch) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process ASGI client of the service."""
    transport = httpx.ASGITransport(app=build_app(switch))
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        yield http


def assert_envelope(body: dict[str, Any], success: bool) -> None:
    """The standard envelope keys are all there."""
    assert {"success", "data", "message", "meta", "timestamp", "request_id"} <= body.keys()
    assert body["success"] is success


async def test_live_never_touches_dependencies(client: httpx.AsyncClient, switch: Switch) -> None:
    """/health/live answers 200 even when the database is down, without calling it."""
    switch.db_ok = False
    response = await client.get("/health/live")
    assert response.status_code == 200
    body = response.json()
    assert_envelope(body, True)
    assert body["data"]["status"] == "alive"
    assert switch.db_calls == 0
    assert response.headers["cache-control"] == "no-store"


async def test_ready_runs_critical_checks_only(client: httpx.AsyncClient, switch: Switch) -> None:
    """/health/ready is 200 while critical checks pass, even with a non-critical one failing."""
    switch.cache_ok = False
    response = await client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert_envelope(body, True)
    assert list(body["data"]["checks"]) == ["db"]
    assert switch.db_calls == 1


async def test_ready_is_503_when_a_critical_check_fails(client: httpx.AsyncClient, switch: Switch) -> None:
    """/health/ready answers 503 in the error envelope naming the failed check."""
    switch.db_ok = False
    response = await client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert_envelope(body, False)
    assert body["error"]["error_code"] == "SERVICE_UNAVAILABLE"
    assert "db" in body["error"]["message"]
    assert body["error"]["details"]["health"]["checks"]["db"] == {"status": "unhealthy"}


@pytest.mark.parametrize(
    ("healthy_deps", "code", "status"),
    [((True, True), 200, "healthy"), ((True, False), 200, "degraded"), ((False, True), 503, "unhealthy")],
)
async def test_health_reports_details(
    client: httpx.AsyncClient, switch: Switch, healthy_deps: tuple[bool, bool], code: int, status: str
) -> None:
    """/health shows every check with details; unhealthy is 503, degraded still 200; no secret leaks."""
    switch.db_ok, switch.cache_ok = healthy_deps
    response = await client.get("/health")
    assert response.status_code == code
    body = response.json()
    assert_envelope(body, code == 200)
    report = body["data"] if code == 200 else body["error"]["details"]["health"]
    assert report["status"] == status
    assert set(report["checks"]) == {"db", "cache"}
    assert "duration_ms" in report["checks"]["db"]
    assert "pw-123" not in response.text


@pytest.mark.parametrize("policy", [False, "callable-false", "async-callable-false"])
async def test_health_details_can_be_restricted(switch: Switch, policy: Any) -> None:
    """With details restricted, /health shows only each check's status."""

    def deny(request: Request) -> bool:
        return request.headers.get("x-admin") == "yes"

    async def deny_async(request: Request) -> bool:
        return deny(request)

    details = {"callable-false": deny, "async-callable-false": deny_async}.get(policy, policy)
    transport = httpx.ASGITransport(app=build_app(switch, details=details))
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        restricted = (await http.get("/health")).json()["data"]
        assert restricted["checks"]["db"] == {"status": "healthy"}
        if callable(details):
            full = (await http.get("/health", headers={"x-admin": "yes"})).json()["data"]
            assert full["checks"]["db"]["details"] == {"pool": 2}


class Server:
    """The service served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, app: FastAPI) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, name="health-svc")

    def __enter__(self) -> Server:
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return self
            time.sleep(0.025)
        raise RuntimeError("uvicorn did not start within 5 s")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Server, Switch]]:
    """The service over real HTTP, with its switch."""
    switch = Switch()
    with Server(build_app(switch)) as server:
        yield server, switch


async def test_http_health_check_against_real_server(served: tuple[Server, Switch]) -> None:
    """HTTPHealthCheck passes on /health/live and fails on a 503 /health/ready."""
    server, switch = served
    checker = HealthChecker("gateway")
    checker.add_check(HTTPHealthCheck(f"{server.url}/health/live", name="live"))
    checker.add_check(HTTPHealthCheck(f"{server.url}/health/ready", name="ready", critical=True))
    switch.db_ok = False
    try:
        report = await checker.run_all_checks()
    finally:
        switch.db_ok = True
    by_name = {r.name: r for r in report.checks}
    assert by_name["live"].status is HealthStatus.HEALTHY
    assert by_name["live"].details == {"status_code": 200}
    assert by_name["ready"].status is HealthStatus.UNHEALTHY
    assert "503" in (by_name["ready"].error or "")
    assert report.status is HealthStatus.UNHEALTHY


async def test_http_health_check_with_shared_client_and_refused_port(served: tuple[Server, Switch]) -> None:
    """A shared httpx client works; a closed port is unhealthy; the URL's password never shows."""
    server, _ = served
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with httpx.AsyncClient() as shared:
        checker = HealthChecker("gateway", default_timeout=2)
        checker.add_check(HTTPHealthCheck(f"{server.url}/health/live", client=shared))
        checker.add_check(HTTPHealthCheck(f"http://u:pw-999@127.0.0.1:{port}/x", name="gone", expected_status=[200]))
        report = await checker.run_all_checks()
    assert [r.status for r in report.checks] == [HealthStatus.HEALTHY, HealthStatus.UNHEALTHY]
    assert report.checks[0].name == "http:127.0.0.1"
    assert "pw-999" not in str(report.to_dict())


@pytest.mark.parametrize("url", ["ftp://host/x", "/relative", "http://"])
def test_http_health_check_refuses_bad_urls(url: str) -> None:
    """Only absolute http(s) URLs are accepted."""
    with pytest.raises(ConfigurationError):
        HTTPHealthCheck(url)
