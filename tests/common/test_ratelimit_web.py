"""The FastAPI rate_limit dependency: RateLimit headers, 429 envelope with Retry-After, 503 fail-closed."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as redis_asyncio
from energy_common.cache import CacheBackend, MemoryBackend, RateLimitCache, RateLimitResult, RedisBackend
from energy_common.cache.web import rate_limit
from energy_common.exceptions import ConfigurationError
from energy_common.middleware import install_exception_handlers
from fastapi import Depends, FastAPI, Request
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> CacheBackend:
    """The in-memory backend, or Redis on the shared server."""
    if request.param == "memory":
        return MemoryBackend()
    return RedisBackend(request.getfixturevalue("redis_client"))


def _app(limiter: RateLimitCache | None) -> FastAPI:
    app = FastAPI()
    install_exception_handlers(app)
    if limiter is not None:
        app.state.rate_limiter = limiter

    @app.post("/login", dependencies=[Depends(rate_limit(2, 60))])
    async def login() -> dict[str, str]:
        return {"status": "ok"}

    async def user_key(request: Request) -> str:
        return request.headers.get("x-user", "anon")

    @app.get("/readings")
    async def readings(
        result: RateLimitResult = Depends(rate_limit(3, 60, key=user_key, failure_policy="open")),  # noqa: B008
    ) -> dict[str, Any]:
        return {"remaining": result.remaining, "degraded": result.degraded}

    return app


@pytest.fixture
async def client(backend: CacheBackend, redis_key_prefix: str) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process ASGI client for an app whose limiter lives under this test's prefix."""
    app = _app(RateLimitCache(backend, key_prefix=f"{redis_key_prefix}web"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http


async def test_headers_then_429_envelope(client: httpx.AsyncClient) -> None:
    """Allowed requests carry RateLimit headers; the one over the limit gets 429, Retry-After and the envelope."""
    first = await client.post("/login")
    assert first.status_code == 200
    assert first.headers["RateLimit-Limit"] == "2"
    assert first.headers["RateLimit-Remaining"] == "1"
    assert first.headers["RateLimit-Policy"] == "2;w=60"
    assert (await client.post("/login")).headers["RateLimit-Remaining"] == "0"
    denied = await client.post("/login")
    assert denied.status_code == 429
    assert 1 <= int(denied.headers["Retry-After"]) <= 60
    assert denied.headers["RateLimit-Remaining"] == "0"
    body = denied.json()
    assert body["success"] is False
    assert body["error"]["error_code"] == "RATE_LIMIT_EXCEEDED"
    assert body["error"]["details"]["retry_after"] == int(denied.headers["Retry-After"])


async def test_custom_key_limits_per_user(client: httpx.AsyncClient) -> None:
    """A key function limits each user separately and the dependency returns the result."""
    for expected in (2, 1, 0):
        response = await client.get("/readings", headers={"x-user": "alice"})
        assert response.json() == {"remaining": expected, "degraded": False}
    assert (await client.get("/readings", headers={"x-user": "alice"})).status_code == 429
    assert (await client.get("/readings", headers={"x-user": "bob"})).status_code == 200


async def test_backend_down_fail_closed_and_fail_open() -> None:
    """With Redis unreachable the default (closed) limit answers 503; the fail-open one lets requests through."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    dead = redis_asyncio.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    app = _app(RateLimitCache(dead))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            closed = await http.post("/login")
            assert closed.status_code == 503
            assert closed.headers["Retry-After"] == "1"
            assert closed.json()["error"]["error_code"] == "SERVICE_UNAVAILABLE"
            opened = await http.get("/readings")
            assert opened.status_code == 200
            assert opened.json()["degraded"] is True
    finally:
        await dead.aclose()


async def test_missing_limiter_is_a_configuration_error() -> None:
    """Without a limiter passed or on app.state the request fails as a configuration error (500)."""
    app = _app(None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        response = await http.post("/login")
    assert response.status_code == 500


@pytest.mark.parametrize(("limit", "window"), [(0, 60), (5, 0)])
def test_bad_dependency_arguments(limit: int, window: float) -> None:
    """rate_limit refuses a non-positive limit or window when the route is declared."""
    with pytest.raises(ConfigurationError):
        rate_limit(limit, window)
