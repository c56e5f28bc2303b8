"""Tests for the broker auth endpoints: EMQX and mosquitto-go-auth contracts over HTTP (in-process ASGI)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

fastapi = pytest.importorskip("fastapi")  # the router needs the web extra
cache = pytest.importorskip("energy_common.cache")  # the rate limiter (energy-common[cache])

from energy_auth import DEFAULT_ACCESS_POLICY, PasswordHasher, TokenManager  # noqa: E402
from energy_auth.broker import (  # noqa: E402
    BrokerAuthenticator,
    client_id_is_device_id,
    issue_service_token,
    parse_username,
    service_username,
)
from energy_auth.broker.fastapi import broker_auth_router  # noqa: E402
from energy_auth.devices import DeviceCredentials, InMemoryDeviceCredentialStore, NewDeviceCredential  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from .conftest import Clock  # noqa: E402
from .test_auth_policy import DEFAULT_RULES  # noqa: E402

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


class Reply:
    """Status and body of one in-process HTTP exchange."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


async def call(
    app: Any,
    path: str,
    body: bytes = b"",
    content_type: str = JSON,
    *,
    method: str = "POST",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> Reply:
    """Send one request through the app's ASGI interface (as a broker's HTTP client would)."""
    path, _, query = path.partition("?")
    raw_headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    raw_headers += headers or []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": raw_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict[str, Any]] = []
    chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)] or [b""]

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return Reply(start["status"], b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))


def as_json(**fields: Any) -> bytes:
    """The JSON body a broker sends."""
    return json.dumps(fields).encode()


class Platform:
    """The policy, device credentials, service tokens, the authenticator and the app serving it."""

    def __init__(self, hasher: PasswordHasher, clock: Clock, *, attempts: int = 30) -> None:
        self.clock = clock
        self.credentials = DeviceCredentials(
            InMemoryDeviceCredentialStore(), hasher=hasher, roles=DEFAULT_ACCESS_POLICY.device_roles, clock=clock
        )
        self.tokens = TokenManager("k" * 16 + "Q9x7Vb2mN4pL6sT8wY1zR3eU5iO0aS2d", audience="mqtt", clock=clock)
        self.limiter = cache.RateLimitCache(cache.MemoryBackend())
        self.authenticator = BrokerAuthenticator(
            DEFAULT_ACCESS_POLICY, self.credentials, tokens=self.tokens, rate_limiter=self.limiter, attempts=attempts
        )
        self.app = FastAPI()
        self.app.include_router(broker_auth_router(self.authenticator), prefix="/mqtt")

    async def emqx_authn(self, username: Any, password: Any, clientid: Any = "c1") -> dict[str, Any]:
        reply = await call(
            self.app, "/mqtt/emqx/authn", as_json(username=username, password=password, clientid=clientid)
        )
        assert reply.status == 200  # EMQX: anything else would mean "ignore"
        result: dict[str, Any] = reply.json()
        return result

    async def go_auth_user(self, username: Any, password: Any, clientid: Any = "c1") -> int:
        reply = await call(
            self.app, "/mqtt/go-auth/user", as_json(username=username, password=password, clientid=clientid)
        )
        assert reply.json()["ok"] is (reply.status == 200)
        return reply.status


@pytest.fixture
async def platform(cheap_hasher: PasswordHasher, clock: Clock) -> AsyncIterator[Platform]:
    """A platform with meter m1 provisioned."""
    result = Platform(cheap_hasher, clock)
    yield result
    cheap_hasher.close()


@pytest.fixture
async def m1(platform: Platform) -> NewDeviceCredential:
    """Meter m1's freshly minted credential."""
    return await platform.credentials.provision("m1")


