"""The JWT attack suite: every hostile token is refused with the right typed 401 error."""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from energy_auth import (
    InMemoryRevocationStore,
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidSignatureError,
    InvalidTokenError,
    JWTKey,
    KeySet,
    MalformedTokenError,
    MissingClaimError,
    TokenExpiredError,
    TokenManager,
    TokenNotYetValidError,
    TokenRevokedError,
    TokenTooLargeError,
    UnknownKeyError,
    WrongTokenTypeError,
)
from energy_common.exceptions import AuthenticationError

from .conftest import Clock, Forge, b64

HS = {"alg": "HS256", "typ": "JWT"}


def raw_payload(claims: dict[str, Any], **raw: str) -> str:
    """Serialise claims to JSON text, with some values replaced by raw JSON text."""
    parts = [f"{json.dumps(k)}:{json.dumps(v)}" for k, v in claims.items() if k not in raw]
    parts += [f"{json.dumps(k)}:{v}" for k, v in raw.items()]
    return "{" + ",".join(parts) + "}"


def assert_refused(manager: TokenManager, token: object, error: type[InvalidTokenError], **kwargs: Any) -> None:
    """Verify that ``token`` is refused with exactly ``error`` (a 401 with a stable code)."""
    with pytest.raises(InvalidTokenError) as info:
        manager.verify_token(token, **kwargs)  # type: ignore[arg-type]
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    assert isinstance(info.value, AuthenticationError)
    assert info.value.status_code == 401


def test_valid_forged_token_passes(manager: TokenManager, forge: Forge, claims: Callable[..., dict[str, Any]]) -> None:
    """The forging helper builds tokens the manager accepts, so the cases below test only their flaw."""
    assert manager.verify_token(forge(HS, claims()))["sub"] == "user-1"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["", "c2ln"])
def test_alg_none_in_any_case(
    manager: TokenManager, forge: Forge, claims: Callable[..., dict[str, Any]], alg: str, signature: str
) -> None:
    """An unsecured token ("alg": "none", any spelling, signed or not) is refused."""
    assert_refused(manager, forge({"alg": alg, "typ": "JWT"}, claims(), signature=signature), InvalidAlgorithmError)


def test_hs256_signed_with_rs256_public_key(forge: Forge, claims: Callable[..., dict[str, Any]], clock: Clock) -> None:
    """Algorithm confusion: HS256 "signed" with the RS256 public key PEM as HMAC secret is refused."""
    key = JWTKey.generate("RS256")
    manager = TokenManager(key, issuer="auth-service", audience="energy-api", clock=clock)
    token = forge({"alg": "HS256", "kid": key.kid}, claims(), key=key.public_pem())
    assert_refused(manager, token, InvalidAlgorithmError)


def test_algorithm_of_another_key_in_the_set(forge: Forge, claims: Callable[..., dict[str, Any]], clock: Clock) -> None:
    """A token naming one key's kid with another key's algorithm is refused."""
    hs, ed = JWTKey.generate("HS256", kid="hs"), JWTKey.generate("EdDSA", kid="ed")
    manager = TokenManager(KeySet([hs, ed]), issuer="auth-service", audience="energy-api", clock=clock)
    assert_refused(manager, forge({"alg": "HS256", "kid": "ed"}, claims()), InvalidAlgorithmError)


@pytest.mark.parametrize(
    "kid",
    ["../../../../dev/null", "/etc/passwd", "' OR '1'='1", "x'; DROP TABLE keys; --", "unknown-kid", "\u0000"],
)
def test_kid_injection_and_unknown_kid(
    forge: Forge, claims: Callable[..., dict[str, Any]], clock: Clock, kid: str
) -> None:
    """A kid that is a path, SQL or simply unknown only ever misses the key lookup."""
    key = JWTKey.generate("HS256", kid="current")
    manager = TokenManager(KeySet([key]), issuer="auth-service", audience="energy-api", clock=clock)
    assert_refused(manager, forge({"alg": "HS256", "kid": kid}, claims()), UnknownKeyError)


