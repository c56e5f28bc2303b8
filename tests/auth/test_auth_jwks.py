"""Tests for JWKS export and JWKSVerifier: refetch on unknown kid (rate-limited), last good key set."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from energy_auth import (
    InvalidAudienceError,
    JWKSUnavailableError,
    JWKSVerifier,
    JWTKey,
    KeySet,
    TokenManager,
    UnknownKeyError,
    jwks_url_fetcher,
)
from energy_common.exceptions import ConfigurationError

from .conftest import Clock


class Issuer:
    """The auth service side: a TokenManager whose JWKS a verifier fetches, with a switch to fail."""

    def __init__(self, clock: Clock, algorithm: str = "EdDSA") -> None:
        self.clock = clock
        self.keys = [JWTKey.generate(algorithm)]
        self.fetches = 0
        self.failing = False

    @property
    def manager(self) -> TokenManager:
        return TokenManager(
            KeySet(self.keys, signing_kid=self.keys[0].kid), issuer="auth", audience="api", clock=self.clock
        )

    def rotate(self, algorithm: str = "EdDSA") -> None:
        self.keys.insert(0, JWTKey.generate(algorithm))

    async def fetch(self) -> Mapping[str, Any]:
        self.fetches += 1
        if self.failing:
            raise ConnectionError("issuer down")
        return self.manager.jwks()


@pytest.fixture
def issuer(clock: Clock) -> Issuer:
    """An issuer with one Ed25519 key."""
    return Issuer(clock)


def make_verifier(issuer: Issuer, **kwargs: Any) -> JWKSVerifier:
    """A verifier of the issuer's tokens on the fake clock."""
    return JWKSVerifier(issuer.fetch, issuer="auth", audience="api", clock=issuer.clock, **kwargs)