async def test_device_connects_with_its_secret_on_both_contracts(platform: Platform, m1: NewDeviceCredential) -> None:
    """The right secret is allowed (EMQX 200 allow, go-auth 200 ok); a wrong one denied (200 deny, 403)."""
    assert await platform.emqx_authn("m1", m1.secret) == {"result": "allow", "is_superuser": False}
    assert await platform.go_auth_user("m1", m1.secret) == 200
    assert (await platform.emqx_authn("m1", m1.secret[:-1] + "x"))["result"] == "deny"
    assert await platform.go_auth_user("m1", "wrong") == 403
    assert await platform.go_auth_user("ghost-meter-9", m1.secret) == 403


async def test_form_and_get_requests_are_read_too(platform: Platform, m1: NewDeviceCredential) -> None:
    """go-auth's form mode and a GET with a query string carry the same fields."""
    form = urlencode({"username": "m1", "password": m1.secret, "clientid": "m1"}).encode()
    assert (await call(platform.app, "/mqtt/go-auth/user", form, FORM)).status == 200
    query = urlencode({"username": "m1", "clientid": "m1", "topic": "devices/m1/telemetry", "acc": "2"})
    assert (await call(platform.app, f"/mqtt/go-auth/acl?{query}", method="GET")).status == 200


def _username(role: str, device_id: str | None) -> str:
    return device_id if role == "meter" and device_id else service_username("ingest-1")


BROKER_RULES = [rule for rule in DEFAULT_RULES if rule[0] in ("meter", "service")]


@pytest.mark.parametrize(("role", "action", "topic", "device_id", "client_id", "allowed"), BROKER_RULES)
async def test_every_default_rule_over_both_contracts(  # noqa: PLR0917 - one parameter per column of the rule table
    platform: Platform,
    m1: NewDeviceCredential,
    role: str,
    action: str,
    topic: str,
    device_id: str | None,
    client_id: str,
    allowed: bool,
) -> None:
    """Each rule of the default policy gives the same answer through EMQX authz and go-auth acl."""
    username = _username(role, device_id)
    acc = {"read": 1, "publish": 2, "subscribe": 4}.get(action)
    if acc is not None:
        body = as_json(username=username, clientid=client_id, topic=topic, acc=acc)
        reply = await call(platform.app, "/mqtt/go-auth/acl", body)
        assert reply.status == (200 if allowed else 403)
    if action != "read":  # EMQX asks for publish and subscribe only
        body = as_json(username=username, clientid=client_id, action=action, topic=topic)
        reply = await call(platform.app, "/mqtt/emqx/authz", body)
        assert reply.status == 200
        assert reply.json() == {"result": "allow" if allowed else "deny"}


async def test_go_auth_read_write_access_needs_both(platform: Platform, m1: NewDeviceCredential) -> None:
    """acc=3 (read+write) is allowed only where both are; unsubscribe (8) for known clients only."""
    acl = "/mqtt/go-auth/acl"
    assert (
        await call(platform.app, acl, as_json(username="m1", clientid="m1", topic="devices/m1/telemetry", acc=3))
    ).status == 403
    assert (
        await call(platform.app, acl, as_json(username="m1", clientid="m1", topic="devices/+/x", acc=8))
    ).status == 200
    assert (await call(platform.app, acl, as_json(username="a/b", clientid="m1", topic="x", acc=8))).status == 403
    assert (await call(platform.app, acl, as_json(username="m1", clientid="m1", topic="x", acc=16))).status == 403
    assert (await call(platform.app, "/mqtt/go-auth/superuser", as_json(username="m1"))).status == 403


