"""Tests for energy_common.http_client.ServiceClient against real uvicorn servers on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
from energy_common.context import correlation_scope
from energy_common.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    ConflictError,
    EnergyError,
    ExternalServiceError,
    RateLimitExceededError,
    ResourceNotFoundError,
    ServiceUnavailableError,
    ValidationError,
)
from energy_common.health import HealthChecker, HealthStatus
from energy_common.http_client import CircuitBreakerHealthCheck, CircuitState, RetryPolicy, ServiceClient
from energy_common.responses import APIResponse, ErrorResponse
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route


class PeerState:
    """What the peer server saw: hits per key and arrival times."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.arrivals: defaultdict[str, list[float]] = defaultdict(list)

    def hit(self, key: str) -> int:
        self.hits[key] += 1
        self.arrivals[key].append(time.monotonic())
        return self.hits[key]


def build_app(state: PeerState) -> Starlette:
    """The peer: a small ASGI app with well-behaved and misbehaving endpoints."""

    async def user(request: Request) -> JSONResponse:
        return JSONResponse(APIResponse.success(data={"id": request.path_params["uid"]}, message="ok").to_dict())

    async def create_user(request: Request) -> JSONResponse:
        return JSONResponse(APIResponse.success(data=await request.json()).to_dict(), status_code=201)

    async def echo(request: Request) -> JSONResponse:
        state.hit("echo")
        body = {
            "method": request.method,
            "headers": dict(request.headers),
            "query": request.url.query,
            "path": request.url.path,
            "body": (await request.body()).decode(),
        }
        return JSONResponse(body)

    async def status(request: Request) -> Response:
        code = int(request.path_params["code"])
        state.hit(f"status-{code}")
        error = ErrorResponse.build(code, f"REMOTE_{code}", f"remote says {code}", {"field": "x"})
        headers = {}
        if "retry_after" in request.query_params:
            headers["Retry-After"] = request.query_params["retry_after"]
        return JSONResponse(error.to_dict(), status_code=code, headers=headers)

    async def flaky(request: Request) -> Response:
        key = request.path_params["key"]
        attempt = state.hit(key)
        fails = int(request.query_params.get("fail", "1"))
        if attempt <= fails:
            code = int(request.query_params.get("status", "503"))
            headers = (
                {"Retry-After": request.query_params["retry_after"]} if "retry_after" in request.query_params else {}
            )
            body = ErrorResponse.build(code, "FLAKY", "try again").to_dict()
            return JSONResponse(body, status_code=code, headers=headers)
        return JSONResponse(
            APIResponse.success(data={"attempts": attempt, "key": request.headers.get("idempotency-key")}).to_dict()
        )

    async def slow(request: Request) -> JSONResponse:
        await asyncio.sleep(float(request.query_params["delay"]))
        return JSONResponse({"slow": True})

    async def drip(request: Request) -> StreamingResponse:
        interval = float(request.query_params["interval"])

        async def chunks() -> AsyncIterator[bytes]:
            yield b'["'
            for _ in range(400):
                await asyncio.sleep(interval)
                yield b"x"
            yield b'"]'

        return StreamingResponse(chunks(), media_type="application/json")

    async def huge(request: Request) -> Response:
        size = int(request.query_params["size"])
        if request.query_params.get("mode") == "streamed":

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(size // 1024):
                    yield b"x" * 1024

            return StreamingResponse(chunks(), media_type="application/json")
        return Response(b'"' + b"x" * size + b'"', media_type="application/json")

    async def redirect(request: Request) -> RedirectResponse:
        state.hit("redirect")
        return RedirectResponse(request.query_params["to"], status_code=int(request.query_params.get("code", "302")))

    async def loop(request: Request) -> RedirectResponse:
        return RedirectResponse("/loop", status_code=302)

    async def text(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    async def empty(request: Request) -> Response:
        return Response(status_code=204)

    return Starlette(
        routes=[
            Route("/users/{uid}", user),
            Route("/users", create_user, methods=["POST"]),
            Route("/echo", echo, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            Route("/api/v1/echo", echo, methods=["GET"]),
            Route("/status/{code}", status, methods=["GET", "POST"]),
            Route("/flaky/{key}", flaky, methods=["GET", "POST", "PUT", "DELETE"]),
            Route("/slow", slow),
            Route("/drip", drip),
            Route("/huge", huge),
            Route("/redirect", redirect, methods=["GET", "POST"]),
            Route("/loop", loop),
            Route("/text", text),
            Route("/empty", empty, methods=["DELETE"]),
        ]
    )


class Peer:
    """A uvicorn server in a thread of its own, on a socket bound to a free loopback port."""

    def __init__(self) -> None:
        self.state = PeerState()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            build_app(self.state),
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name=f"peer-{self.port}"
        )

    def __enter__(self) -> Peer:
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
def peer() -> Iterator[Peer]:
    """The main peer server."""
    with Peer() as server:
        yield server


@pytest.fixture(scope="module")
def other_peer() -> Iterator[Peer]:
    """A second server on another port: another origin for redirect tests."""
    with Peer() as server:
        yield server


@pytest.fixture
def key(request: pytest.FixtureRequest) -> str:
    """A hit-counter key unique to this test."""
    return request.node.name


def client_for(peer: Peer, **options: Any) -> ServiceClient:
    """A client with fast retries so the tests stay quick."""
    options.setdefault("retry", RetryPolicy(retries=options.pop("retries", 2), backoff_base=0.01, backoff_max=0.05))
    return ServiceClient(peer.url, service_name="peer", **options)


async def test_seed_example_runs_as_written(peer: Peer) -> None:
    """The seed README example works: get() returns the envelope's data, post() sends JSON."""
    async with ServiceClient(peer.url) as client:
        user_data = await client.get("/users/123")
        result = await client.post("/users", {"name": "John", "email": "john@example.com"})
    assert user_data == {"id": "123"}
    assert result == {"name": "John", "email": "john@example.com"}
    assert client.closed


async def test_unwrap_switch_returns_whole_envelope(peer: Peer) -> None:
    """With unwrap_envelope=False (client-wide or per call) the whole envelope comes back."""
    async with client_for(peer, unwrap_envelope=False) as client:
        body = await client.get("/users/7")
        assert body["success"] is True
        assert body["data"] == {"id": "7"}
        assert await client.get("/users/7", unwrap_envelope=True) == {"id": "7"}


async def test_base_url_path_and_params_are_merged(peer: Peer) -> None:
    """Paths are relative to base_url's own path and query parameters are encoded."""
    async with ServiceClient(f"{peer.url}/api/v1") as client:
        body = await client.get("echo", params={"a": "1 2", "b": ["x", "y"]})
    assert body["path"] == "/api/v1/echo"
    assert body["query"] == "a=1+2&b=x&b=y"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_idempotent_calls_retry_until_success(peer: Peer, key: str, method: str) -> None:
    """An idempotent call to an endpoint failing twice with 503 succeeds on the third attempt."""
    async with client_for(peer, retries=2) as client:
        data = await client.request(method, f"/flaky/{key}", params={"fail": 2})
    assert data["attempts"] == 3
    assert peer.state.hits[key] == 3


async def test_retries_exhausted_raise_the_last_answer(peer: Peer, key: str) -> None:
    """When every attempt fails, the last 503 becomes ExternalServiceError after retries+1 hits."""
    async with client_for(peer, retries=1) as client:
        with pytest.raises(ExternalServiceError) as info:
            await client.get(f"/flaky/{key}", params={"fail": 10})
    assert peer.state.hits[key] == 2
    assert info.value.details["remote_error_code"] == "FLAKY"


async def test_plain_post_is_not_retried(peer: Peer, key: str) -> None:
    """A POST without an idempotency key is sent once, even when the answer is retryable."""
    async with client_for(peer, retries=3) as client:
        with pytest.raises(ExternalServiceError):
            await client.post(f"/flaky/{key}", {"x": 1}, params={"fail": 1})
    assert peer.state.hits[key] == 1


async def test_post_with_idempotency_key_is_retried(peer: Peer, key: str) -> None:
    """A POST carrying an idempotency key is retried, and the key reaches the peer."""
    async with client_for(peer, retries=2) as client:
        data = await client.post(f"/flaky/{key}", {"x": 1}, params={"fail": 1}, idempotency_key="op-42")
    assert data == {"attempts": 2, "key": "op-42"}
    assert peer.state.hits[key] == 2


async def test_429_retry_after_is_honoured(peer: Peer, key: str) -> None:
    """A 429 with Retry-After is retried no sooner than the peer asked."""
    async with client_for(peer, retries=1) as client:
        data = await client.get(f"/flaky/{key}", params={"fail": 1, "status": 429, "retry_after": "0.3"})
    assert data["attempts"] == 2
    first, second = peer.state.arrivals[key]
    assert second - first >= 0.25  # lower bound only: the client must not come back early


async def test_429_beyond_deadline_raises_rate_limit_at_once(peer: Peer, key: str) -> None:
    """A Retry-After longer than the remaining deadline ends the retries with RateLimitExceededError."""
    async with client_for(peer, retries=3, deadline=2.0) as client:
        with pytest.raises(RateLimitExceededError) as info:
            await client.get(f"/flaky/{key}", params={"fail": 5, "status": 429, "retry_after": "20"})
    assert info.value.retry_after == 20
    assert info.value.headers["Retry-After"] == "20"
    assert peer.state.hits[key] == 1


async def test_slow_endpoint_hits_the_deadline(peer: Peer) -> None:
    """A peer slower than the deadline gives ServiceUnavailableError naming the deadline."""
    async with client_for(peer, deadline=0.3, retries=0) as client:
        with pytest.raises(ServiceUnavailableError) as info:
            await client.get("/slow", params={"delay": 3})
    assert info.value.details["deadline"] == 0.3
    assert info.value.details["service"] == "peer"
    assert client.breaker.snapshot()["recent_failures"] == 1  # a missed deadline counts against the peer


async def test_dripping_body_hits_the_deadline(peer: Peer) -> None:
    """A body dripped byte by byte (each within the read timeout) still stops at the deadline."""
    async with client_for(peer, deadline=0.5, timeout=5.0, retries=0) as client:
        with pytest.raises(ServiceUnavailableError) as info:
            await client.get("/drip", params={"interval": 0.02})
    assert "deadline" in info.value.message


async def test_connection_refused_is_retried_then_unavailable() -> None:
    """Nothing listening: every attempt fails to connect and the caller gets ServiceUnavailableError."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    policy = RetryPolicy(retries=2, backoff_base=0.01, backoff_max=0.02)
    async with ServiceClient(f"http://127.0.0.1:{port}", service_name="gone", retry=policy) as client:
        with pytest.raises(ServiceUnavailableError) as info:
            await client.get("/anything")
    assert info.value.details["attempts"] == 3
    assert info.value.details["service"] == "gone"


async def test_cross_origin_redirect_drops_credentials(peer: Peer, other_peer: Peer) -> None:
    """Redirected to another origin, the peer never sees Authorization, cookies or custom auth headers."""
    target = f"{other_peer.url}/echo"
    secrets = {"X-API-Key": "k-1", "Cookie": "session=abc", "X-Auth-Token": "t-1"}
    async with client_for(peer, token_provider=lambda: "tok-1", headers=secrets) as client:
        with correlation_scope("cid-redirect"):
            body = await client.get("/redirect", params={"to": target})
    received = body["headers"]
    for name in ("authorization", "x-api-key", "cookie", "x-auth-token"):
        assert name not in received
    assert received["x-request-id"] == "cid-redirect"
    assert other_peer.state.hits["echo"] >= 1


async def test_same_origin_redirect_keeps_credentials(peer: Peer) -> None:
    """A redirect within the peer's origin keeps the bearer token."""
    async with client_for(peer, token_provider=lambda: "tok-2") as client:
        body = await client.get("/redirect", params={"to": "/echo"})
    assert body["headers"]["authorization"] == "Bearer tok-2"


async def test_303_turns_post_into_get_without_body(peer: Peer) -> None:
    """A 303 after a POST is followed with a GET and no body."""
    async with client_for(peer) as client:
        body = await client.post("/redirect", {"a": 1}, params={"to": "/echo", "code": 303})
    assert body["method"] == "GET"
    assert body["body"] == ""


async def test_redirect_loop_is_cut(peer: Peer) -> None:
    """A redirect loop ends with ExternalServiceError after max_redirects hops."""
    async with client_for(peer, max_redirects=3) as client:
        with pytest.raises(ExternalServiceError, match="more than 3"):
            await client.get("/loop")


@pytest.mark.parametrize("mode", ["declared", "streamed"])
async def test_huge_body_is_refused(peer: Peer, mode: str) -> None:
    """A body over max_response_bytes (with or without Content-Length) is refused."""
    async with client_for(peer, max_response_bytes=64 * 1024) as client:
        with pytest.raises(ExternalServiceError) as info:
            await client.get("/huge", params={"size": 1024 * 1024, "mode": mode})
        assert info.value.details["max_response_bytes"] == 64 * 1024
        assert await client.get("/huge", params={"size": 1000}) == "x" * 1000


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, ValidationError),
        (422, ValidationError),
        (401, AuthenticationError),
        (403, AuthorizationError),
        (404, ResourceNotFoundError),
        (409, ConflictError),
        (429, RateLimitExceededError),
        (418, ExternalServiceError),
        (500, ExternalServiceError),
        (502, ExternalServiceError),
        (503, ExternalServiceError),
        (504, ExternalServiceError),
    ],
)
async def test_error_mapping(peer: Peer, status: int, error_type: type[EnergyError]) -> None:
    """Each error status maps to its exception, with the remote error code and service in details."""
    async with client_for(peer, retries=0) as client:
        with pytest.raises(error_type) as info:
            await client.get(f"/status/{status}")
    details = info.value.details
    assert type(info.value) is error_type
    assert details["remote_error_code"] == f"REMOTE_{status}"
    assert details["service"] == "peer"
    assert details["status_code"] == status
    assert details["remote_message"] == f"remote says {status}"


