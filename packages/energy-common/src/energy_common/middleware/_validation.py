"""Sanitise validation errors before they go back to the client."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from energy_common.logging import REDACTED, is_sensitive_key, redact_text

__all__ = ["sanitize_errors"]

_SCALARS = (str, int, float, bool, type(None))
_MAX_ERRORS = 50


def _clean(error: Mapping[str, Any]) -> dict[str, Any]:
    loc = [part if isinstance(part, int | str) else str(part) for part in error.get("loc", ())]
    sensitive = any(is_sensitive_key(part) for part in loc)
    message = str(error.get("msg", "Invalid value."))
    value = error.get("input")
    if sensitive and isinstance(value, str | int | float) and str(value):
        # A custom validator may have put the rejected secret into its message.
        message = message.replace(str(value), REDACTED)
    cleaned: dict[str, Any] = {"loc": loc, "msg": redact_text(message), "type": str(error.get("type", "value_error"))}
    ctx = error.get("ctx")
    if isinstance(ctx, Mapping) and not sensitive:
        safe = {str(key): item for key, item in ctx.items() if isinstance(item, _SCALARS) and key != "input"}
        if safe:
            cleaned["ctx"] = safe
    return cleaned


def sanitize_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return JSON-safe validation errors without the submitted values.

    Each error keeps ``loc``, ``msg``, ``type`` and scalar ``ctx`` entries (limits such
    as ``ge`` or ``max_length``). The submitted ``input`` is never included; for a field
    whose name looks secret (password, token, secret, api_key ...) ``ctx`` is dropped and
    the submitted value is scrubbed from ``msg``. At most 50 errors are returned.

    Example:
        >>> sanitize_errors([{"loc": ("body", "password"), "msg": "bad", "type": "x", "input": "hunter2"}])
        [{'loc': ['body', 'password'], 'msg': 'bad', 'type': 'x'}]
    """
    return [_clean(error) for _, error in zip(range(_MAX_ERRORS), errors, strict=False)]