HOSTILE_BODIES = [
    ("empty username", as_json(username="", password="x", clientid="c"), JSON),
    ("64 kB username", as_json(username="m" * 65536, password="x", clientid="c"), JSON),
    ("non-UTF-8 username (JSON)", b'{"username": "m\xff\xfe1", "password": "x", "clientid": "c"}', JSON),
    ("non-UTF-8 username (form)", b"username=m%FF1&password=x&clientid=c", FORM),
    ("lone surrogate", b'{"username": "m\\udcff", "password": "x", "clientid": "c"}', JSON),
    ("NUL in username", as_json(username="m1\x00", password="x", clientid="c"), JSON),
    ("wildcard username", as_json(username="devices/#", password="x", clientid="c"), JSON),
    ("service prefix only", as_json(username="svc:", password="x", clientid="c"), JSON),
    ("username not a string", as_json(username=17, password="x", clientid="c"), JSON),
    ("username a list", b'{"username": ["m1"], "password": "x"}', JSON),
    ("missing password", as_json(username="m1", clientid="c"), JSON),
    ("password a number", as_json(username="m1", password=1234), JSON),
    ("not JSON", b"{username: m1", JSON),
    ("JSON array", b'["m1", "x"]', JSON),
    ("duplicate form keys", b"username=m1&username=m2&password=x", FORM),
    ("multipart", b"--x\r\n", "multipart/form-data; boundary=x"),
    ("empty body", b"", JSON),
    ("deep JSON", b'{"username": ' + b"[" * 5000 + b"]" * 5000 + b"}", JSON),
    ("oversized deep JSON", b'{"username": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", JSON),
]


@pytest.mark.parametrize(("case", "body", "content_type"), HOSTILE_BODIES, ids=[c[0] for c in HOSTILE_BODIES])
async def test_hostile_requests_are_refused_cleanly(  # noqa: PLR0917 - fixtures plus the table's columns
    platform: Platform,
    m1: NewDeviceCredential,
    caplog: pytest.LogCaptureFixture,
    case: str,
    body: bytes,
    content_type: str,
) -> None:
    """Hostile usernames and bodies are refused on every route (EMQX 200 deny, go-auth 403), nothing crashes."""
    caplog.set_level(logging.DEBUG)
    for path in ("/mqtt/emqx/authn", "/mqtt/emqx/authz"):
        reply = await call(platform.app, path, body, content_type)
        assert (reply.status, reply.json()["result"]) == (200, "deny"), case
    for path in ("/mqtt/go-auth/user", "/mqtt/go-auth/acl"):
        assert (await call(platform.app, path, body, content_type)).status == 403, case
    assert m1.secret not in caplog.text
    assert all(len(record.getMessage()) < 1000 for record in caplog.records)  # no 64 kB username echoed
    assert platform.credentials.hashes_verified == 0


async def test_right_secret_for_a_hostile_username_is_refused(platform: Platform, m1: NewDeviceCredential) -> None:
    """Even the right secret does not help a username that is not exactly the device id."""
    for username in ("m1 ", "M1", "m1/", "+", "svc:m1"):
        assert (await platform.emqx_authn(username, m1.secret))["result"] == "deny"


async def test_no_secret_reaches_the_logs(
    platform: Platform, m1: NewDeviceCredential, caplog: pytest.LogCaptureFixture
) -> None:
    """Refusals are logged with a reason and a shortened username, never the password."""
    caplog.set_level(logging.DEBUG)
    await platform.emqx_authn("m1", m1.secret + "x")
    token = issue_service_token(platform.tokens, "ingest-1", role="viewer")
    await platform.emqx_authn(service_username("ingest-1"), token)
    assert "invalid_credentials" in caplog.text or "unknown" in caplog.text
    assert m1.secret not in caplog.text
    assert token not in caplog.text


async def test_rate_limit_per_device(cheap_hasher: PasswordHasher, clock: Clock) -> None:
    """After the allowed attempts a device is refused even with the right secret; other devices are not."""
    platform = Platform(cheap_hasher, clock, attempts=5)
    m1 = await platform.credentials.provision("m1")
    m2 = await platform.credentials.provision("m2")
    for _ in range(5):
        await platform.emqx_authn("m1", "wrong")
    assert (await platform.emqx_authn("m1", m1.secret))["result"] == "deny"
    assert platform.authenticator.stats["rate_limited"] == 1
    assert (await platform.emqx_authn("m2", m2.secret))["result"] == "allow"


async def test_service_tokens(platform: Platform, clock: Clock) -> None:
    """A service connects with a short-lived token for its own name and role; others are refused."""
    token = issue_service_token(platform.tokens, "ingest-1", ttl=timedelta(minutes=5))
    allowed = await platform.emqx_authn(service_username("ingest-1"), token, "ingest-1")
    assert allowed == {"result": "allow", "is_superuser": False, "expire_at": int(clock.now) + 300}
    assert await platform.go_auth_user("svc:service:ingest-1", token) == 200
    assert (await platform.emqx_authn(service_username("ingest-2"), token))["result"] == "deny"  # another sub
    viewer = issue_service_token(platform.tokens, "ingest-1", role="viewer")
    assert (await platform.emqx_authn(service_username("ingest-1"), viewer))["result"] == "deny"  # no service role
    assert (await platform.emqx_authn("svc:viewer:ingest-1", viewer))["result"] == "deny"  # a user role
    http_tokens = TokenManager("z" * 16 + "Q9x7Vb2mN4pL6sT8wY1zR3eU5iO0aS2d", audience="api", clock=clock)
    other = issue_service_token(http_tokens, "ingest-1")
    assert (await platform.emqx_authn(service_username("ingest-1"), other))["result"] == "deny"
    clock.advance(301 + platform.tokens.leeway)
    assert (await platform.emqx_authn(service_username("ingest-1"), token))["result"] == "deny"  # expired


async def test_revocation_over_the_endpoint(platform: Platform, m1: NewDeviceCredential) -> None:
    """A revoked device can neither reconnect nor publish on its still-open connection."""
    body = as_json(username="m1", clientid="m1", action="publish", topic="devices/m1/telemetry")
    assert (await platform.emqx_authn("m1", m1.secret))["result"] == "allow"
    assert (await call(platform.app, "/mqtt/emqx/authz", body)).json()["result"] == "allow"
    await platform.credentials.revoke("m1")
    assert (await platform.emqx_authn("m1", m1.secret))["result"] == "deny"
    assert (await call(platform.app, "/mqtt/emqx/authz", body)).json()["result"] == "deny"
    assert await platform.go_auth_user("m1", m1.secret) == 403


async def test_rotation_over_the_endpoint(platform: Platform, m1: NewDeviceCredential, clock: Clock) -> None:
    """A rotated secret works at once; the old one until the overlap window ends, then never."""
    new = await platform.credentials.rotate("m1", overlap=timedelta(minutes=10))
    assert (await platform.emqx_authn("m1", new.secret))["result"] == "allow"
    assert (await platform.emqx_authn("m1", m1.secret))["result"] == "allow"
    clock.advance(601)
    assert (await platform.emqx_authn("m1", m1.secret))["result"] == "deny"
    assert (await platform.emqx_authn("m1", new.secret))["result"] == "allow"


async def test_unavailable_store_fails_closed(platform: Platform, m1: NewDeviceCredential) -> None:
    """When the credential store fails, every decision is a refusal (EMQX: explicit deny, not ignore)."""
    from energy_common.exceptions import CacheConnectionError

    async def broken(device_id: str) -> None:
        raise CacheConnectionError("down")

    platform.credentials.store.get = broken  # type: ignore[method-assign]
    assert (await platform.emqx_authn("m1", m1.secret))["result"] == "deny"
    body = as_json(username="m1", clientid="m1", action="publish", topic="devices/m1/telemetry")
    assert (await call(platform.app, "/mqtt/emqx/authz", body)).json()["result"] == "deny"
    assert platform.authenticator.stats["unavailable"] == 1


async def test_oversized_body_is_refused_without_reading_it_whole(platform: Platform) -> None:
    """A body over the limit is refused (deny) after reading just past the limit."""
    body = as_json(username="m1", password="x" * 100_000)
    assert (await call(platform.app, "/mqtt/emqx/authn", body)).json() == {"result": "deny"}


async def test_client_id_rule(cheap_hasher: PasswordHasher, clock: Clock) -> None:
    """With client_id_is_device_id a device cannot connect under another client id (session takeover)."""
    platform = Platform(cheap_hasher, clock)
    platform.authenticator.client_id_rule = client_id_is_device_id
    m1 = await platform.credentials.provision("m1")
    assert (await platform.emqx_authn("m1", m1.secret, "m1"))["result"] == "allow"
    assert (await platform.emqx_authn("m1", m1.secret, "m2"))["result"] == "deny"
    assert (await platform.emqx_authn("m1", m1.secret, None))["result"] == "deny"
    assert platform.authenticator.stats["client_id_mismatch"] == 2


def test_usernames() -> None:
    """Device ids and ``svc:[role:]name`` parse; anything else is no username."""
    assert parse_username("m1").device_id == "m1"  # type: ignore[union-attr]
    assert parse_username("svc:commander:api-2").role == "commander"  # type: ignore[union-attr]
    for bad in ("svc:a:b:c", "svc::x", "svc:a b", None, "x" * 300):
        assert parse_username(bad) is None
    with pytest.raises(ValueError, match="service name"):
        service_username("a/b")


@pytest.mark.slow
async def test_thousand_concurrent_authentications_do_not_block_the_loop(clock: Clock) -> None:
    """1,000 simultaneous CONNECT checks (250 devices x 4 retries) are answered while the loop keeps ticking.

    argon2 runs in the hasher's threads (single flight per device+secret), so the loop lag
    stays far below what the hashes would cost if they ran on the loop.
    """
    hasher = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, max_workers=2)
    platform = Platform(hasher, clock, attempts=100)
    devices = [f"m{i}" for i in range(250)]
    secrets = {d: (await platform.credentials.provision(d)).secret for d in devices}
    record = await platform.credentials.store.get(devices[0])
    assert record is not None
    stored = record.secrets[0].secret_hash
    started = time.perf_counter()
    hasher.verify("x", stored)
    one_hash = time.perf_counter() - started  # measured now, so machine load scales both sides

    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        interval = 0.005
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(interval)
            lags.append(time.perf_counter() - before - interval)

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    results = await asyncio.gather(*(platform.emqx_authn(d, secrets[d]) for d in devices for _ in range(4)))
    stop.set()
    await tick
    hasher.close()
    assert [r["result"] for r in results] == ["allow"] * 1000
    assert platform.credentials.hashes_verified == 250
    on_loop_cost = 250 * one_hash  # what the loop would have been blocked for, hashing itself
    assert max(lags) < max(0.5, on_loop_cost / 2), (max(lags), on_loop_cost)


