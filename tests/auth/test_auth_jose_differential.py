"""Differential test of energy-auth's own JWS parser (``_jose.py``) against PyJWT's ``jwt.decode``.

A few thousand generated tokens — valid ones, byte mutations, crafted headers (``alg``
none/arrays/unknown, ``crit``, ``b64: false``, ``kid`` of every JSON type, ``typ``),
non-canonical base64, duplicate JSON names, huge or odd ``exp``/``nbf``/``iat`` — go to
both verifiers with the same key, algorithm and required claims. energy-auth must
accept exactly the tokens PyJWT accepts, and refuse every other one with a typed 401
(:class:`~energy_auth.InvalidTokenError`), never another exception.

Where energy-auth is stricter on purpose, the case family is listed in
:data:`STRICTER` with the reason; for those, energy-auth must refuse (with a 401) and
PyJWT's answer is not compared. There is no family where energy-auth accepts what PyJWT
refuses.
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from energy_auth import InvalidTokenError, JWTKey, TokenManager

STRICTER = {
    "duplicate-names": "a JSON object repeating a member name is ambiguous (RFC 7515 §5.2, RFC 8259 §4); PyJWT keeps the last",
    "crit": "no JWS extension is supported, so any crit is refused; PyJWT supports crit=[b64] with b64=true",
    "b64-not-true": "unencoded payloads (RFC 7797) are not supported, so b64 must be absent or true; PyJWT reads null/0 as true",
    "aud-when-none-expected": "a token naming an audience, even an empty one, is refused by a service that expects none; PyJWT ignores a falsy aud",
    "padding": "padding is not part of base64url in JWS (RFC 7515 §2); PyJWT strips it",
    "kid-not-ours": "a kid must name a key we hold; PyJWT ignores kid when given the key",
    "kid-empty-or-long": "kid must be a non-empty string of at most 256 characters",
    "type-claim": "energy-auth tokens carry type=access|refresh, and an access token is required here",
    "time-not-number": "NumericDate is a JSON number (RFC 7519 §2); PyJWT also takes numeric strings and booleans",
    "time-out-of-range": "times outside 0..9999-12-31 are refused (they overflow datetimes and Redis TTLs); PyJWT takes them",
    "jti-shape": "jti must be a non-empty string of at most 256 characters; PyJWT takes an empty one",
    "non-finite": "NaN/Infinity are not JSON (RFC 8259 §6); Python's json module accepts them",
    "too-deep": "JSON nested deeper than 16 levels is refused before anything reads it",
    "too-large": "tokens over 8 KiB are refused before parsing",
}
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
JUNK = "=+/ .\n\té"


def b64(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class Case:
    """One generated token and the family it belongs to (a key of STRICTER, or a plain family)."""

    family: str
    token: str


class Maker:
    """Builds signed tokens from raw header/payload JSON text with one key."""

    def __init__(self, key: JWTKey, rng: random.Random) -> None:
        self.key = key
        self.rng = rng
        self.now = int(time.time())

    def header(self, **fields: Any) -> dict[str, Any]:
        base: dict[str, Any] = {"alg": self.key.algorithm, "typ": "JWT"}
        if self.key.kid is not None:
            base["kid"] = self.key.kid
        base.update(fields)
        return {k: v for k, v in base.items() if v is not DROP}

    def claims(self, **fields: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "sub": f"user-{self.rng.randrange(1000)}",
            "iat": self.now - 60,
            "nbf": self.now - 60,
            "exp": self.now + 600,
            "jti": f"jti-{self.rng.randrange(10**9)}",
            "type": "access",
        }
        base.update(fields)
        return {k: v for k, v in base.items() if v is not DROP}

    def sign(self, header: dict[str, Any] | str, payload: dict[str, Any] | str | bytes) -> str:
        header_text = header if isinstance(header, str) else json.dumps(header)
        payload_raw = (
            payload
            if isinstance(payload, bytes)
            else (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        )
        signing_input = f"{b64(header_text.encode())}.{b64(payload_raw)}"
        return f"{signing_input}.{b64(self.key.sign(signing_input.encode()))}"


DROP = object()


def generate(maker: Maker, mutations: int) -> Iterator[Case]:
    """Every family of tokens, with ``mutations`` random byte mutations of valid tokens."""
    rng, now = maker.rng, maker.now
    for _ in range(50):
        yield Case("valid", maker.sign(maker.header(), maker.claims()))
    yield Case("valid", maker.sign(maker.header(typ=DROP), maker.claims()))
    yield Case("valid", maker.sign(maker.header(), maker.claims(sub=DROP, extra={"nested": [1, 2, {"a": None}]})))
    yield Case("valid", maker.sign(maker.header(), maker.claims(exp=now + 600.5, iat=now - 1.25)))

    # Crafted headers.
    for alg in ["none", "None", "NONE", "", "HS999", "RS256", "ES256", "HS256", "HS512", "EdDSA", "ED25519"]:
        yield Case("alg", maker.sign(maker.header(alg=alg), maker.claims()))
    for alg in [None, 1, True, ["HS256"], [maker.key.algorithm], {"alg": maker.key.algorithm}]:
        yield Case("alg", maker.sign(maker.header(alg=alg), maker.claims()))
    yield Case("alg", maker.sign(maker.header(alg=DROP), maker.claims()))
    for crit in [["exp"], [], ["b64"], "b64", [1], ["kid", "kid"]]:
        yield Case("crit", maker.sign(maker.header(crit=crit), maker.claims()))
    for b64_flag, crit in [(False, ["b64"]), (True, ["b64"])]:
        yield Case("crit", maker.sign(maker.header(b64=b64_flag, crit=crit), maker.claims()))
    yield Case("b64-true", maker.sign(maker.header(b64=True), maker.claims()))
    for b64_flag in [False, None, 0, "false"]:
        yield Case("b64-not-true", maker.sign(maker.header(b64=b64_flag), maker.claims()))
    yield Case("b64", maker.sign(maker.header(b64=False, crit=["b64"]), json.dumps(maker.claims())))
    for kid in [1, 1.5, True, False, None, ["k"], {"k": 1}]:
        yield Case("kid-type", maker.sign(maker.header(kid=kid), maker.claims()))
    yield Case("kid-empty-or-long", maker.sign(maker.header(kid=""), maker.claims()))
    yield Case("kid-empty-or-long", maker.sign(maker.header(kid="k" * 300), maker.claims()))
    if maker.key.kid is None:
        yield Case("kid-not-ours", maker.sign(maker.header(kid="some-key"), maker.claims()))
    else:
        yield Case("kid-not-ours", maker.sign(maker.header(kid="not-" + maker.key.kid), maker.claims()))
    for typ in ["jwt", "at+jwt", "JOSE", 123, None, ["JWT"]]:
        yield Case("typ", maker.sign(maker.header(typ=typ), maker.claims()))
    for header_text in ["[]", '"x"', "null", "{", "{}", '{"alg":"' + maker.key.algorithm + '"']:
        yield Case("header-json", maker.sign(header_text, maker.claims()))

    # Payloads.
    for payload in ["[]", '"x"', "1", "{", "", "null"]:
        yield Case("payload-json", maker.sign(maker.header(), payload))
    yield Case("payload-json", maker.sign(maker.header(), b"\xff\xfe{}"))
    yield Case("too-deep", maker.sign(maker.header(), maker.claims(deep=json.loads("[" * 40 + "]" * 40))))
    yield Case("too-large", maker.sign(maker.header(), maker.claims(blob="x" * 9000)))
    exp_ok = maker.claims()
    yield Case(
        "duplicate-names",
        maker.sign(
            '{"alg":"none","alg":"'
            + maker.key.algorithm
            + '"'
            + (f',"kid":"{maker.key.kid}"' if maker.key.kid else "")
            + "}",
            exp_ok,
        ),
    )
    body = json.dumps(exp_ok)[:-1] + f',"exp":{now + 900}}}'
    yield Case("duplicate-names", maker.sign(maker.header(), body))
    body = json.dumps(exp_ok)[:-1] + ',"sub":"admin"}'
    yield Case("duplicate-names", maker.sign(maker.header(), body))
    for text in ["NaN", "Infinity", "-Infinity"]:
        yield Case("non-finite", maker.sign(maker.header(), json.dumps(maker.claims())[:-1] + f',"score":{text}}}'))
    yield Case("non-finite", maker.sign(maker.header(), json.dumps(maker.claims(exp=DROP))[:-1] + ',"exp":1e400}'))

    # Registered claims.
    for name in ["exp", "iat", "nbf", "jti"]:
        yield Case("claims-missing", maker.sign(maker.header(), maker.claims(**{name: DROP})))
    yield Case("type-claim", maker.sign(maker.header(), maker.claims(type=DROP)))
    yield Case("type-claim", maker.sign(maker.header(), maker.claims(type="refresh")))
    yield Case("type-claim", maker.sign(maker.header(), maker.claims(type="id")))
    for name in ["exp", "iat", "nbf"]:
        for value in [str(now + 600 if name == "exp" else now - 60), True, False, None, [now], {"t": now}]:
            yield Case("time-not-number", maker.sign(maker.header(), maker.claims(**{name: value})))
    for value in [10**30, 2**63, 253_402_300_800, -1, -(10**30)]:
        yield Case("time-out-of-range", maker.sign(maker.header(), maker.claims(exp=value)))
    for name in ["iat", "nbf"]:
        yield Case("time-out-of-range", maker.sign(maker.header(), maker.claims(**{name: -5})))
    for exp in [now - 3600, now - 30, 0, 1.5]:
        yield Case("expired", maker.sign(maker.header(), maker.claims(exp=exp)))
    for name in ["nbf", "iat"]:
        for value in [now + 3600, 10**12, 253_402_300_799]:
            yield Case("future", maker.sign(maker.header(), maker.claims(**{name: value})))
    yield Case("jti-shape", maker.sign(maker.header(), maker.claims(jti="")))
    yield Case("jti-shape", maker.sign(maker.header(), maker.claims(jti="j" * 300)))
    for jti in [1, None, ["a"], {"a": 1}, True]:
        yield Case("jti-type", maker.sign(maker.header(), maker.claims(jti=jti)))
    for sub in [1, None, ["a"], True]:
        yield Case("sub-type", maker.sign(maker.header(), maker.claims(sub=sub)))
    for aud in ["energy-api", ["a", "b"], 1]:
        yield Case("aud", maker.sign(maker.header(), maker.claims(aud=aud)))
    for aud in [[], None, ""]:
        yield Case("aud-when-none-expected", maker.sign(maker.header(), maker.claims(aud=aud)))

    # Encodings of a valid token.
    good = maker.sign(maker.header(), maker.claims())
    head, body_segment, sig = good.split(".")
    yield Case("signature", f"{head}.{body_segment}.")
    yield Case("signature", f"{head}.{body_segment}")
    yield Case("signature", f"{head}.{body_segment}.{sig}.{sig}")
    yield Case("signature", f"{head}.{body_segment}.{sig[:-4]}")
    yield Case("padding", f"{head}.{body_segment}.{sig}=")
    yield Case("padding", f"{head}==.{body_segment}.{sig}")
    # Non-canonical last characters: same bytes, other text (both decoders are lenient here).
    for index in range(len(ALPHABET)):
        variant = sig[:-1] + ALPHABET[index]
        if variant != sig:
            yield Case("last-char", f"{head}.{body_segment}.{variant}")

    # Random mutations of valid tokens: replace, insert or delete one character.
    for _ in range(mutations):
        token = maker.sign(maker.header(), maker.claims())
        position = rng.randrange(len(token))
        action = rng.choice(["replace", "insert", "delete"])
        char = rng.choice(ALPHABET + JUNK) if rng.random() < 0.9 else rng.choice(JUNK)
        if action == "delete":
            mutated = token[:position] + token[position + 1 :]
            char = ""
        elif action == "insert":
            mutated = token[:position] + char + token[position:]
        else:
            mutated = token[:position] + char + token[position + 1 :]
        if mutated == token:
            continue
        yield Case("padding" if char == "=" else "mutation", mutated)


def pyjwt_accepts(token: str, key: Any, algorithm: str) -> bool:
    """What PyJWT says with the same key, algorithm and required claims (any exception is a refusal)."""
    try:
        jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            options={"require": ["exp", "iat", "nbf", "jti"]},
            leeway=10,
        )
    except Exception:  # noqa: BLE001 - PyJWT raises non-PyJWT errors on some hostile input (OverflowError)
        return False
    return True


def energy_accepts(manager: TokenManager, token: str) -> bool:
    """What energy-auth says; anything but acceptance must be a typed 401."""
    try:
        manager.verify_token(token)
    except InvalidTokenError as exc:
        refusal: InvalidTokenError | None = exc
    else:
        refusal = None
    if refusal is None:
        return True
    assert refusal.status_code == 401
    assert refusal.error_code.startswith("TOKEN_")
    return False


@pytest.fixture(scope="module", params=["HS256", "EdDSA"])
def setup(request: pytest.FixtureRequest) -> tuple[TokenManager, Any, JWTKey]:
    """The same key on both sides: an HMAC secret, or an Ed25519 pair (PyJWT gets the public PEM)."""
    if request.param == "HS256":
        secret = b"k" * 8 + bytes(range(24))  # 32 bytes, 8+ distinct
        key = JWTKey.hmac(secret)
        return TokenManager(key), secret, key
    key = JWTKey.generate("EdDSA")
    return TokenManager(key), key.public_pem(), key


def test_energy_accepts_exactly_what_pyjwt_accepts(setup: tuple[TokenManager, Any, JWTKey]) -> None:
    """On ~3,500 generated tokens the two verifiers agree, except in the named stricter families, where we refuse."""
    manager, pyjwt_key, key = setup
    maker = Maker(key, random.Random(20261202))
    cases = list(generate(maker, mutations=3000))
    disagreements, stricter_seen, accepted = [], set(), 0
    for case in cases:
        ours = energy_accepts(manager, case.token)
        theirs = pyjwt_accepts(case.token, pyjwt_key, key.algorithm)
        accepted += ours
        if case.family in STRICTER:
            assert not ours, f"{case.family}: energy-auth accepted a token it must refuse: {case.token!r}"
            stricter_seen.add(case.family)
        elif ours != theirs:
            disagreements.append((case.family, ours, theirs, case.token))
    assert not disagreements, f"{len(disagreements)} disagreements, e.g. {disagreements[:5]}"
    assert accepted >= 50, "the valid tokens must pass (else the test compares nothing)"
    assert stricter_seen == set(STRICTER), set(STRICTER) - stricter_seen
