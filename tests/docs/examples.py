"""Run one Python example of the documentation site, in a process of its own.

    python tests/docs/examples.py PAGE INDEX     run block INDEX (0-based) of docs/PAGE

``tests/docs/test_examples.py`` finds every fenced ``python`` block of the site (the
included READMEs too, expanded by ``scripts/docs_hooks.py`` exactly as the build does)
and runs each one here, against the real local services it was given in the environment
(``ENERGY_DOC_*``). A process per example keeps what examples do to process-wide state
(logging setup, the default metrics registry, the tracer provider, SQLAlchemy's
declarative ``Base``) away from the rest of the suite.

An example is a fragment of a reader's program: it may use names its surroundings
define (a Redis client, a running device) and placeholders (``...``, hosts such as
``redis:6379``). ``SETUPS`` says, per block (found by a line it contains), what those
are here: the names it needs, built from the real services, and the textual replacements
that point placeholders at them. Every replacement must still match, and every setup
must match one block, so an edited example fails until its setup is checked again. A
block with no setup runs exactly as written. Top-level ``return X`` (a route body) is
evaluated as ``X``; a top-level ``raise E`` is evaluated and ``E`` must be an exception.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib.util
import inspect
import json
import os
import re
import secrets
import sys
import threading
import types
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
#: A block made only of pymdownx.snippets lines shows a tested file (``docs/examples/``).
SNIPPET_LINE = re.compile(r"^\s*(--8<--.*|[\w./-]+\.py(:\w+)?)\s*$")


def load_file(path: Path, name: str) -> types.ModuleType:
    """Import a Python file that is not in a package (a script, an example) as module ``name``, once."""
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return module


def hooks() -> types.ModuleType:
    """The site's hook module, ``scripts/docs_hooks.py``."""
    return load_file(ROOT / "scripts" / "docs_hooks.py", "docs_hooks")


def pages() -> list[str]:
    """Every page of the site, as its path under docs/."""
    return sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))


def blocks(page: str) -> list[str]:
    """The fenced python blocks of one page as the site shows it (includes expanded)."""
    markdown = hooks().expand_includes((DOCS / page).read_text(encoding="utf-8"), page)
    return [match.group(1) for match in _FENCE.finditer(markdown)]


def is_snippet(block: str) -> bool:
    """Whether the block only includes code from a file (pymdownx.snippets), rather than holding code."""
    lines = [line for line in block.splitlines() if line.strip()]
    return bool(lines) and all(SNIPPET_LINE.match(line) for line in lines)


# --------------------------------------------------------------------------- services


@dataclass(frozen=True)
class Services:
    """The real local services an example may use (from ``ENERGY_DOC_*``)."""

    postgres_url: str | None
    redis_url: str | None
    mqtt_host: str | None
    mqtt_port: int | None
    prefix: str
    tmp: Path

    @classmethod
    def from_env(cls) -> Services:
        """Read them from the environment the test set."""
        env = os.environ
        port = env.get("ENERGY_DOC_MQTT_PORT")
        return cls(
            postgres_url=env.get("ENERGY_DOC_POSTGRES_URL"),
            redis_url=env.get("ENERGY_DOC_REDIS_URL"),
            mqtt_host=env.get("ENERGY_DOC_MQTT_HOST"),
            mqtt_port=int(port) if port else None,
            prefix=env["ENERGY_DOC_PREFIX"],
            tmp=Path(env["ENERGY_DOC_TMP"]),
        )

    def require(self, value: str | int | None, name: str) -> Any:
        """``value``, which the test must have provided."""
        assert value is not None, f"the example needs {name}; declare it in the setup's needs"
        return value


@contextlib.contextmanager
def json_server(routes: dict[tuple[str, str], Any]) -> Iterator[str]:
    """A loopback HTTP server answering ``(method, path)`` with fixed JSON; yields its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            body = routes.get((self.command, self.path))
            data = json.dumps(body).encode()
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer  # noqa: N815 - the names http.server dispatches to

        def log_message(self, format: str, *args: Any) -> None:
            """Stay quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def redis_client(services: Services, stack: AsyncExitStack) -> Any:
    """A ``redis.asyncio`` client of the test Redis, closed at the end."""
    import redis.asyncio as redis

    client = redis.Redis.from_url(services.require(services.redis_url, "redis"))
    stack.push_async_callback(client.aclose)
    return client