def test_jwks_export_holds_only_public_material() -> None:
    """The JWKS has kid/alg/use and public members only; HMAC keys are never exported."""
    keys = KeySet(
        [JWTKey.generate("RS256", kid="r"), JWTKey.generate("ES256", kid="e"), JWTKey.generate("HS256", kid="h")],
        signing_kid="r",
    )
    document = keys.to_jwks()
    assert [k["kid"] for k in document["keys"]] == ["r", "e"]
    for jwk in document["keys"]:
        assert jwk["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & jwk.keys()
    assert jwt.PyJWKSet.from_dict(document).keys[0].key_id == "r"


async def test_verifier_accepts_the_issuers_tokens(issuer: Issuer) -> None:
    """A token from the issuer verifies with the fetched public keys only."""
    verifier = make_verifier(issuer)
    claims = await verifier.verify_token_async(issuer.manager.create_access_token({"sub": "u"}))
    assert claims["sub"] == "u"
    assert issuer.fetches == 1


async def test_claims_are_checked(issuer: Issuer, clock: Clock) -> None:
    """Audience and the other claim rules apply to JWKS-verified tokens too."""
    verifier = JWKSVerifier(issuer.fetch, issuer="auth", audience="other", clock=clock)
    with pytest.raises(InvalidAudienceError):
        await verifier.verify_token_async(issuer.manager.create_access_token({"sub": "u"}))


async def test_unknown_kid_triggers_one_refetch(issuer: Issuer) -> None:
    """After the issuer rotates, the first token with the new kid refetches the key set."""
    verifier = make_verifier(issuer, min_refetch_interval=0)
    await verifier.verify_token_async(issuer.manager.create_access_token({"sub": "u"}))
    issuer.rotate()
    claims = await verifier.verify_token_async(issuer.manager.create_access_token({"sub": "v"}))
    assert claims["sub"] == "v"
    assert issuer.fetches == 2


async def test_refetch_is_rate_limited(issuer: Issuer) -> None:
    """Tokens with random unknown kids cause at most one fetch per interval."""
    verifier = make_verifier(issuer, min_refetch_interval=3600)
    await verifier.verify_token_async(issuer.manager.create_access_token({"sub": "u"}))
    stranger = TokenManager(JWTKey.generate("EdDSA"), issuer="auth", audience="api", clock=issuer.clock)
    for _ in range(20):
        with pytest.raises(UnknownKeyError):
            await verifier.verify_token_async(stranger.create_access_token({"sub": "x"}))
    assert issuer.fetches == 1


async def test_failed_fetch_keeps_the_last_good_key_set(issuer: Issuer) -> None:
    """When the issuer is down, tokens signed with known keys still verify."""
    verifier = make_verifier(issuer, min_refetch_interval=0, max_age=0)
    token = issuer.manager.create_access_token({"sub": "u"})
    await verifier.verify_token_async(token)
    issuer.failing = True
    assert (await verifier.verify_token_async(token))["sub"] == "u"
    assert issuer.fetches >= 2


async def test_garbage_jwks_keeps_the_last_good_key_set(issuer: Issuer) -> None:
    """A JWKS without usable keys is treated as a failed fetch."""
    documents: list[Any] = [issuer.manager.jwks(), {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, {"nope": 1}, []]

    async def fetch() -> Any:
        return documents.pop(0)

    verifier = JWKSVerifier(fetch, issuer="auth", audience="api", clock=issuer.clock, min_refetch_interval=0)
    token = issuer.manager.create_access_token({"sub": "u"})
    await verifier.verify_token_async(token)
    for _ in range(3):
        assert not await verifier.refresh_keys()
    assert (await verifier.verify_token_async(token))["sub"] == "u"


async def test_no_key_set_ever_is_503(issuer: Issuer) -> None:
    """Without any successful fetch, verification fails with JWKSUnavailableError (503)."""
    issuer.failing = True
    verifier = make_verifier(issuer)
    with pytest.raises(JWKSUnavailableError) as info:
        await verifier.verify_token_async(issuer.manager.create_access_token({"sub": "u"}))
    assert info.value.status_code == 503


@pytest.mark.parametrize("algorithms", [("HS256",), ()])
def test_verifier_refuses_symmetric_algorithms(issuer: Issuer, algorithms: tuple[str, ...]) -> None:
    """A JWKS verifier accepts asymmetric algorithms only."""
    with pytest.raises(ConfigurationError):
        JWKSVerifier(issuer.fetch, algorithms=algorithms)


async def test_keys_of_disallowed_algorithms_are_skipped(clock: Clock) -> None:
    """An RS256 key in the JWKS is ignored by an EdDSA-only verifier."""
    issuer = Issuer(clock, "RS256")
    verifier = make_verifier(issuer, algorithms=("EdDSA",))
    with pytest.raises(JWKSUnavailableError):
        await verifier.verify_token_async(issuer.manager.create_access_token({"sub": "u"}))


class _JWKSHandler(BaseHTTPRequestHandler):
    document: bytes = b"{}"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.document)))
        self.end_headers()
        self.wfile.write(self.document)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def jwks_server(issuer: Issuer) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving the issuer's JWKS; yields its URL."""
    handler = type("Handler", (_JWKSHandler,), {"document": json.dumps(issuer.manager.jwks()).encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="jwks-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_url_fetcher_against_a_real_server(issuer: Issuer, jwks_server: str) -> None:
    """jwks_url_fetcher loads the key set over HTTP and the verifier uses it."""
    verifier = JWKSVerifier(jwks_url_fetcher(jwks_server, timeout=5), issuer="auth", audience="api", clock=issuer.clock)
    assert (await verifier.verify_token_async(issuer.manager.create_access_token({"sub": "u"})))["sub"] == "u"


async def test_url_fetcher_failure_is_contained(issuer: Issuer) -> None:
    """A fetch from a port where nothing listens fails without escaping as an OSError."""
    verifier = JWKSVerifier(jwks_url_fetcher("http://127.0.0.1:9/jwks.json", timeout=2), clock=issuer.clock)
    with pytest.raises(JWKSUnavailableError):
        await verifier.verify_token_async(issuer.manager.create_access_token({"sub": "u"}))


@pytest.mark.parametrize("url", ["http://auth.example.com/jwks.json", "ftp://127.0.0.1/jwks", "file:///etc/passwd"])
def test_url_fetcher_needs_https(url: str) -> None:
    """Plain http is allowed for loopback only; other schemes never."""
    with pytest.raises(ConfigurationError):
        jwks_url_fetcher(url)


RFC7638_KEY = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMs"
        "tn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5"
        "hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
}


def test_thumbprint_matches_the_rfc7638_example() -> None:
    """The default kid of a JWK without kid is its RFC 7638 thumbprint (the RFC's own example)."""
    key = JWTKey.from_jwk(RFC7638_KEY)
    assert key.kid == key.thumbprint() == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert not key.can_sign
    assert JWTKey.from_jwk(RFC7638_KEY | {"kid": "2011-04-29"}).kid == "2011-04-29"


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB", "alg": "HS256"},
        {"kty": "RSA", "e": "AQAB"},
        {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
        {"kty": "OKP", "crv": "X25519", "x": "AA"},
        {"kty": "XYZ"},
    ],
)
def test_unusable_jwks_entries_are_refused(jwk: dict[str, Any]) -> None:
    """Symmetric, incomplete, invalid or unknown JWKs are configuration errors, not crashes."""
    with pytest.raises(ConfigurationError):
        JWTKey.from_jwk(jwk)
