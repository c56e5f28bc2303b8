"""Registered-claim rules: every token carries exp, iat, nbf, jti and type, all checked strictly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from energy_auth._errors import (
    InvalidAudienceError,
    InvalidIssuerError,
    MalformedTokenError,
    MissingClaimError,
    TokenExpiredError,
    TokenNotYetValidError,
    WrongTokenTypeError,
)

__all__ = ["FAMILY_CLAIM", "RESERVED_CLAIMS", "TYPE_CLAIM", "ClaimRules", "TokenType", "validate_claims"]

TokenType = Literal["access", "refresh"]
"""The two token types: ``access`` for API calls, ``refresh`` to get a new pair."""

TYPE_CLAIM = "type"
# The session (refresh-token family) a token belongs to.
FAMILY_CLAIM = "fam"
RESERVED_CLAIMS = frozenset({"exp", "iat", "nbf", "jti", TYPE_CLAIM, FAMILY_CLAIM, "iss", "aud"})
# 9999-12-31T23:59:59Z: later "times" are hostile and would overflow datetime and Redis TTLs.
MAX_TIMESTAMP = 253_402_300_799
MAX_JTI_LENGTH = 256


@dataclass(frozen=True, slots=True)
class ClaimRules:
    """What a verifier expects of the claims.

    Attributes:
        issuer: Required ``iss``; ``None`` ignores ``iss``.
        audiences: Accepted ``aud`` values; ``None`` refuses any token carrying ``aud``.
        leeway: Seconds of clock skew tolerated on exp, nbf and iat.
        clock: Returns the current Unix time.
    """

    issuer: str | None
    audiences: frozenset[str] | None
    leeway: float
    clock: Callable[[], float]


def _time_claim(payload: dict[str, Any], name: str) -> float:
    if name not in payload:
        raise MissingClaimError(f"The token lacks the '{name}' claim.", {"claim": name})
    value = payload[name]
    if type(value) not in (int, float) or not 0 <= value <= MAX_TIMESTAMP:
        raise MalformedTokenError(f"The token's '{name}' claim must be a Unix time.", {"claim": name})
    return float(value)


def validate_claims(payload: dict[str, Any], token_type: TokenType | None, rules: ClaimRules) -> None:
    """Check the registered claims of a payload whose signature has been verified.

    Args:
        payload: The decoded payload.
        token_type: The expected ``type`` claim; ``None`` accepts either type.
        rules: The verifier's expectations.

    Raises:
        MissingClaimError: A required claim is absent.
        MalformedTokenError: A claim has the wrong type or an impossible value.
        TokenExpiredError: ``exp`` has passed.
        TokenNotYetValidError: ``nbf`` or ``iat`` lies in the future.
        InvalidIssuerError: ``iss`` is not the configured issuer.
        InvalidAudienceError: ``aud`` does not name this service.
        WrongTokenTypeError: ``type`` is not the expected one.
    """
    exp = _time_claim(payload, "exp")
    nbf = _time_claim(payload, "nbf")
    iat = _time_claim(payload, "iat")
    jti = payload.get("jti")
    if jti is None:
        raise MissingClaimError("The token lacks the 'jti' claim.", {"claim": "jti"})
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise MalformedTokenError("The token's 'jti' claim must be a short string.", {"claim": "jti"})
    kind = payload.get(TYPE_CLAIM)
    if kind is None:
        raise MissingClaimError("The token lacks the 'type' claim.", {"claim": TYPE_CLAIM})
    if "sub" in payload and not isinstance(payload["sub"], str):
        raise MalformedTokenError("The token's 'sub' claim must be a string.", {"claim": "sub"})

    now = rules.clock()
    if now - rules.leeway >= exp:
        raise TokenExpiredError()
    if nbf > now + rules.leeway:
        raise TokenNotYetValidError()
    if iat > now + rules.leeway:
        raise TokenNotYetValidError("The token was issued in the future; check the issuer's clock.")

    if rules.issuer is not None:
        if "iss" not in payload:
            raise MissingClaimError("The token lacks the 'iss' claim.", {"claim": "iss"})
        if payload["iss"] != rules.issuer:
            raise InvalidIssuerError()
    _check_audience(payload, rules.audiences)

    if token_type is not None and kind != token_type:
        raise WrongTokenTypeError(
            f"A {token_type} token is required here.",
            {"expected": token_type},
        )
    if kind not in ("access", "refresh"):
        raise WrongTokenTypeError("The token's 'type' claim is not 'access' or 'refresh'.")


def _check_audience(payload: dict[str, Any], audiences: frozenset[str] | None) -> None:
    if audiences is None:
        if "aud" in payload:
            raise InvalidAudienceError("The token is meant for a specific audience but this service expects none.")
        return
    if "aud" not in payload:
        raise MissingClaimError("The token lacks the 'aud' claim.", {"claim": "aud"})
    aud = payload["aud"]
    values = [aud] if isinstance(aud, str) else aud
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise MalformedTokenError("The token's 'aud' claim must be a string or a list of strings.", {"claim": "aud"})
    if audiences.isdisjoint(values):
        raise InvalidAudienceError()
