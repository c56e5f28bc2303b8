"""Parse the requests brokers send to an HTTP auth backend: pure, strict, never raising.

EMQX (authn and authz HTTP sources) and mosquitto-go-auth's HTTP backend send the
client's fields as a JSON object (the default of both) or a form
(``application/x-www-form-urlencoded``: go-auth ``http_params_mode form``, EMQX with that
content type), in the body of a POST/PUT or, for GET, in the query string.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["GO_AUTH_ACCESS", "parse_fields"]

# mosquitto-go-auth's `acc`: Mosquitto's MOSQ_ACL_* values.
GO_AUTH_ACCESS = {1: ("read",), 2: ("publish",), 3: ("read", "publish"), 4: ("subscribe",), 8: ()}
_MAX_FIELDS = 32


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def parse_fields(content_type: str, body: bytes, query: bytes) -> dict[str, Any] | None:
    """Return the request's fields, or ``None`` when they cannot be read strictly.

    JSON must be an object of scalars, valid UTF-8; a form or query string must decode
    as UTF-8 (``%FF`` is refused, not replaced). Duplicate form keys are refused.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    raw = body or query
    if not raw:
        return None
    if body and media not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            data = json.loads(body)  # bytes: json checks the UTF-8 itself
        except (ValueError, RecursionError):
            return None
        if not isinstance(data, dict) or len(data) > _MAX_FIELDS or not all(_scalar(v) for v in data.values()):
            return None
        return data
    if media == "multipart/form-data":
        return None
    try:
        pairs = parse_qsl(
            raw.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=_MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        return None
    fields = dict(pairs)
    return fields if len(fields) == len(pairs) else None


def access_of(value: Any) -> tuple[str, ...] | None:
    """Map go-auth's ``acc`` (int or numeric string) to actions; ``None`` when unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit() and len(value) < 4:
        value = int(value)
    return GO_AUTH_ACCESS.get(value) if isinstance(value, int) else None