@pytest.mark.parametrize("kid", [123, ["a"], {"k": 1}, "", "k" * 257, None])
def test_kid_of_wrong_type_or_size(
    manager: TokenManager, forge: Forge, claims: Callable[..., dict[str, Any]], kid: Any
) -> None:
    """A kid that is not a short non-empty string is a malformed header."""
    assert_refused(manager, forge({"alg": "HS256", "kid": kid}, claims()), MalformedTokenError)


@pytest.mark.parametrize("header", ["jwk", "jku", "x5u", "x5c"])
def test_embedded_key_headers_are_ignored(
    ed_key: JWTKey, claims: Callable[..., dict[str, Any]], clock: Clock, header: str
) -> None:
    """A token signed by an attacker's key advertised in jwk/jku/x5u/x5c is refused: those headers are never read."""
    manager = TokenManager(ed_key, issuer="auth-service", audience="energy-api", clock=clock)
    attacker = JWTKey.generate("EdDSA", kid=ed_key.kid)
    values = {
        "jwk": attacker.to_jwk(),
        "jku": "http://127.0.0.1:9/jwks.json",
        "x5u": "http://127.0.0.1:9/cert.pem",
        "x5c": ["MIIB"],
    }
    fields = {"alg": "EdDSA", "kid": ed_key.kid, header: values[header]}
    signing_input = f"{b64(json.dumps(fields).encode())}.{b64(json.dumps(claims()).encode())}".encode()
    token = f"{signing_input.decode()}.{b64(attacker.sign(signing_input))}"
    assert_refused(manager, token, InvalidSignatureError)


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"exp": 1_800_000_000 - 11}, TokenExpiredError),
        ({"nbf": 1_800_000_000 + 3600}, TokenNotYetValidError),
        ({"iat": 1_800_000_000 + 3600}, TokenNotYetValidError),
        ({"aud": "another-service"}, InvalidAudienceError),
        ({"aud": ["a", "b"]}, InvalidAudienceError),
        ({"iss": "evil-issuer"}, InvalidIssuerError),
        ({"type": "refresh"}, WrongTokenTypeError),
        ({"type": "id"}, WrongTokenTypeError),
        ({"exp": None}, MissingClaimError),
        ({"iat": None}, MissingClaimError),
        ({"nbf": None}, MissingClaimError),
        ({"jti": None}, MissingClaimError),
        ({"type": None}, MissingClaimError),
        ({"iss": None}, MissingClaimError),
        ({"aud": None}, MissingClaimError),
        ({"exp": "1900000000"}, MalformedTokenError),
        ({"exp": True}, MalformedTokenError),
        ({"exp": 10**30}, MalformedTokenError),
        ({"exp": -1}, MalformedTokenError),
        ({"jti": 42}, MalformedTokenError),
        ({"sub": 42}, MalformedTokenError),
        ({"aud": [1, 2]}, MalformedTokenError),
    ],
)
def test_claim_checks(
    manager: TokenManager,
    forge: Forge,
    claims: Callable[..., dict[str, Any]],
    overrides: dict[str, Any],
    error: type[InvalidTokenError],
) -> None:
    """Expired, not yet valid, wrong audience/issuer/type, missing or mistyped claims are refused."""
    assert_refused(manager, forge(HS, claims(**overrides)), error)


def test_expiry_and_leeway(manager: TokenManager, clock: Clock) -> None:
    """A token is accepted until exp plus leeway and refused after."""
    token = manager.create_access_token({"sub": "u"}, expires_in=60)
    clock.advance(60 + manager.leeway - 1)
    manager.verify_token(token)
    clock.advance(1)
    assert_refused(manager, token, TokenExpiredError)


def test_refresh_token_used_as_access_token(manager: TokenManager) -> None:
    """A refresh token is not accepted where an access token is required."""
    assert_refused(manager, manager.create_refresh_token("user-1"), WrongTokenTypeError)