# --------------------------------------------------------------------------- setups

Before = Callable[[Services, AsyncExitStack], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Setup:
    """What one example needs around it to run here.

    Attributes:
        match: A line (or part of one) that only this block contains.
        why: One sentence: what the example leaves to the reader.
        needs: Services to provide: ``postgres``, ``redis``, ``mqtt`` (a private Mosquitto).
        replace: ``(old, new)`` replacements of placeholders; each ``old`` must occur.
        before: Builds the names the block uses (closed with the stack at the end).
        after: Runs after the block with its namespace (to use what it defined).
    """

    match: str
    why: str
    needs: tuple[str, ...] = ()
    replace: tuple[tuple[str, str], ...] = ()
    before: Before | None = None
    after: Callable[[dict[str, Any]], Awaitable[None]] | None = None


def names(**values: Any) -> Before:
    """A ``before`` that provides fixed values."""

    async def before(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
        return dict(values)

    return before


async def _database_example(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    async def create_tables(db: Any, base: Any) -> None:
        async with db.engine.begin() as connection:
            await connection.run_sync(base.metadata.create_all)
        stack.push_async_callback(db.dispose)

        async def drop() -> None:
            async with db.engine.begin() as connection:
                await connection.run_sync(base.metadata.drop_all)

        stack.push_async_callback(drop)

    return {"_create_tables": create_tables}


async def _migrations(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from energy_common.database import Base

    package = types.ModuleType("myservice")
    models = types.ModuleType("myservice.models")
    models.Base = Base  # type: ignore[attr-defined]
    sys.modules.update({"myservice": package, "myservice.models": models})
    created: list[str] = []

    def do_run_migrations(connection: Any) -> None:  # Alembic's context.run_migrations() in a real env.py
        Base.metadata.create_all(connection)
        created.append("ran")

    url = f"sqlite+aiosqlite:///{services.tmp / 'migrations.db'}"
    return {
        "settings": types.SimpleNamespace(database_url=url),
        "do_run_migrations": do_run_migrations,
        "_ran": created,
    }


async def _after_migrations(ns: dict[str, Any]) -> None:
    await ns["run_async_migrations"]()
    assert ns["_ran"] == ["ran"]


async def _cache(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from pydantic import BaseModel

    class User(BaseModel):
        name: str

    async def load_profile() -> dict[str, str]:
        return {"theme": "dark"}

    return {
        "redis_client": await redis_client(services, stack),
        "user_data": {"name": "John"},
        "user_id": 123,
        "User": User,
        "load_profile": load_profile,
    }


async def _rate_limit(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from energy_common.cache import RateLimitCache

    return {"RateLimitCache": RateLimitCache, "redis_client": await redis_client(services, stack)}


async def _rate_limit_route(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from fastapi import FastAPI

    def current_user_id() -> str:
        return "user-1"

    return {**await _rate_limit(services, stack), "app": FastAPI(), "current_user_id": current_user_id}


async def _http_client(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    envelope = {"success": True, "data": {"id": "123", "name": "John"}, "error": None, "message": None}
    url = stack.enter_context(json_server({("GET", "/users/123"): envelope, ("POST", "/users"): envelope}))
    return {"_auth_service": url}


async def _health(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    return {"redis_client": await redis_client(services, stack)}


async def _health_router(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from energy_common.health import HealthChecker
    from fastapi import FastAPI

    return {"app": FastAPI(), "health_checker": HealthChecker("my-service")}


async def _auth_fastapi(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from energy_auth import InMemoryAPIKeyStore, TokenManager

    return {"tokens": TokenManager(secrets.token_urlsafe(32)), "key_store": InMemoryAPIKeyStore()}


async def _login(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from energy_auth import PasswordHasher

    password = "correct horse battery staple"
    user = types.SimpleNamespace(password_hash=await PasswordHasher().hash_async(password))
    return {"password": password, "user": user}


async def _legacy_login(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from passlib.hash import pbkdf2_sha256

    password = "correct horse battery staple"
    user = types.SimpleNamespace(id=7, password_hash=pbkdf2_sha256.hash(password))
    updated: dict[int, str] = {}

    class Users:
        async def update(self, user_id: int, *, password_hash: str) -> None:
            updated[user_id] = password_hash

    return {"password": password, "user": user, "users": Users(), "updated": updated}


async def _after_legacy_login(ns: dict[str, Any]) -> None:
    # The passlib hash verified and was replaced by an argon2id one, as the README says.
    assert ns["updated"][7].startswith("$argon2id$"), ns["updated"]


async def _throttle(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from energy_auth import PasswordHasher
    from energy_common.cache import create_cache
    from fastapi import FastAPI, Request
    from pydantic import BaseModel

    class LoginForm(BaseModel):
        username: str
        password: str

    class TokenResponse(BaseModel):
        access_token: str

    cache = create_cache("memory://")
    stack.push_async_callback(cache.aclose)
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    user = types.SimpleNamespace(password_hash=await hasher.hash_async("correct horse battery staple"))
    return {
        "cache": cache,
        "app": FastAPI(),
        "LoginForm": LoginForm,
        "TokenResponse": TokenResponse,
        "Request": Request,
        "hasher": hasher,
        "user": user,
    }


async def _after_throttle(ns: dict[str, Any]) -> None:
    assert [route.path for route in ns["app"].routes][-1] == "/auth/token"


async def _keyset(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from energy_common.database import Base, Database
    from sqlalchemy import Float, Integer, String
    from sqlalchemy.orm import mapped_column

    class Reading(Base):  # no annotations: this module's are strings (PEP 563), SQLAlchemy would resolve them
        __tablename__ = "doc_readings"
        id = mapped_column(Integer, primary_key=True)
        device_id = mapped_column(String(32), nullable=False)
        ts = mapped_column(Integer, nullable=False)
        power_w = mapped_column(Float)

    db = Database(f"sqlite+aiosqlite:///{services.tmp / 'keyset.db'}")
    stack.push_async_callback(db.dispose)
    async with db.engine.begin() as connection:
        await connection.run_sync(Reading.metadata.create_all)
    session = await stack.enter_async_context(db.session())
    session.add_all([Reading(device_id="m1", ts=i, power_w=float(i)) for i in range(150)])
    await session.flush()
    return {
        "session": session,
        "Reading": Reading,
        "settings": types.SimpleNamespace(cursor_key=secrets.token_bytes(32)),
    }


async def _after_keyset(ns: dict[str, Any]) -> None:
    # Two pages of the 150 rows, newest first, without overlap.
    first, second = ns["page"].items, ns["more"].items
    assert [r.ts for r in first] == list(range(149, 49, -1)), [r.ts for r in first][:3]
    assert [r.ts for r in second] == list(range(49, -1, -1))


async def _timeseries(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from energy_common.database import Database

    db = Database(f"sqlite+aiosqlite:///{services.tmp / 'series.db'}")
    stack.push_async_callback(db.dispose)
    start_ms = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    rows = [(device, start_ms + 900_000 * i, 100.0 + i, 230.0, i / 4) for device in ("m1", "m2") for i in range(96)]
    return {"db": db, "rows": rows, "start_ms": start_ms, "end_ms": start_ms + 86_400_000, "cursor_ts": None}


async def _after_timeseries(ns: dict[str, Any]) -> None:
    assert len(ns["new_rows"]) == len(ns["rows"])
    assert len(ns["latest"]) == 2
    # One UTC day of 15-minute readings spans two Paris days (UTC+1): 92 readings, then 4.
    assert [day["count"] for day in ns["days"]] == [92, 4], ns["days"]


def _pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return (
        Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )


async def _jwks(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from energy_auth import JWTKey, KeySet, TokenManager

    key = JWTKey.from_pem(_pem(), "EdDSA")
    issuer = TokenManager(KeySet([key], signing_kid=key.kid), issuer="auth-service", audience="energy-api")
    url = stack.enter_context(json_server({("GET", "/.well-known/jwks.json"): issuer.jwks()}))
    return {"token": issuer.create_access_token({"sub": "user-1"}), "_jwks_url": f"{url}/.well-known/jwks.json"}


def _device_ca() -> dict[str, Any]:
    """A freshly generated device CA (EC P-256, CA:TRUE), as the PEM pair the reader keeps in a secret store."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "docs device CA")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {"ca_pem": certificate.public_bytes(serialization.Encoding.PEM).decode(), "ca_key_pem": key_pem.decode()}


async def _device_credentials(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    return _device_ca()


async def _after_device_credentials(ns: dict[str, Any]) -> None:
    from energy_auth import InvalidCredentialsError

    assert ns["new"].certificate_pem.startswith("-----BEGIN CERTIFICATE-----")
    try:
        await ns["credentials"].authenticate("meter-17", ns["rotated"].secret)
    except InvalidCredentialsError:
        return
    raise AssertionError("a revoked device still authenticates")


async def _after_policy(ns: dict[str, Any]) -> None:
    from energy_auth import DEFAULT_ACCESS_POLICY

    default = DEFAULT_ACCESS_POLICY.to_dict()["roles"]
    shown = ns["policy"].to_dict()["roles"]
    assert set(default) - set(shown) == {"admin"}, "the README says the default policy adds only admin"
    assert all(shown[role] == default[role] for role in shown), "the README's policy is not DEFAULT_ACCESS_POLICY's"


async def _broker(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from energy_auth import DEFAULT_ACCESS_POLICY
    from energy_auth.devices import DeviceCredentials, InMemoryDeviceCredentialStore
    from fastapi import FastAPI

    credentials = DeviceCredentials(InMemoryDeviceCredentialStore(), roles=DEFAULT_ACCESS_POLICY.device_roles)
    return {
        "secret": secrets.token_urlsafe(32),
        "policy": DEFAULT_ACCESS_POLICY,
        "credentials": credentials,
        "redis": await redis_client(services, stack),
        "internal_app": FastAPI(),
    }


async def _after_broker(ns: dict[str, Any]) -> None:
    import httpx

    device = await ns["credentials"].provision("meter-17")
    transport = httpx.ASGITransport(app=ns["internal_app"])
    async with httpx.AsyncClient(transport=transport, base_url="http://internal") as client:
        for username, password, result in (
            ("meter-17", device.secret, "allow"),
            (ns["username"], ns["password"], "allow"),
            ("meter-17", "wrong", "deny"),
        ):
            body = {"username": username, "password": password, "clientid": username}
            response = await client.post("/mqtt/emqx/authn", json=body)
            assert response.status_code == 200, response.text
            assert response.json()["result"] == result, (username, response.json())


async def _engine(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from energy_common.database import Database

    db = Database(f"sqlite+aiosqlite:///{services.tmp / 'engine.db'}")
    stack.push_async_callback(db.dispose)
    return {"db": db}


async def _after_engine(ns: dict[str, Any]) -> None:
    from energy_monitoring.tracing import instrument_engine

    assert instrument_engine(ns["db"]) is False, "instrument_engine(db) did not attach the engine"


async def _registry(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from energy_monitoring.testing import use_registry

    stack.enter_context(use_registry())
    return {}


async def _tracing(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from energy_common.database import Database
    from sqlalchemy import text

    db = Database(f"sqlite+aiosqlite:///{services.tmp / 'tracing.db'}")
    stack.push_async_callback(db.dispose)
    connection = await stack.enter_async_context(db.engine.connect())
    return {"db": connection, "query": text("SELECT 1")}


async def _propagation(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    properties = Properties(PacketTypes.PUBLISH)
    properties.UserProperty = [("x-request-id", "req-42")]
    handled: list[Any] = []
    return {"message": types.SimpleNamespace(properties=properties), "handle": handled.append}


async def _monitoring_testing(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from energy_monitoring import TracingMiddleware
    from energy_monitoring.metrics import increment_counter
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    app = FastAPI()
    app.add_middleware(TracingMiddleware)

    @app.get("/users/{user_id}")
    async def get_user(user_id: str) -> dict[str, str]:
        increment_counter("api.requests", tags={"endpoint": "/users", "method": "GET"})
        return {"id": user_id}

    client = stack.enter_context(TestClient(app))
    return {"handle_request": lambda: client.get("/users/7").raise_for_status()}


async def _simulated(device_id: str, services: Services, stack: AsyncExitStack) -> None:
    from energy_messaging.simulator import DeviceSimulator

    host = services.require(services.mqtt_host, "mqtt")
    await stack.enter_async_context(DeviceSimulator(device_id, host, services.mqtt_port or 1883, interval=None))


async def _quick_start(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    await _simulated("sensor001", services, stack)
    return {}


async def _after_disconnect(ns: dict[str, Any]) -> None:
    for value in ns.values():
        if type(value).__name__ == "MQTTManager":
            await value.disconnect()


async def _mqtt_manager(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from pydantic import BaseModel

    class StatusModel(BaseModel):
        status: str

    async def on_status(message: Any) -> None:
        pass

    return {"StatusModel": StatusModel, "on_status": on_status}


async def _mqtt_health(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from energy_messaging import MQTTManager

    manager = MQTTManager(services.require(services.mqtt_host, "mqtt"), services.mqtt_port or 1883)
    await stack.enter_async_context(manager)
    return {"mqtt": manager}


async def _device_manager(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    ns = await _mqtt_health(services, stack)
    await _simulated("meter-17", services, stack)
    stored: list[Any] = []

    async def store(device_id: str, payload: Any) -> None:
        stored.append((device_id, payload))

    return {
        **ns,
        "redis_client": await redis_client(services, stack),
        "audit_log": types.SimpleNamespace(write=lambda command: None),
        "store": store,
    }


async def _after_bus(ns: dict[str, Any]) -> None:
    await ns["bus"].aclose()


async def _idempotency(services: Services, stack: AsyncExitStack) -> dict[str, Any]:
    from energy_messaging.events import Event

    return {"Event": Event}


def _redis_url(services: Services) -> str:
    return str(services.require(services.redis_url, "redis"))


SETUPS: tuple[Setup, ...] = (
    # ---- getting started
    Setup(
        'async with DeviceSimulator("meter-001", "127.0.0.1", 1883, interval=0.2):',
        "The broker is the reader's; here a private Mosquitto.",
        needs=("mqtt",),
        replace=(
            (
                'DeviceSimulator("meter-001", "127.0.0.1", 1883,',
                'DeviceSimulator("meter-001", _services.mqtt_host, _services.mqtt_port,',
            ),
            ('MQTTManager("127.0.0.1", 1883)', "MQTTManager(_services.mqtt_host, _services.mqtt_port)"),
        ),
    ),
    # ---- energy-common
    Setup(
        'raise ResourceNotFoundError("User", user_id)',
        "user_id is the id the reader looked up.",
        before=names(user_id=123),
    ),
    Setup(
        'return APIResponse.success(data=user_data, message="User retrieved successfully")',
        "The returns are a route's body; user_data, user_id and users are the reader's data.",
        before=names(user_data={"id": 1, "name": "John"}, user_id=1, users=[{"id": 1}]),
    ),
    Setup(
        'db = Database("postgresql+asyncpg://app@db:5432/app")\nasync with db.session()',
        "The database is the reader's; its tables come from their migrations (here: create_all).",
        needs=("postgres",),
        replace=(
            (
                'db = Database("postgresql+asyncpg://app@db:5432/app")',
                "db = Database(_services.postgres_url)\nawait _create_tables(db, Base)",
            ),
        ),
        before=_database_example,
    ),
    Setup(
        "repo = BaseRepository(session, Reading, cursors=CursorCodec(settings.cursor_key))",
        "session, the Reading model and settings.cursor_key are the service's; here 150 readings on SQLite.",
        before=_keyset,
        after=_after_keyset,
    ),
    Setup(
        "store = TimeSeriesStore(db, READINGS)",
        "db, rows, the time range and the page's cursor come from the service; here one day of two meters on SQLite.",
        before=_timeseries,
        after=_after_timeseries,
    ),
    Setup(
        "from myservice.models import Base",
        "myservice.models, settings and do_run_migrations are the reader's Alembic project.",
        before=_migrations,
        after=_after_migrations,
    ),
    Setup(
        "cache = CacheManager(redis_client",
        "redis_client, user_data, user_id, User and load_profile are the reader's.",
        needs=("redis",),
        replace=(
            ('key_prefix="users", default_ttl', "key_prefix=_services.prefix + ':users', default_ttl"),
            (
                'create_cache("redis://redis:6379/0", key_prefix="users")',
                "create_cache(_redis_url, key_prefix=_services.prefix)",
            ),
        ),
        before=_cache,
    ),
    Setup(
        "rate_limit_cache = RateLimitCache(redis_client)",
        "RateLimitCache and redis_client come from the cache example above.",
        needs=("redis",),
        replace=(('check_rate_limit("user:123"', 'check_rate_limit(_services.prefix + ":user:123"'),),
        before=_rate_limit,
    ),
    Setup(
        "from energy_common.cache.web import rate_limit",
        "app, RateLimitCache, redis_client and current_user_id are the reader's; (...) stands for their parameters.",
        needs=("redis",),
        replace=(("async def login(...): ...", "async def login(): ..."),),
        before=_rate_limit_route,
    ),
    Setup(
        'async with ServiceClient("http://auth-service:8005") as client:',
        "auth-service is a peer service; here a loopback server answering with the envelope.",
        replace=(('ServiceClient("http://auth-service:8005")', "ServiceClient(_auth_service)"),),
        before=_http_client,
    ),
    Setup(
        'health_checker = HealthChecker("my-service")',
        "The database and redis_client are the service's; here the test PostgreSQL and Redis.",
        needs=("postgres", "redis"),
        replace=(('Database("postgresql+asyncpg://app@db:5432/app")', "Database(_services.postgres_url)"),),
        before=_health,
    ),
    Setup(
        "app.include_router(health_router(health_checker, details=True))",
        "app and health_checker come from the service and the example above.",
        before=_health_router,
    ),
    # ---- energy-auth
    Setup(
        "new_pair = await tokens.refresh(pair.refresh_token, claims={...})",
        "secret is the reader's key; {...} stands for the claims of the new pair.",
        replace=(("claims={...}", 'claims={"roles": ["operator"]}'),),
        before=names(secret=secrets.token_urlsafe(32)),
    ),
    Setup(
        "stored = await hasher.hash_async(password)",
        "password and user come from the login request and the user store.",
        before=_login,
    ),
    Setup(
        'hasher = PasswordHasher(legacy_schemes=["bcrypt", "pbkdf2_sha256"])',
        "password, user and users come from the login request and the user store; here a passlib pbkdf2_sha256 hash.",
        before=_legacy_login,
        after=_after_legacy_login,
    ),
    Setup(
        "throttle = LoginThrottle(cache.backend, address_limit=20, account_limit=5)",
        "app, cache, hasher, user and the request/response models are the service's own.",
        before=_throttle,
        after=_after_throttle,
    ),
    Setup(
        "install_auth(app, tokens, api_keys=APIKeyAuthenticator(key_store))",
        "tokens and key_store are built as the sections above show.",
        before=_auth_fastapi,
    ),
    Setup(
        'new = JWTKey.from_pem(new_private_pem, "EdDSA")',
        "The PEM keys come from the reader's secret store; here freshly generated Ed25519 keys.",
        before=names(new_private_pem=_pem(), old_private_pem=_pem()),
    ),
    Setup(
        'jwks_url_fetcher("https://auth/.well-known/jwks.json")',
        "The auth service publishes the key set; here a loopback server serving a real JWKS.",
        replace=(('jwks_url_fetcher("https://auth/.well-known/jwks.json")', "jwks_url_fetcher(_jwks_url)"),),
        before=_jwks,
    ),
    Setup(
        "certificate_authority=DeviceCertificateAuthority(ca_pem, ca_key_pem)",
        "ca_pem and ca_key_pem are the reader's device CA; here a freshly generated one.",
        before=_device_credentials,
        after=_after_device_credentials,
    ),
    Setup(
        'RolePolicy("operator", "user", permissions=("devices:write", "commands:send"), includes=("viewer",)),\n    ],',
        "Runs as written; afterwards: the README says DEFAULT_ACCESS_POLICY is this policy plus admin.",
        after=_after_policy,
    ),
    Setup(
        'internal_app.include_router(broker_auth_router(authenticator), prefix="/mqtt")',
        "secret, policy, credentials, redis and internal_app are built as the sections above show; rate limits in the test Redis.",
        needs=("redis",),
        replace=(("RateLimitCache(redis)", "RateLimitCache(redis, key_prefix=_services.prefix + ':ratelimit')"),),
        before=_broker,
        after=_after_broker,
    ),
    # ---- energy-monitoring
    Setup(
        'increment_counter("api.requests", tags={"endpoint": "/users", "method": "GET"})\nset_gauge',
        "The metrics go to a registry of the example's own.",
        before=_registry,
    ),
    Setup(
        'registry = setup_metrics("auth-service", namespace="auth", version="1.4.0")',
        "The metrics go to a registry of the example's own.",
        before=_registry,
    ),
    Setup(
        'instrument_app(app, exclude_paths=["/metrics", "/health"])',
        "The metrics go to a registry of the example's own.",
        before=_registry,
    ),
    Setup(
        "result = await db.execute(query)",
        "db and query are the reader's; the OTLP exporter needs a collector, so spans go nowhere here.",
        replace=(('exporter="otlp"', 'exporter="none"'),),
        before=_tracing,
    ),
    Setup(
        "instrument_engine(db)  # a Database / AsyncEngine / Engine built earlier; idempotent",
        "db is the reader's Database (here on SQLite); the OTLP exporter needs a collector, so spans go nowhere here.",
        replace=(('exporter="otlp"', 'exporter="none"'),),
        before=_engine,
        after=_after_engine,
    ),
    Setup(
        "with continue_trace(message.properties.UserProperty):",
        "message is an incoming MQTT 5 message and handle the reader's handler.",
        before=_propagation,
    ),
    Setup(
        "with capture_spans() as spans, use_registry() as registry:",
        "handle_request is the reader's test request to an instrumented app; {...} stands for the labels.",
        replace=(
            (
                'get_sample_value("api_requests_total", {...})',
                'get_sample_value("api_requests_total", {"endpoint": "/users", "method": "GET"})',
            ),
        ),
        before=_monitoring_testing,
    ),
    # ---- energy-messaging
    Setup(
        'await device_manager.send_command("sensor001", "read_temperature")',
        "The broker is the reader's; here a private Mosquitto with a simulated sensor001.",
        needs=("mqtt",),
        replace=(('MQTTManager("localhost", 1883,', "MQTTManager(_services.mqtt_host, _services.mqtt_port,"),),
        before=_quick_start,
        after=_after_disconnect,
    ),
    Setup(
        'await mqtt.subscribe("devices/+/status", on_status, qos=1, model=StatusModel)',
        "broker.internal with TLS is the reader's broker; on_status and StatusModel are theirs.",
        needs=("mqtt",),
        replace=(
            ('"broker.internal",\n    8883,', "_services.mqtt_host,\n    _services.mqtt_port,"),
            ("tls=True,  # or an ssl.SSLContext", "tls=False,  # the private test broker has no TLS listener"),
        ),
        before=_mqtt_manager,
    ),
    Setup(
        'check = MQTTHealthCheck(mqtt, name="mqtt"',
        "mqtt is the service's connected manager.",
        needs=("mqtt",),
        before=_mqtt_health,
    ),
    Setup(
        'registry=RedisDeviceRegistry(redis_client, prefix="energy:devices:")',
        "mqtt, redis_client, audit_log and store are the service's; meter-17 is a simulated meter.",
        needs=("mqtt", "redis"),
        replace=(('prefix="energy:devices:"', 'prefix=_services.prefix + ":devices:"'),),
        before=_device_manager,
    ),
    Setup(
        'store=RedisCommandStore(redis_client, prefix="{billing:commands}:")',
        "mqtt and redis_client are the service's; meter-17 is a simulated meter.",
        needs=("mqtt", "redis"),
        replace=(('prefix="{billing:commands}:"', 'prefix="{" + _services.prefix + ":commands}:"'),),
        before=_device_manager,
    ),
    Setup(
        'async with DeviceSimulator("sensor001", "localhost", 1883, interval=1.0) as sim:',
        "The broker is the reader's; here a private Mosquitto.",
        needs=("mqtt",),
        replace=(('"localhost", 1883', "_services.mqtt_host, _services.mqtt_port"),),
    ),
    Setup(
        'bus = create_event_bus("redis://127.0.0.1:6379/0", group="billing-service")',
        "The event bus uses the test Redis, under a namespace of the example's own.",
        needs=("redis",),
        replace=(
            (
                'create_event_bus("redis://127.0.0.1:6379/0", group="billing-service")',
                'create_event_bus(_redis_url, group="billing-service", namespace=_services.prefix)',
            ),
        ),
    ),
    Setup(
        "@idempotent(store, namespace=",
        "Event comes from the event-bus example above; the bus uses the test Redis.",
        needs=("redis",),
        replace=(
            (
                'RedisStreamsEventBus("redis://127.0.0.1:6379/0", group="billing-service")',
                'RedisStreamsEventBus(_redis_url, group="billing-service", namespace=_services.prefix)',
            ),
            ('prefix="billing:idem:"', 'prefix=_services.prefix + ":idem:"'),
        ),
        before=_idempotency,
        after=_after_bus,
    ),
)


def setup_for(block: str) -> Setup | None:
    """The setup whose ``match`` the block contains (at most one may)."""
    found = [setup for setup in SETUPS if setup.match in block]
    assert len(found) <= 1, f"several setups match this example: {[s.match for s in found]}"
    return found[0] if found else None


# --------------------------------------------------------------------------- running


class _Fragment(ast.NodeTransformer):
    """Top-level ``return X`` → ``X``; top-level ``raise E`` → ``_raised.append(E)``."""

    def visit_Module(self, node: ast.Module) -> ast.Module:
        body: list[ast.stmt] = []
        for stmt in node.body:
            if isinstance(stmt, ast.Return) and stmt.value is not None:
                body.append(ast.Expr(stmt.value))
            elif isinstance(stmt, ast.Raise) and stmt.exc is not None:
                call = ast.Call(ast.Attribute(ast.Name("_raised", ast.Load()), "append", ast.Load()), [stmt.exc], [])
                body.append(ast.Expr(call))
            else:
                body.append(stmt)
        node.body = body
        return ast.fix_missing_locations(node)


def prepare(block: str, setup: Setup | None) -> str:
    """The block with its setup's replacements applied (each must match)."""
    for old, new in setup.replace if setup else ():
        assert old in block, f"the example changed: {old!r} is no longer in it; update its setup in {__file__}"
        block = block.replace(old, new)
    return block


async def run(page: str, index: int) -> None:
    """Run block ``index`` of ``page`` with its setup."""
    block = blocks(page)[index]
    setup = setup_for(block)
    source = prepare(block, setup)
    services = Services.from_env()
    tree = _Fragment().visit(ast.parse(source, f"docs/{page}[{index}]"))
    code = compile(tree, f"docs/{page}[{index}]", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    async with AsyncExitStack() as stack:
        # A real module, so that class definitions can resolve their annotations through it.
        module = sys.modules["__example__"] = types.ModuleType("__example__")
        namespace: dict[str, Any] = module.__dict__
        namespace.update(_raised=[], _services=services, _redis_url=services.redis_url)
        if setup and setup.before:
            namespace.update(await setup.before(services, stack))
        result = eval(code, namespace)  # noqa: S307 - our own documentation's example, on purpose
        if inspect.iscoroutine(result):
            await result
        if setup and setup.after:
            await setup.after(namespace)
        for raised in namespace["_raised"]:
            assert isinstance(raised, BaseException), f"the example raises {raised!r}, which is not an exception"


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], int(sys.argv[2])))
