"""Fixtures of the energy-auth tests: secrets, a controllable clock, cheap hashers, token forging."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from energy_auth import JWTKey, PasswordHasher, TokenManager

Forge = Callable[..., str]


class Clock:
    """A settable Unix clock for expiry tests without sleeping."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    """A fake clock starting at a fixed time."""
    return Clock()


@pytest.fixture
def secret() -> str:
    """A fresh 32-byte HMAC secret, as the README tells users to generate."""
    return secrets.token_urlsafe(32)


@pytest.fixture
def manager(secret: str, clock: Clock) -> TokenManager:
    """An HS256 TokenManager with issuer and audience, on the fake clock."""
    return TokenManager(secret, issuer="auth-service", audience="energy-api", clock=clock)


@pytest.fixture
def cheap_hasher() -> PasswordHasher:
    """An argon2id hasher with tiny parameters, so tests stay fast (the defaults are tested once)."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(scope="session")
def key_for() -> Callable[[str], JWTKey]:
    """Session cache of one generated key per algorithm (RSA generation is slow)."""
    cache: dict[str, JWTKey] = {}

    def get(algorithm: str) -> JWTKey:
        if algorithm not in cache:
            cache[algorithm] = JWTKey.generate(algorithm)
        return cache[algorithm]

    return get


@pytest.fixture(scope="session")
def ed_key() -> JWTKey:
    """An Ed25519 key pair shared by the session (generation is cheap, but keep kids stable)."""
    return JWTKey.generate("EdDSA")


def b64(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_json(value: dict[str, Any] | bytes | str) -> bytes:
    """Encode a dict as compact JSON; pass bytes/str through (for hostile, hand-written JSON)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, separators=(",", ":")).encode()


@pytest.fixture
def forge(secret: str) -> Forge:
    """Build a token from raw header/payload JSON, HMAC-signed with the test secret by default.

    The signature is valid, so what is tested is the hostile content, not the signature.
    """

    def make(
        header: dict[str, Any] | bytes | str,
        payload: dict[str, Any] | bytes | str,
        *,
        key: bytes | None = None,
        signature: str | None = None,
    ) -> str:
        signing_input = f"{b64(raw_json(header))}.{b64(raw_json(payload))}"
        if signature is None:
            mac = hmac.new(key if key is not None else secret.encode(), signing_input.encode(), hashlib.sha256)
            signature = b64(mac.digest())
        return f"{signing_input}.{signature}"

    return make


def valid_claims(now: float, **overrides: Any) -> dict[str, Any]:
    """Claims that pass the `manager` fixture's checks; override or drop (None) any of them."""
    claims: dict[str, Any] = {
        "sub": "user-1",
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now) + 600,
        "jti": "jti-1",
        "type": "access",
        "iss": "auth-service",
        "aud": "energy-api",
    }
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


@pytest.fixture
def claims(clock: Clock) -> Callable[..., dict[str, Any]]:
    """Factory of valid claims at the fake clock's time (see ``valid_claims``)."""
    return lambda **overrides: valid_claims(clock.now, **overrides)