async def test_access_token_used_to_refresh(secret: str) -> None:
    """An access token cannot be exchanged for a new pair."""
    manager = TokenManager(secret, revocation_store=InMemoryRevocationStore())
    with pytest.raises(WrongTokenTypeError):
        await manager.refresh(manager.create_access_token({"sub": "user-1"}))


def test_tampered_payload(manager: TokenManager) -> None:
    """Changing the payload (role: viewer -> admin) breaks the signature."""
    token = manager.create_access_token({"sub": "u", "role": "viewer"})
    header, _, signature = token.split(".")
    evil = manager.verify_token(token) | {"role": "admin"}
    assert_refused(manager, f"{header}.{b64(json.dumps(evil).encode())}.{signature}", InvalidSignatureError)


def test_tampered_header(manager: TokenManager) -> None:
    """Changing the header (adding a field) breaks the signature."""
    _, payload, signature = manager.create_access_token({"sub": "u"}).split(".")
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "x": 1}).encode())
    assert_refused(manager, f"{header}.{payload}.{signature}", InvalidSignatureError)


def test_non_canonical_base64_is_refused(manager: TokenManager) -> None:
    """A signature whose last character differs only in unused bits decodes to the same bytes, and is refused."""
    token = manager.create_access_token({"sub": "u"})
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    # 32 bytes in 43 characters: the last character carries 4 bits, its 2 low bits are unused.
    twins = [alphabet[(last & ~0b11) | low] for low in range(4) if (last & ~0b11) | low != last]
    assert len(twins) == 3
    for twin in twins:
        assert_refused(manager, token[:-1] + twin, MalformedTokenError)
    manager.verify_token(token)


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda t: t.rsplit(".", 1)[0], MalformedTokenError),  # signature segment dropped
        (lambda t: t.rsplit(".", 1)[0] + ".", InvalidSignatureError),  # empty signature
        (lambda t: t.rsplit(".", 1)[0] + "." + b64(b"s" * 31), InvalidSignatureError),  # 31-byte signature
        (lambda t: t[: len(t) - (len(t.rsplit(".", 1)[1]) - 1) % 4], MalformedTokenError),  # length 4n+1
        (lambda t: t.split(".")[0], MalformedTokenError),  # header only
        (lambda t: t[:20], MalformedTokenError),  # truncated inside the header
        (lambda t: t + ".extra", MalformedTokenError),  # four segments
        (lambda t: t.replace(".", "!", 1), MalformedTokenError),
        (lambda t: t + "=", MalformedTokenError),  # padding is not base64url
        (lambda t: t.replace("e", "+", 1), MalformedTokenError),  # standard alphabet
        (lambda t: t[:10] + " " + t[10:], MalformedTokenError),
        (lambda t: t[:10] + "é" + t[10:], MalformedTokenError),
        (lambda t: "Bearer " + t, MalformedTokenError),
        (lambda t: "", MalformedTokenError),
        (lambda t: "..", MalformedTokenError),
    ],
)
def test_truncated_and_non_base64_segments(
    manager: TokenManager, mutate: Callable[[str], str], error: type[InvalidTokenError]
) -> None:
    """Truncated tokens and segments outside the base64url alphabet are refused."""
    assert_refused(manager, mutate(manager.create_access_token({"sub": "u"})), error)


@pytest.mark.parametrize("token", [None, 123, 1.5, ["a.b.c"], {"t": 1}])
def test_non_string_tokens(manager: TokenManager, token: object) -> None:
    """A token that is not a string is malformed, not a TypeError."""
    assert_refused(manager, token, MalformedTokenError)


def test_oversized_token(manager: TokenManager) -> None:
    """A token longer than max_token_bytes is refused before it is parsed."""
    token = manager.create_access_token({"sub": "u", "blob": "x" * 9000})
    assert_refused(manager, token, TokenTooLargeError)


async def test_revoked_jti(secret: str) -> None:
    """A revoked token is refused by verify_token_async."""
    manager = TokenManager(secret, revocation_store=InMemoryRevocationStore())
    token = manager.create_access_token({"sub": "u"})
    await manager.revoke(token)
    with pytest.raises(TokenRevokedError) as info:
        await manager.verify_token_async(token)
    assert info.value.error_code == "TOKEN_REVOKED"


