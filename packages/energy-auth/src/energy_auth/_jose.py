"""The decode boundary: strict JWS compact parsing before any claim is trusted.

Every step that can fail on hostile input (length, segment alphabet, canonical base64, UTF-8,
JSON with duplicate names, non-finite numbers or deep nesting, header fields) raises a
typed :class:`~energy_auth.MalformedTokenError`, never a bare ``ValueError``,
``RecursionError`` or ``OverflowError``. The algorithm comes from the key the verifier
holds; ``jku``, ``x5u``, ``jwk`` and ``x5c`` headers are never read.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from energy_auth._errors import (
    InvalidAlgorithmError,
    InvalidSignatureError,
    MalformedTokenError,
    TokenTooLargeError,
    UnknownKeyError,
)
from energy_auth._keys import JWTKey
from energy_auth._keyset import KeySet

__all__ = ["DEFAULT_MAX_TOKEN_BYTES", "ParsedToken", "b64encode", "parse_token", "select_key", "verify_signature"]

DEFAULT_MAX_TOKEN_BYTES = 8192
MAX_JSON_DEPTH = 16
MAX_KID_LENGTH = 256
_COMPACT = re.compile(rb"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]*)")


class _DuplicateNameError(ValueError):
    pass


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateNameError
    return obj


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _no_constant(text: str) -> Any:
    raise ValueError(text)


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs_hook, parse_float=_finite_float, parse_constant=_no_constant)


def b64encode(data: bytes) -> bytes:
    """Encode ``data`` as unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _b64decode(segment: bytes, what: str) -> bytes:
    try:
        data = base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedTokenError(f"The token's {what} segment is not valid base64url.") from exc
    # The decoder ignores the unused low bits of the last character, so several texts
    # decode to the same bytes: accept only the canonical one (no malleable signatures).
    if b64encode(data) != segment:
        raise MalformedTokenError(f"The token's {what} segment is not canonical base64url.")
    return data


def _too_deep(obj: dict[str, Any]) -> bool:
    stack: list[tuple[Any, int]] = [(value, 2) for value in obj.values() if isinstance(value, dict | list)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def load_json_object(segment: bytes, what: str) -> dict[str, Any]:
    """Decode one base64url segment into a JSON object, strictly.

    Raises:
        MalformedTokenError: Bad base64, bad UTF-8, bad JSON, duplicate member names,
            NaN/Infinity or overflowing numbers, nesting deeper than 16, or not an object.
    """
    raw = _b64decode(segment, what)
    try:
        obj = _DECODER.decode(raw.decode("utf-8"))
    except _DuplicateNameError as exc:
        raise MalformedTokenError(f"The token's {what} repeats a member name.") from exc
    except (ValueError, RecursionError, OverflowError) as exc:
        raise MalformedTokenError(f"The token's {what} is not valid JSON.") from exc
    if not isinstance(obj, dict):
        raise MalformedTokenError(f"The token's {what} is not a JSON object.")
    if _too_deep(obj):
        raise MalformedTokenError(f"The token's {what} is nested too deeply.")
    return obj


@dataclass(frozen=True, slots=True)
class ParsedToken:
    """A token split and its header decoded; nothing is trusted yet.

    Attributes:
        header: The decoded JOSE header.
        algorithm: The header's ``alg``.
        kid: The header's ``kid`` (``None`` when absent).
        signing_input: ``header "." payload`` as sent, the bytes the signature covers.
        payload_segment: The base64url payload segment.
        signature_segment: The base64url signature segment (may be empty).
    """

    header: dict[str, Any]
    algorithm: str
    kid: str | None
    signing_input: bytes
    payload_segment: bytes
    signature_segment: bytes


def parse_token(token: object, max_bytes: int = DEFAULT_MAX_TOKEN_BYTES) -> ParsedToken:
    """Split a JWS compact token and decode its header.

    Raises:
        TokenTooLargeError: The token is longer than ``max_bytes``.
        MalformedTokenError: Anything else about its shape or header is wrong.
    """
    if isinstance(token, str):
        if len(token) > max_bytes:
            raise TokenTooLargeError(f"The token is longer than {max_bytes} bytes.", {"max_bytes": max_bytes})
        try:
            data = token.encode("ascii")
        except UnicodeEncodeError as exc:
            raise MalformedTokenError("The token contains characters outside base64url.") from exc
    elif isinstance(token, bytes):
        data = token
    else:
        raise MalformedTokenError("The token must be a string.")
    if len(data) > max_bytes:
        raise TokenTooLargeError(f"The token is longer than {max_bytes} bytes.", {"max_bytes": max_bytes})
    match = _COMPACT.fullmatch(data)
    if match is None:
        raise MalformedTokenError("The token must be three base64url segments separated by dots.")
    header = load_json_object(match.group(1), "header")
    algorithm = header.get("alg")
    if not isinstance(algorithm, str):
        raise MalformedTokenError("The token header has no 'alg' string.")
    kid = header.get("kid")
    if "kid" in header and (not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH):
        raise MalformedTokenError("The token header's 'kid' must be a non-empty string of at most 256 characters.")
    if "crit" in header:
        raise MalformedTokenError("The token header lists critical extensions this verifier does not support.")
    if "b64" in header and header["b64"] is not True:  # RFC 7797 unencoded payloads change what is signed
        raise MalformedTokenError("The token header asks for an unencoded payload (b64), which is not supported.")
    return ParsedToken(header, algorithm, kid, data[: match.end(2)], match.group(2), match.group(3))


def select_key(parsed: ParsedToken, keys: KeySet) -> JWTKey:
    """Pick the verification key for a token: by ``kid``, with the key's own algorithm.

    Raises:
        InvalidAlgorithmError: The header's ``alg`` is not the algorithm of any key we
            hold (``none`` in any case, HS256 against an RSA key, ...), or not this key's.
        UnknownKeyError: No key with that ``kid`` (or no ``kid`` and several keys).
    """
    if parsed.algorithm not in keys.algorithms:
        raise InvalidAlgorithmError(
            "The token's signing algorithm is not allowed.",
            {"allowed": sorted(keys.algorithms)},
        )
    key = keys.get(parsed.kid)
    if key is None:
        raise UnknownKeyError()
    if key.algorithm != parsed.algorithm:
        raise InvalidAlgorithmError("The token's signing algorithm does not match its key.")
    return key


def verify_signature(parsed: ParsedToken, key: JWTKey) -> dict[str, Any]:
    """Check the signature with ``key``, then decode and return the payload object.

    Raises:
        InvalidSignatureError: The signature is missing or does not verify.
        MalformedTokenError: The signature or payload segment cannot be decoded.
    """
    if not parsed.signature_segment:
        raise InvalidSignatureError("The token is not signed.")
    signature = _b64decode(parsed.signature_segment, "signature")
    if not key.verify(parsed.signing_input, signature):
        raise InvalidSignatureError()
    return load_json_object(parsed.payload_segment, "payload")
