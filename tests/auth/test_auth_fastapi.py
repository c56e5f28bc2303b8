"""Tests for energy_auth.fastapi: 401/403 paths through a real FastAPI app, in-process over ASGI."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest

fastapi = pytest.importorskip("fastapi")  # the module under test needs the web extra

from energy_auth import (  # noqa: E402
    APIKeyAuthenticator,
    InMemoryAPIKeyStore,
    InMemoryRevocationStore,
    JWKSVerifier,
    JWTKey,
    NewAPIKey,
    PasswordHasher,
    Principal,
    TokenManager,
    generate_api_key,
)
from energy_auth.fastapi import (  # noqa: E402
    get_api_key_principal,
    get_current_user,
    get_principal,
    install_auth,
    require_permission,
    require_role,
)
from energy_common.middleware import install_exception_handlers  # noqa: E402
from fastapi import Depends, FastAPI  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from .conftest import Clock  # noqa: E402


class Response:
    """What the in-process ASGI call returned."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


async def call(app: Any, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None) -> Response:
    """Send one HTTP request through the app's ASGI interface and collect the response."""
    payload = b"" if body is None else json.dumps(body).encode()
    raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    if body is not None:
        raw_headers.append((b"content-type", b"application/json"))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": payload, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    response_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start["headers"]}
    return Response(
        start["status"],
        response_headers,
        b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"),
    )


class Login(BaseModel):
    username: str
    password: str


class Service:
    """A small service: the app, its token manager, a device key and a user store."""

    def __init__(self, secret: str, clock: Clock) -> None:
        self.tokens = TokenManager(
            secret, issuer="auth", audience="api", revocation_store=InMemoryRevocationStore(), clock=clock
        )
        self.hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        self.users = {"alice": self.hasher.hash("alice-password")}
        self.device: NewAPIKey = generate_api_key("sensor-001", permissions=["readings:write"])
        self.app = app = FastAPI()
        install_exception_handlers(app)
        install_auth(
            app, self.tokens, api_keys=APIKeyAuthenticator(InMemoryAPIKeyStore([self.device.record]), clock=clock)
        )

        @app.post("/login")
        async def login(form: Login) -> dict[str, Any]:
            await self.hasher.authenticate(form.password, self.users.get(form.username))
            pair = self.tokens.create_token_pair(form.username, {"roles": ["viewer"], "permissions": ["users:read"]})
            return {"access_token": pair.access_token, "token_type": pair.token_type}

        @app.get("/me")
        async def me(user: Annotated[Principal, Depends(get_current_user)]) -> dict[str, Any]:
            return {"subject": user.subject, "kind": user.kind}

        @app.get("/users", dependencies=[Depends(require_permission("users:read"))])
        async def users() -> list[str]:
            return sorted(self.users)

        @app.get("/admin")
        async def admin(user: Annotated[Principal, Depends(require_role("admin"))]) -> dict[str, str]:
            return {"admin": user.subject}

        @app.get("/operator", dependencies=[Depends(require_role("operator"))])
        async def operator() -> dict[str, bool]:
            return {"ok": True}

        @app.post("/readings", dependencies=[Depends(require_permission("readings:write"))])
        async def readings() -> dict[str, bool]:
            return {"stored": True}

        @app.get("/device")
        async def device(principal: Annotated[Principal, Depends(get_api_key_principal)]) -> dict[str, str]:
            return {"device": principal.subject}

        @app.get("/whoami")
        async def whoami(principal: Annotated[Principal, Depends(get_principal)]) -> dict[str, str]:
            return {"subject": principal.subject, "kind": principal.kind}

    def bearer(self, claims: dict[str, Any] | None = None) -> dict[str, str]:
        token = self.tokens.create_access_token({"sub": "alice", **(claims or {})})
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def service(secret: str, clock: Clock) -> Service:
    """A fresh service app per test."""
    return Service(secret, clock)


def assert_error(response: Response, status: int, code: str) -> dict[str, Any]:
    """The response is the standard error envelope with this status and code."""
    assert response.status == status, response.body
    body = response.json()
    assert body["success"] is False
    assert body["error"]["error_code"] == code
    assert "Traceback" not in response.body.decode()
    return dict(body["error"])


