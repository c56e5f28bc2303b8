"""Correlation id and trace context on MQTT, imported lazily (OpenTelemetry costs import time).

On MQTT 5 the context rides in user properties (``x-request-id``, ``traceparent``,
``tracestate``); on 3.1.1, in the ``_ctx`` object of a JSON-object payload.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from energy_common.context import get_correlation_id, is_valid_correlation_id, reset_correlation_id, set_correlation_id

__all__ = ["CONTEXT_FIELD", "current_carrier", "extract", "handler_scope", "to_user_properties"]

#: JSON field that carries correlation id and trace context on MQTT 3.1.1 connections.
CONTEXT_FIELD = "_ctx"

_propagation: ModuleType | None = None
_otel_context: ModuleType | None = None


def _prop() -> ModuleType:
    global _propagation, _otel_context
    if _propagation is None:
        import opentelemetry.context as otel_context  # noqa: PLC0415 - lazy: keeps import energy_messaging light
        from energy_common import propagation  # noqa: PLC0415 - lazy, see above

        _propagation, _otel_context = propagation, otel_context
    return _propagation


def current_carrier(correlation_id: str | None = None) -> dict[str, str]:
    """Return the current correlation id and trace context as a carrier dict (maybe empty)."""
    if correlation_id is None and get_correlation_id() is None:
        # Propagators write what the current OpenTelemetry context holds (span, baggage):
        # with no OpenTelemetry imported, or an empty context, there is nothing to carry.
        otel = sys.modules.get("opentelemetry.context")
        if otel is None or not otel.get_current():
            return {}
    carrier: dict[str, str] = {}
    _prop().inject_context(carrier, correlation_id=correlation_id)
    return carrier


def to_user_properties(carrier: dict[str, str]) -> list[tuple[str, str]]:
    """Carrier → MQTT 5 user properties."""
    result: list[tuple[str, str]] = _prop().to_user_properties(carrier)
    return result


def extract(user_properties: Any, payload: Any) -> tuple[str | None, dict[str, str]]:
    """Read ``(correlation_id, carrier)`` from MQTT 5 user properties or a payload's ``_ctx``."""
    carrier: dict[str, str] = {}
    if user_properties:
        carrier = _prop().from_user_properties(user_properties)
    elif isinstance(payload, dict):
        ctx = payload.pop(CONTEXT_FIELD, None)
        if isinstance(ctx, dict):
            carrier = {str(k).lower(): str(v) for k, v in ctx.items() if isinstance(v, str)}
    if not carrier:
        return None, carrier
    cid = carrier.get("x-request-id") or carrier.get("x-correlation-id")
    return (cid if is_valid_correlation_id(cid) else None), carrier


@contextlib.contextmanager
def handler_scope(correlation_id: str | None, carrier: dict[str, str]) -> Iterator[None]:
    """Run a handler under the message's correlation id and remote trace parent."""
    token = set_correlation_id(correlation_id)
    otel_token: Any = None
    if "traceparent" in carrier:
        _prop()
        assert _otel_context is not None  # noqa: S101 - set by _prop()
        otel_token = _otel_context.attach(_prop().extract_context(carrier))
    try:
        yield
    finally:
        if otel_token is not None and _otel_context is not None:
            _otel_context.detach(otel_token)
        reset_correlation_id(token)