@pytest.mark.parametrize(
    "raw",
    [
        {"exp": "null"},
        {"exp": "1e400"},
        {"exp": "-1e400"},
        {"nbf": "NaN"},
        {"iat": "Infinity"},
        {"exp": "9" * 5000},
        {"exp": "{}"},
        {"exp": "[1900000000]"},
        {"deep": "[" * 1000 + "]" * 1000},
        {"deep": '{"a":' * 20 + "1" + "}" * 20},
    ],
)
def test_hostile_claim_values(
    manager: TokenManager, forge: Forge, claims: Callable[..., dict[str, Any]], raw: dict[str, str]
) -> None:
    """Null, overflowing, non-finite, huge or deeply nested claims are malformed tokens, never a 500."""
    manager.max_token_bytes = 64_000
    assert_refused(manager, forge(HS, raw_payload(claims(), **raw)), MalformedTokenError)


@pytest.mark.parametrize(
    "header",
    [
        '{"alg":"HS256","x":' + "[" * 1000 + "]" * 1000 + "}",
        '{"alg":"HS256","x":' + '{"a":' * 1000 + "1" + "}" * 1000 + "}",
        '{"alg":"HS256","alg":"none"}',
        '{"alg":"none","alg":"HS256"}',
        '{"alg":"HS256","crit":["exp"],"exp":1}',
        '{"alg":"HS256",}',
        '["HS256"]',
        '"HS256"',
        '{"typ":"JWT"}',
        '{"alg":256}',
    ],
)
def test_hostile_headers(
    manager: TokenManager, forge: Forge, claims: Callable[..., dict[str, Any]], header: str
) -> None:
    """A 1,000-deep nested, duplicated, critical, non-object or alg-less header is malformed."""
    manager.max_token_bytes = 64_000
    assert_refused(manager, forge(header, claims()), MalformedTokenError)


@pytest.mark.parametrize(
    "payload",
    [
        '{"sub":"viewer","sub":"admin","iat":1800000000,"nbf":1800000000,"exp":1800000600,"jti":"j","type":"access","iss":"auth-service","aud":"energy-api"}',
        '{"type":"refresh","type":"access","iat":1800000000,"nbf":1800000000,"exp":1800000600,"jti":"j","iss":"auth-service","aud":"energy-api"}',
        "[]",
        "123",
        '"claims"',
        "",
        b"\xff\xfe{}",
        b'{"sub":"\xc3"}',
    ],
)
def test_duplicate_claims_and_non_object_payloads(manager: TokenManager, forge: Forge, payload: str | bytes) -> None:
    """Duplicate claim names, non-object or non-UTF-8 payloads are malformed."""
    assert_refused(manager, forge(HS, payload), MalformedTokenError)


def test_pyjwt_would_accept_the_duplicate_claim(secret: str, forge: Forge) -> None:
    """Raw PyJWT keeps the last duplicate, which is why energy-auth parses payloads itself."""
    token = forge(HS, '{"role":"viewer","role":"admin"}')
    assert jwt.decode(token, secret, algorithms=["HS256"])["role"] == "admin"


def test_random_mutations_never_escape_as_other_errors(manager: TokenManager) -> None:
    """Any byte-level mutation of a valid token either still verifies or raises an InvalidTokenError."""
    rng = random.Random(20261126)
    token = manager.create_access_token({"sub": "user-1", "permissions": ["users:read"]})
    alphabet = "ABCxyz019-_.=+/ !\x00é{}\"'"
    for _ in range(2000):
        chars = list(token)
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(chars))
            action = rng.random()
            if action < 0.4:
                chars[position] = rng.choice(alphabet)
            elif action < 0.7:
                del chars[position]
            else:
                chars.insert(position, rng.choice(alphabet))
        with contextlib.suppress(InvalidTokenError):
            manager.verify_token("".join(chars))
