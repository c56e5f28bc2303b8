"""Tests for energy_common.middleware.install_exception_handlers: every error mapping.

Each test goes through a real FastAPI app, with the full stack (``setup_middleware``) and,
where it matters, with the handlers alone.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pydantic
import pytest
from energy_common import exceptions as energy_exceptions
from energy_common.config import Settings
from energy_common.exceptions import EnergyError, RateLimitExceededError, ResourceNotFoundError
from energy_common.logging import capture_logs
from energy_common.middleware import install_exception_handlers, sanitize_errors, setup_middleware
from fastapi import APIRouter, FastAPI, HTTPException
from pydantic import BaseModel, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

ENERGY_ERRORS = sorted(
    (
        cls
        for _, cls in inspect.getmembers(energy_exceptions, inspect.isclass)
        if issubclass(cls, EnergyError) and cls not in {ResourceNotFoundError, RateLimitExceededError}
    ),
    key=lambda cls: cls.__name__,
)
SECRET = "hunter2-Secret-Value"


class Signup(BaseModel):
    """A body whose secret fields must never be echoed back."""

    email: str
    password: str
    api_key: str
    token: str
    client_secret: str
    authorization: str
    age: int

    @field_validator("password")
    @classmethod
    def strong(cls, value: str) -> str:
        """Reject weak passwords with a message that (wrongly) quotes the value."""
        if len(value) < 30:
            raise ValueError(f"password {value!r} is too weak")
        return value


def build_app(*, full_stack: bool = True, problem_json: bool = False) -> FastAPI:
    """A service whose endpoints raise each kind of error."""
    app = FastAPI()
    classes = {cls.__name__: cls for cls in ENERGY_ERRORS}

    @app.get("/energy/{name}")
    async def energy(name: str) -> None:
        exc = classes[name](f"{name} happened", {"hint": "h"})
        exc.headers["X-Custom"] = "yes"
        raise exc

    @app.get("/users/{user_id}")
    async def user(user_id: str) -> None:
        raise ResourceNotFoundError("User", user_id)

    @app.get("/limited")
    async def limited(retry_after: float = 2.5, preset: bool = False) -> None:
        exc = RateLimitExceededError(retry_after=retry_after)
        if preset:
            exc.headers["Retry-After"] = "120"
        raise exc

    @app.get("/http/{status}")
    async def http(status: int, dict_detail: bool = False) -> None:
        detail: Any = {"reason": "r"} if dict_detail else "custom detail"
        raise HTTPException(status, detail=detail, headers={"X-From": "handler"})

    @app.get("/starlette-http")
    async def starlette_http() -> None:
        raise StarletteHTTPException(418, headers={"X-Tea": "1"})

    @app.post("/signup")
    async def signup(body: Signup) -> dict[str, str]:
        return {"email": body.email}

    @app.get("/manual-validation")
    async def manual() -> None:
        Signup.model_validate({"email": "a", "password": SECRET})

    items = APIRouter(prefix="/items")

    @items.get("")
    async def list_items() -> list[str]:
        return []

    @items.post("")
    async def add_item() -> None:
        return None

    @items.delete("/{item_id}")
    async def delete_item(item_id: str) -> None:
        return None

    app.include_router(items)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError(f"db password={SECRET} at 10.0.0.5")

    if full_stack:
        setup_middleware(app, Settings(service_name="t", problem_json=problem_json))
    else:
        install_exception_handlers(app, problem_json=problem_json)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """A client for the app with the full stack."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app()), base_url="http://t") as http:
        yield http


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Check the error envelope shape and return its error member."""
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"success", "data", "error", "message", "meta", "timestamp", "request_id"}
    assert body["success"] is False
    assert body["data"] is None
    assert body["error"]["error_code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    return dict(body["error"])


@pytest.mark.parametrize("cls", ENERGY_ERRORS, ids=lambda cls: cls.__name__)
async def test_energy_errors(client: httpx.AsyncClient, cls: type[EnergyError]) -> None:
    """Every EnergyError maps to its status, code, message, details and extra headers."""
    response = await client.get(f"/energy/{cls.__name__}")
    error = assert_envelope(response, cls.status_code, cls.error_code)
    assert error["message"] == f"{cls.__name__} happened"
    assert error["details"] == {"hint": "h"}
    assert response.headers["x-custom"] == "yes"


async def test_not_found_error(client: httpx.AsyncClient) -> None:
    """ResourceNotFoundError names the resource and id."""
    error = assert_envelope(await client.get("/users/u-1"), 404, "RESOURCE_NOT_FOUND")
    assert error["message"] == "User 'u-1' was not found."


@pytest.mark.parametrize(("query", "header"), [("", "3"), ("?retry_after=0.2", "1"), ("?preset=true", "120")])
async def test_rate_limit_sets_retry_after(client: httpx.AsyncClient, query: str, header: str) -> None:
    """429 carries Retry-After in whole seconds rounded up, unless the exception set one."""
    response = await client.get(f"/limited{query}")
    assert_envelope(response, 429, "RATE_LIMIT_EXCEEDED")
    assert response.headers.get_list("retry-after") == [header]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "BAD_REQUEST"),
        (401, "AUTHENTICATION_ERROR"),
        (403, "AUTHORIZATION_ERROR"),
        (409, "CONFLICT"),
        (503, "SERVICE_UNAVAILABLE"),
        (451, "HTTP_451"),
    ],
)
async def test_http_exception(client: httpx.AsyncClient, status: int, code: str) -> None:
    """HTTPException keeps its status, detail and headers."""
    response = await client.get(f"/http/{status}")
    error = assert_envelope(response, status, code)
    assert error["message"] == "custom detail"
    assert response.headers["x-from"] == "handler"


async def test_http_exception_with_structured_detail(client: httpx.AsyncClient) -> None:
    """A non-string detail goes into details; the message is the status phrase."""
    error = assert_envelope(await client.get("/http/409?dict_detail=true"), 409, "CONFLICT")
    assert error["details"] == {"detail": {"reason": "r"}}
    assert error["message"] == "Conflict."


async def test_starlette_http_exception(client: httpx.AsyncClient) -> None:
    """Starlette's own HTTPException is mapped the same way."""
    response = await client.get("/starlette-http")
    assert_envelope(response, 418, "HTTP_418")
    assert response.headers["x-tea"] == "1"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [("GET", "/nope", 404, "RESOURCE_NOT_FOUND"), ("DELETE", "/boom", 405, "METHOD_NOT_ALLOWED")],
)
async def test_routing_errors(client: httpx.AsyncClient, method: str, path: str, status: int, code: str) -> None:
    """Unknown paths and wrong methods get the envelope too."""
    assert_envelope(await client.request(method, path), status, code)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/items", "GET, POST"),
        ("PUT", "/items", "GET, POST"),
        ("HEAD", "/items", "GET, POST"),
        ("GET", "/items/7", "DELETE"),
        ("PATCH", "/users/1", "GET"),
    ],
)
async def test_method_not_allowed_lists_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    """A 405 names every method some route serves at that path, not only the first route's."""
    response = await client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow


async def test_request_validation_error(client: httpx.AsyncClient) -> None:
    """Body validation fails with 422 VALIDATION_ERROR and per-field loc/msg/type."""
    response = await client.post("/signup", json={"email": "a@b.c", "age": "old"})
    error = assert_envelope(response, 422, "VALIDATION_ERROR")
    locs = {tuple(item["loc"]) for item in error["details"]["errors"]}
    assert ("body", "age") in locs
    assert ("body", "password") in locs
    for item in error["details"]["errors"]:
        assert set(item) <= {"loc", "msg", "type", "ctx"}
        assert "input" not in item


async def test_invalid_json_body(client: httpx.AsyncClient) -> None:
    """A malformed JSON body is a 422 validation error, not a 500."""
    response = await client.post("/signup", content=b"{not json", headers={"content-type": "application/json"})
    assert_envelope(response, 422, "VALIDATION_ERROR")


@pytest.mark.parametrize("field", ["password", "api_key", "token", "client_secret", "authorization"])
async def test_validation_never_echoes_secrets(client: httpx.AsyncClient, field: str) -> None:
    """A rejected sensitive field's submitted value never appears in the response."""
    body = {
        "email": "a@b.c",
        "password": SECRET,
        "api_key": 1,
        "token": 2,
        "client_secret": 3,
        "authorization": 4,
        "age": 1,
    }
    body[field] = {"nested": SECRET} if field != "password" else SECRET
    response = await client.post("/signup", json=body)
    assert response.status_code == 422
    assert SECRET not in response.text
    assert "hunter2" not in response.text
    assert field in response.text