async def test_non_json_body_is_an_external_error(peer: Peer) -> None:
    """A 200 whose body is not JSON is reported, not returned half-decoded."""
    async with client_for(peer) as client:
        with pytest.raises(ExternalServiceError, match="not JSON"):
            await client.get("/text")


async def test_empty_body_returns_none(peer: Peer) -> None:
    """A 204 answer decodes to None."""
    async with client_for(peer) as client:
        assert await client.delete("/empty") is None


async def test_breaker_opens_fails_fast_and_recovers(peer: Peer) -> None:
    """After N failures the circuit opens (no more hits), then a trial call closes it again."""
    client = client_for(peer, retries=0, failure_threshold=2, recovery_time=0.3)
    check = CircuitBreakerHealthCheck(client)
    checker = HealthChecker("svc")
    checker.add_check(check)
    async with client:
        for _ in range(2):
            with pytest.raises(ExternalServiceError):
                await client.get("/status/500")
        assert client.breaker.state is CircuitState.OPEN
        before = peer.state.hits["status-500"]
        with pytest.raises(ServiceUnavailableError) as info:
            await client.get("/status/500")
        assert info.value.details["circuit"] == "open"
        assert peer.state.hits["status-500"] == before
        assert (await checker.run_all_checks()).status is HealthStatus.DEGRADED  # non-critical check failed
        for _ in range(100):
            if client.breaker.state is CircuitState.HALF_OPEN:
                break
            await asyncio.sleep(0.02)
        assert client.breaker.state is CircuitState.HALF_OPEN
        assert await client.get("/users/1") == {"id": "1"}
        assert client.breaker.state is CircuitState.CLOSED
        assert (await checker.run_all_checks()).status is HealthStatus.HEALTHY


