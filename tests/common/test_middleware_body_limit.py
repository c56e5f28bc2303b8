"""Tests for the body size limit: 413 in the envelope, with and without Content-Length."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from energy_common.config import Settings
from energy_common.exceptions import ConfigurationError
from energy_common.middleware import BodySizeLimitMiddleware, setup_middleware
from fastapi import FastAPI, Request
from pydantic import BaseModel
from starlette.responses import PlainTextResponse

LIMIT = 1000


class Reading(BaseModel):
    """A JSON body."""

    values: list[int]


def build_app(*, problem_json: bool = False) -> tuple[FastAPI, list[str]]:
    """An app with body-reading endpoints; returns it and the list of endpoints that ran."""
    app = FastAPI()
    ran: list[str] = []

    @app.post("/model")
    async def model(body: Reading) -> dict[str, int]:
        ran.append("model")
        return {"count": len(body.values)}

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        ran.append("raw")
        return {"size": len(await request.body())}

    @app.post("/swallow")
    async def swallow(request: Request) -> PlainTextResponse:
        ran.append("swallow")
        try:
            async for _ in request.stream():
                pass
        except Exception:  # noqa: BLE001 - the endpoint hides the error; the 413 must still win
            return PlainTextResponse("fine", status_code=200)
        return PlainTextResponse("fine")

    setup_middleware(app, Settings(service_name="t", max_body_size=LIMIT, problem_json=problem_json))
    return app, ran


async def chunks(total: int, size: int = 100) -> AsyncIterator[bytes]:
    """A chunked body of ``total`` bytes (no Content-Length)."""
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b"1" * piece


def client_for(app: FastAPI) -> httpx.AsyncClient:
    """An in-process client."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def assert_413(response: httpx.Response) -> None:
    """The response is the standard 413 envelope."""
    assert response.status_code == 413
    body = response.json()
    assert body["success"] is False
    assert body["error"]["error_code"] == "PAYLOAD_TOO_LARGE"
    assert body["error"]["details"] == {"max_body_size": LIMIT}
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-request-id"] == body["request_id"]


@pytest.mark.parametrize("path", ["/model", "/raw", "/swallow"])
async def test_content_length_over_limit_is_refused_before_the_app(path: str) -> None:
    """A declared body over the limit is answered 413 without running the endpoint."""
    app, ran = build_app()
    async with client_for(app) as http:
        response = await http.post(path, content=b"1" * (LIMIT + 1))
    assert_413(response)
    assert ran == []


@pytest.mark.parametrize("path", ["/model", "/raw", "/swallow"])
async def test_chunked_body_over_limit(path: str) -> None:
    """A chunked body is counted as it is read; past the limit the answer is 413, whatever the endpoint does."""
    app, _ = build_app()
    async with client_for(app) as http:
        response = await http.post(path, content=chunks(LIMIT * 3), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert_413(response)


@pytest.mark.parametrize("size", [0, 10, LIMIT])
async def test_bodies_within_the_limit_pass(size: int) -> None:
    """Bodies up to the limit, chunked or not, reach the endpoint intact."""
    app, ran = build_app()
    async with client_for(app) as http:
        declared = await http.post("/raw", content=b"1" * size)
        chunked = await http.post("/raw", content=chunks(size))
    assert declared.json() == {"size": size}
    assert chunked.json() == {"size": size}
    assert ran == ["raw", "raw"]


async def test_json_model_within_limit() -> None:
    """A JSON body under the limit is parsed normally."""
    app, _ = build_app()
    async with client_for(app) as http:
        response = await http.post("/model", json={"values": [1, 2, 3]})
    assert response.json() == {"count": 3}


async def test_413_as_problem_json() -> None:
    """With problem_json the 413 is RFC 9457 problem details."""
    app, _ = build_app(problem_json=True)
    async with client_for(app) as http:
        response = await http.post("/raw", content=chunks(LIMIT * 2))
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["error_code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize("limit", [0, -1])
def test_limit_must_be_positive(limit: int) -> None:
    """A non-positive limit is a configuration error."""

    async def app(scope: object, receive: object, send: object) -> None:
        """Unused."""

    with pytest.raises(ConfigurationError, match="MAX_BODY_SIZE"):
        BodySizeLimitMiddleware(app, max_body_size=limit)  # type: ignore[arg-type]