async def test_pydantic_error_in_endpoint(client: httpx.AsyncClient) -> None:
    """A pydantic ValidationError raised by the endpoint is a 422 without the inputs."""
    response = await client.get("/manual-validation")
    assert_envelope(response, 422, "VALIDATION_ERROR")
    assert SECRET not in response.text


async def test_unhandled_exception(client: httpx.AsyncClient) -> None:
    """An unhandled exception is a generic 500: no message, no traceback; logged with its traceback."""
    with capture_logs() as logs:
        response = await client.get("/boom")
    error = assert_envelope(response, 500, "INTERNAL_ERROR")
    assert "internal error" in error["message"].lower()
    for leak in (SECRET, "10.0.0.5", "Traceback", "RuntimeError", "test_middleware_errors"):
        assert leak not in response.text
    (record,) = [line for line in logs if line["logger"] == "energy.errors"]
    assert record["level"] == "ERROR"
    assert "Traceback" in record["exception"]
    assert "RuntimeError" in record["exception"]
    assert SECRET not in str(record)
    assert record["correlation_id"] == response.headers["x-request-id"]


async def test_handlers_alone_map_errors() -> None:
    """Without the middleware stack, the handlers still send the envelope (Starlette re-raises 500s)."""
    app = build_app(full_stack=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        with capture_logs():
            boom = await http.get("/boom")
        missing = await http.get("/users/x")
    assert boom.status_code == 500
    assert boom.json()["error"]["error_code"] == "INTERNAL_ERROR"
    assert SECRET not in boom.text
    assert missing.json()["error"]["error_code"] == "RESOURCE_NOT_FOUND"


@pytest.mark.parametrize(("path", "status"), [("/users/7", 404), ("/boom", 500), ("/limited", 429), ("/nope", 404)])
async def test_problem_json(path: str, status: int) -> None:
    """With problem_json the errors are RFC 9457 problem details."""
    app = build_app(problem_json=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        with capture_logs():
            response = await http.get(path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert problem["type"] == "about:blank"
    assert problem["title"]
    assert problem["detail"]
    assert problem["instance"] == path
    assert problem["request_id"] == response.headers["x-request-id"]
    assert "error_code" in problem


def test_sanitize_errors_drops_inputs_and_scrubs_messages() -> None:
    """Inputs are never kept; for sensitive locations the value is scrubbed from msg and ctx dropped."""
    errors = sanitize_errors(
        [
            {
                "loc": ("body", "password"),
                "msg": f"bad {SECRET}",
                "type": "value_error",
                "input": SECRET,
                "ctx": {"error": SECRET},
            },
            {
                "loc": ("query", "limit"),
                "msg": "too big",
                "type": "less_than_equal",
                "input": 500,
                "ctx": {"le": 100, "error": ValueError("x")},
            },
        ]
    )
    assert errors == [
        {"loc": ["body", "password"], "msg": "bad [REDACTED]", "type": "value_error"},
        {"loc": ["query", "limit"], "msg": "too big", "type": "less_than_equal", "ctx": {"le": 100}},
    ]


def test_sanitize_errors_is_bounded() -> None:
    """A flood of errors is cut to a bounded list."""
    flood = [{"loc": ("body", i), "msg": "bad", "type": "t"} for i in range(500)]
    assert len(sanitize_errors(flood)) == 50


def test_pydantic_error_type_is_handled() -> None:
    """The handler is registered for pydantic.ValidationError itself."""
    app = build_app(full_stack=False)
    assert pydantic.ValidationError in app.exception_handlers


async def test_failure_after_the_response_started() -> None:
    """An exception mid-stream cannot become an envelope: it is logged and re-raised to the server."""
    from collections.abc import AsyncIterator as Chunks

    from starlette.responses import StreamingResponse

    app = FastAPI()

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def body() -> Chunks[bytes]:
            yield b"first chunk"
            raise RuntimeError("broke mid-stream")

        return StreamingResponse(body())

    setup_middleware(app, Settings(service_name="t"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        with capture_logs() as logs, pytest.raises(RuntimeError, match="broke mid-stream"):
            await http.get("/stream")
    errors = [line for line in logs if line["logger"] == "energy.errors"]
    assert len(errors) == 1
    assert "RuntimeError" in errors[0]["exception"]