async def http_post(port: int, path: str, body: bytes, content_type: str = JSON) -> tuple[int, bytes]:
    """A raw HTTP/1.1 POST over a loopback socket (what a broker's HTTP client sends)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    status_line, _, rest = raw.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def test_endpoints_over_a_real_socket(platform: Platform, m1: NewDeviceCredential) -> None:
    """Served by uvicorn on loopback, both contracts answer, and hostile bodies are refused cleanly."""
    import socket

    uvicorn = pytest.importorskip("uvicorn")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(platform.app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.025)
        status, body = await http_post(
            port, "/mqtt/emqx/authn", as_json(username="m1", password=m1.secret, clientid="m1")
        )
        assert (status, json.loads(body)) == (200, {"result": "allow", "is_superuser": False})
        assert (await http_post(port, "/mqtt/go-auth/user", as_json(username="m1", password="bad")))[0] == 403
        huge = as_json(username="m" * 65536, password="x", clientid="c")
        status, body = await http_post(port, "/mqtt/emqx/authn", huge)
        assert (status, json.loads(body)) == (200, {"result": "deny"})
        assert (await http_post(port, "/mqtt/go-auth/user", b"username=m%FF&password=x", FORM))[0] == 403
        acl = as_json(username="m1", clientid="m1", topic="devices/m2/telemetry", acc=2)
        assert (await http_post(port, "/mqtt/go-auth/acl", acl))[0] == 403
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 10)
        sock.close()