async def test_login_then_call_a_protected_route(service: Service) -> None:
    """A user logs in with a password and calls routes with the access token."""
    response = await call(service.app, "POST", "/login", body={"username": "alice", "password": "alice-password"})
    assert response.status == 200, response.body
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    assert (await call(service.app, "GET", "/me", headers)).json() == {"subject": "alice", "kind": "user"}
    assert (await call(service.app, "GET", "/users", headers)).json() == ["alice"]


@pytest.mark.parametrize(("username", "password"), [("alice", "wrong"), ("mallory", "alice-password")])
async def test_login_failures_look_alike(service: Service, username: str, password: str) -> None:
    """Wrong password and unknown user both give 401 INVALID_CREDENTIALS."""
    response = await call(service.app, "POST", "/login", body={"username": username, "password": password})
    assert_error(response, 401, "INVALID_CREDENTIALS")


@pytest.mark.parametrize(
    ("headers", "code", "challenge"),
    [
        ({}, "CREDENTIALS_MISSING", 'Bearer realm="api"'),
        ({"Authorization": "Basic YWxpY2U6cHc="}, "CREDENTIALS_MISSING", 'error="invalid_request"'),
        ({"Authorization": "Bearer"}, "CREDENTIALS_MISSING", 'error="invalid_request"'),
        ({"Authorization": "Bearer not.a.jwt"}, "TOKEN_MALFORMED", 'error="invalid_token"'),
        ({"Authorization": "Bearer abc"}, "TOKEN_MALFORMED", 'error="invalid_token"'),
        (
            {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0."},
            "TOKEN_ALGORITHM_NOT_ALLOWED",
            'error="invalid_token"',
        ),
    ],
)
async def test_401_paths_carry_www_authenticate(
    service: Service, headers: dict[str, str], code: str, challenge: str
) -> None:
    """Missing or bad credentials give 401 in the envelope with a Bearer challenge."""
    response = await call(service.app, "GET", "/me", headers)
    assert_error(response, 401, code)
    assert response.headers["www-authenticate"].startswith('Bearer realm="api"')
    assert challenge in response.headers["www-authenticate"]


async def test_expired_and_refresh_tokens_are_401(service: Service, clock: Clock) -> None:
    """An expired access token and a refresh token used as access token are 401s with their codes."""
    expired = service.bearer()
    clock.advance(service.tokens.access_ttl + service.tokens.leeway + 1)
    assert_error(await call(service.app, "GET", "/me", expired), 401, "TOKEN_EXPIRED")
    refresh = {"Authorization": f"Bearer {service.tokens.create_refresh_token('alice')}"}
    assert_error(await call(service.app, "GET", "/me", refresh), 401, "TOKEN_TYPE_INVALID")


async def test_revoked_token_is_401(service: Service) -> None:
    """A revoked access token is refused by the dependency (it uses the async, revocation-aware path)."""
    headers = service.bearer()
    await service.tokens.revoke(headers["Authorization"].removeprefix("Bearer "))
    assert_error(await call(service.app, "GET", "/me", headers), 401, "TOKEN_REVOKED")


@pytest.mark.parametrize(
    ("path", "claims", "status", "code"),
    [
        ("/users", {"permissions": ["users:read"]}, 200, None),
        ("/users", {"permissions": ["users:*"]}, 200, None),
        ("/users", {"permissions": ["devices:read"]}, 403, "PERMISSION_DENIED"),
        ("/users", {}, 403, "PERMISSION_DENIED"),
        ("/admin", {"roles": ["admin"]}, 200, None),
        ("/admin", {"role": "admin"}, 200, None),
        ("/admin", {"roles": ["operator"]}, 403, "ROLE_REQUIRED"),
        ("/operator", {"roles": ["admin"]}, 200, None),
        ("/operator", {"roles": ["viewer"]}, 403, "ROLE_REQUIRED"),
    ],
)
async def test_permission_and_role_dependencies(
    service: Service, path: str, claims: dict[str, Any], status: int, code: str | None
) -> None:
    """require_permission and require_role allow or give 403 in the envelope."""
    response = await call(service.app, "GET", path, service.bearer(claims))
    if code is None:
        assert response.status == 200, response.body
    else:
        error = assert_error(response, status, code)
        assert "www-authenticate" not in response.headers
        assert error["details"]["required"]


async def test_device_api_key(service: Service) -> None:
    """A device authenticates with its API key where its permission is needed."""
    key = {"X-API-Key": service.device.key}
    assert (await call(service.app, "POST", "/readings", key)).json() == {"stored": True}
    assert (await call(service.app, "GET", "/device", key)).json() == {"device": "sensor-001"}
    assert (await call(service.app, "GET", "/whoami", key)).json() == {"subject": "sensor-001", "kind": "device"}
    assert_error(await call(service.app, "GET", "/users", key), 403, "PERMISSION_DENIED")


@pytest.mark.parametrize("path", ["/readings", "/device", "/whoami"])
async def test_bad_api_key_is_401(service: Service, path: str) -> None:
    """A wrong API key is a 401 API_KEY_INVALID with a challenge."""
    method = "POST" if path == "/readings" else "GET"
    response = await call(service.app, method, path, {"X-API-Key": service.device.key + "x"})
    assert_error(response, 401, "API_KEY_INVALID")
    assert "www-authenticate" in response.headers


async def test_api_key_dependency_without_a_key(service: Service) -> None:
    """The API-key-only dependency without a key is 401 CREDENTIALS_MISSING."""
    assert_error(await call(service.app, "GET", "/device"), 401, "CREDENTIALS_MISSING")


async def test_not_installed_is_a_configuration_error(secret: str) -> None:
    """Using the dependencies without install_auth is a 500 CONFIGURATION_ERROR, not an AttributeError."""
    app = FastAPI()
    install_exception_handlers(app)

    @app.get("/me")
    async def me(user: Annotated[Principal, Depends(get_current_user)]) -> str:
        return user.subject

    assert_error(await call(app, "GET", "/me", {"Authorization": "Bearer x.y.z"}), 500, "CONFIGURATION_ERROR")


@pytest.mark.parametrize("permission", ["", "users:*", "*"])
def test_require_permission_refuses_wildcards_at_definition(permission: str) -> None:
    """A route cannot require a wildcard or empty permission."""
    with pytest.raises(ValueError, match="permission"):
        require_permission(permission)


def test_require_permission_and_role_need_arguments() -> None:
    """require_permission() and require_role("") are programming errors."""
    with pytest.raises(ValueError, match="at least one"):
        require_permission()
    with pytest.raises(ValueError, match="role"):
        require_role("")


def test_openapi_lists_both_security_schemes(service: Service) -> None:
    """The OpenAPI document declares the Bearer and API key schemes."""
    schemes = service.app.openapi()["components"]["securitySchemes"]
    assert schemes["BearerToken"]["scheme"] == "bearer"
    assert schemes["APIKey"]["name"] == "X-API-Key"


async def test_jwks_verifier_behind_the_dependencies(clock: Clock) -> None:
    """A verify-only service plugs a JWKSVerifier into install_auth and gets the same 200/401 behaviour."""
    issuer = TokenManager(JWTKey.generate("EdDSA"), issuer="auth", audience="api", clock=clock)

    async def fetch() -> dict[str, Any]:
        return issuer.jwks()

    app = FastAPI()
    install_exception_handlers(app)
    install_auth(app, JWKSVerifier(fetch, issuer="auth", audience="api", clock=clock))

    @app.get("/me")
    async def me(user: Annotated[Principal, Depends(get_current_user)]) -> str:
        return user.subject

    token = issuer.create_access_token({"sub": "bob"})
    assert (await call(app, "GET", "/me", {"Authorization": f"Bearer {token}"})).json() == "bob"
    stranger = TokenManager(JWTKey.generate("EdDSA"), issuer="auth", audience="api", clock=clock)
    response = await call(app, "GET", "/me", {"Authorization": f"Bearer {stranger.create_access_token({'sub': 'x'})}"})
    assert_error(response, 401, "TOKEN_KEY_UNKNOWN")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
