"""``CursorCodec``: opaque, HMAC-signed keyset cursors.

A cursor holds the sort-key values of the last row of a page and a fingerprint of the
query it belongs to (table, order, filters), as base64url JSON followed by an
HMAC-SHA256 tag. A client cannot read meaning into it, and a cursor that was altered,
forged, or replayed against another query is refused with a ``ValidationError``
before any SQL runs. Signing (rather than only validating the values) matters because
a cursor crosses trust boundaries: it is handed to browsers and other services.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from energy_common.exceptions import ConfigurationError, ValidationError

__all__ = ["CursorCodec"]

_MIN_KEY_BYTES = 32
_TAG_BYTES = 16  # 128-bit truncated HMAC: far beyond what an online forger can try
_MAX_CURSOR = 2048


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _encode_value(value: object) -> object:
    if isinstance(value, datetime):
        return {"dt": value.isoformat()}
    if isinstance(value, date):
        return {"d": value.isoformat()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValidationError(f"A cursor cannot hold a {type(value).__name__}; order by plain columns.")


def _decode_value(value: object) -> object:
    if isinstance(value, dict):
        if "dt" in value:
            return datetime.fromisoformat(str(value["dt"]))
        if "d" in value:
            return date.fromisoformat(str(value["d"]))
        raise ValueError("unknown tagged value")
    return value


class CursorCodec:
    """Signs and checks keyset cursors.

    Args:
        key: Secret of at least 32 bytes shared by every replica (cursors then work on
            any of them); derive it from the service's secret, e.g. its JWT key.

    Raises:
        ConfigurationError: The key is too short.

    Example:
        >>> codec = CursorCodec("k" * 32)
        >>> token = codec.encode([1700000000000, 42], "readings")
        >>> codec.decode(token, "readings")
        [1700000000000, 42]
    """

    def __init__(self, key: str | bytes) -> None:
        raw = key.encode() if isinstance(key, str) else bytes(key)
        if len(raw) < _MIN_KEY_BYTES:
            raise ConfigurationError(f"The cursor key must be at least {_MIN_KEY_BYTES} bytes; use a random secret.")
        # Domain separation: the key may be shared with other uses (token signing).
        self._key = hmac.new(raw, b"energy-common keyset cursor v1", hashlib.sha256).digest()

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_TAG_BYTES]

    def encode(self, values: Sequence[Any], fingerprint: str) -> str:
        """Return the cursor for the row with sort-key ``values`` of the query ``fingerprint``."""
        payload = json.dumps([fingerprint, [_encode_value(v) for v in values]], separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._tag(payload))}"

    def decode(self, cursor: str, fingerprint: str) -> list[Any]:
        """Return the sort-key values of a cursor made by :meth:`encode` for the same query.

        Raises:
            ValidationError: The cursor is malformed, was altered or forged, or belongs
                to another query (different order or filters).
        """
        invalid = ValidationError(
            "The cursor is invalid or belongs to another query; start again without a cursor.", {"field": "cursor"}
        )
        if not isinstance(cursor, str) or len(cursor) > _MAX_CURSOR or cursor.count(".") != 1:
            raise invalid
        body, _, tag = cursor.partition(".")
        try:
            payload, given = _unb64(body), _unb64(tag)
        except (binascii.Error, ValueError) as exc:
            raise invalid from exc
        if not hmac.compare_digest(given, self._tag(payload)):
            raise invalid
        try:
            found, values = json.loads(payload)
            decoded = [_decode_value(v) for v in values]
        except (ValueError, TypeError) as exc:
            raise invalid from exc
        if found != fingerprint:
            raise invalid
        return decoded