async def test_context_and_token_are_propagated(peer: Peer) -> None:
    """Every call carries the correlation id, the W3C traceparent and the bearer token."""
    span = NonRecordingSpan(
        SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=False, trace_flags=TraceFlags(1))
    )

    async def token() -> str:
        return "async-tok"

    async with client_for(peer, token_provider=token) as client:
        with correlation_scope("cid-7"), trace.use_span(span):
            headers = (await client.get("/echo"))["headers"]
    assert headers["x-request-id"] == "cid-7"
    assert headers["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert headers["authorization"] == "Bearer async-tok"


async def test_client_is_safe_to_share_across_tasks(peer: Peer) -> None:
    """Many concurrent calls on one client all succeed through its single pool."""
    async with client_for(peer) as client:
        results = await asyncio.gather(*(client.get(f"/users/{i}") for i in range(30)))
    assert [r["id"] for r in results] == [str(i) for i in range(30)]


@pytest.mark.parametrize("base_url", ["ftp://host", "not a url", "http://user:pw@host"])
def test_bad_base_url_is_refused(base_url: str) -> None:
    """Only absolute http(s) URLs without credentials are accepted."""
    with pytest.raises(ConfigurationError) as info:
        ServiceClient(base_url)
    assert "pw" not in info.value.message


@pytest.mark.parametrize("option", [{"deadline": 0}, {"timeout": -1}, {"max_response_bytes": 0}, {"retries": -1}])
def test_bad_options_are_refused(option: dict[str, Any]) -> None:
    """Non-positive timeouts, limits and negative retries are configuration errors."""
    with pytest.raises(ConfigurationError):
        ServiceClient("http://127.0.0.1:1", **option)


async def test_absolute_paths_and_closed_clients_are_refused(peer: Peer) -> None:
    """A call cannot leave base_url's host, nor run on a closed client."""
    client = client_for(peer)
    with pytest.raises(ConfigurationError, match="relative"):
        await client.get("http://elsewhere.example/steal")
    await client.aclose()
    with pytest.raises(ConfigurationError, match="closed"):
        await client.get("/users/1")


@pytest.mark.parametrize("body", [{"x": object()}, {"x": float("nan")}])
async def test_body_that_is_not_json_is_refused(peer: Peer, body: dict[str, Any]) -> None:
    """A body json cannot encode strictly is a ValidationError, and nothing is sent."""
    before = peer.state.hits["echo"]
    async with client_for(peer) as client:
        with pytest.raises(ValidationError, match="cannot be sent as JSON"):
            await client.post("/echo", body)
    assert peer.state.hits["echo"] == before


async def test_stuck_token_provider_is_bounded_by_the_deadline(peer: Peer) -> None:
    """A token provider that never returns cannot hang the call beyond its deadline."""

    async def stuck() -> str:
        await asyncio.Event().wait()
        return "never"

    async with client_for(peer, token_provider=stuck, deadline=0.2) as client:
        with pytest.raises(ServiceUnavailableError, match="deadline"):
            await client.get("/users/1")
        assert client.breaker.snapshot()["recent_failures"] == 0
