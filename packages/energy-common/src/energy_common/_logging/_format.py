"""Log record → structured dict → one JSON line (or one readable console line)."""

from __future__ import annotations

import json
import json.encoder
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

from energy_common._logging._redact import (
    REDACTED,
    _sensitive_name,
    might_hold_secret,
    redact,
    redact_text,
    text_is_clean,
)
from energy_common.context import get_correlation_id

__all__ = [
    "ConsoleFormatter",
    "JSONFormatter",
    "add_fields",
    "base_fields",
    "checked_message",
    "encode_line",
    "record_to_dict",
]

# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_RESERVED = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys() | {"message", "asctime", "taskName"}
)
# Extras other libraries attach that only duplicate a field: uvicorn's ANSI-coloured copy
# of the message would put terminal escapes into every JSON line.
_DROPPED = frozenset({"color_message"})
_CORE_KEYS = frozenset(
    {"timestamp", "level", "service", "logger", "message", "correlation_id", "trace_id", "span_id", "exception"}
)


_PLAIN = frozenset({int, float, bool, type(None)})
_second_cache: list[Any] = [None, ""]


def _timestamp(created: float) -> str:
    # Formatting the date part is the expensive bit; it changes once a second.
    second = int(created)
    if _second_cache[0] != second:
        _second_cache[1] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second_cache[0] = second
    return f"{_second_cache[1]}.{int((created - second) * 1000):03d}Z"


def _message(record: logging.LogRecord) -> str:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string must not lose the line
        message = f"{record.msg!r} (unformattable args: {record.args!r})"
    return checked_message(record.msg, record.args, message)


def checked_message(template: object, args: Any, message: str) -> str:
    """Return ``message`` (``template % args``), redacted if the template or an argument looks secret.

    Checking the template and the arguments (cached verdicts: they repeat) is cheaper
    than scanning the formatted message, which is unique per line.
    """
    if not isinstance(template, str) or not text_is_clean(template):
        return redact_text(message)
    values = args.values() if isinstance(args, Mapping) else args or ()
    for arg in values:
        cls = arg.__class__
        if cls is str:
            if not text_is_clean(arg):
                return redact_text(message)
        elif cls not in _PLAIN and might_hold_secret(str(arg)):
            return redact_text(message)
    return message


def _value(key: str, value: Any) -> Any:
    # Hot path (every extra of every line): exact type checks and cached verdicts first.
    if _sensitive_name(key):
        return REDACTED
    cls = value.__class__
    if cls in _PLAIN:
        return value
    if cls is str:
        return value if text_is_clean(value) else redact_text(value)
    return redact(value)


def base_fields(created: float, level: str, service: str | None, logger: str, message: str) -> dict[str, Any]:
    """Return the fields every line starts with, including the request and trace context."""
    data: dict[str, Any] = {
        "timestamp": _timestamp(created),
        "level": level,
        "service": service,
        "logger": logger,
        "message": message,
        "correlation_id": get_correlation_id(),
    }
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        data["trace_id"] = format(span_context.trace_id, "032x")
        data["span_id"] = format(span_context.span_id, "016x")
    return data


def add_fields(data: dict[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """Add extra fields to ``data``, redacted; names that clash with core fields get ``_extra``."""
    for key, value in fields.items():
        data[f"{key}_extra" if key in _CORE_KEYS else key] = _value(key, value)
    return data


def record_to_dict(record: logging.LogRecord, service: str | None) -> dict[str, Any]:
    """Turn a log record into the structured, redacted dict that the JSON formatter prints.

    Args:
        record: The stdlib log record.
        service: The service name set by ``setup_logging`` (``None`` before it ran).

    Returns:
        A dict: timestamp (UTC, ISO 8601), level, service, logger, message,
        correlation_id, trace_id/span_id (only while a span is active), the record's
        extra fields, and ``exception`` when the record carries exc_info. Secret-looking
        keys are redacted at any depth and secrets are removed from strings. Values
        that are not JSON types are left as they are (the JSON formatter prints them
        with ``str`` and redacts the text).
    """
    data = base_fields(record.created, record.levelname, service, record.name, _message(record))
    for key, value in record.__dict__.items():
        if key in _RESERVED or key in _DROPPED or key[:1] == "_" or not isinstance(key, str):
            continue
        data[f"{key}_extra" if key in _CORE_KEYS else key] = _value(key, value)
    if record.exc_info and record.exc_info[0] is not None:
        data["exception"] = redact_text(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        data["exception"] = redact_text(record.exc_text)
    if record.stack_info:
        data["stack"] = redact_text(record.stack_info)
    return data


def _str_redacted(value: object) -> str:
    return redact_text(str(value))


def _line_encoder() -> Callable[[dict[str, Any]], str]:
    # json.dumps() / JSONEncoder.encode() build a new C encoder on every call, which costs
    # more than encoding a log line. Build it once. No circular-reference check: values
    # reach the encoder through redact(), which copies containers and cuts deep nesting.
    fallback = json.JSONEncoder(default=_str_redacted, ensure_ascii=False).encode
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - interpreters without the C accelerator
        return fallback
    try:
        encoder = make(None, _str_redacted, json.encoder.encode_basestring, None, ": ", ", ", False, False, True)
    except TypeError:  # pragma: no cover - a future signature change: stay correct, lose speed
        return fallback

    def encode(data: dict[str, Any]) -> str:
        return "".join(encoder(data, 0))

    return encode


#: Encode a line dict as compact one-line JSON (same output as ``json.dumps(data, ensure_ascii=False)``).
encode_line = _line_encoder()


class JSONFormatter(logging.Formatter):
    """Format each record as one JSON object on one line (see :func:`record_to_dict`).

    Args:
        service: The service name written into every line.
    """

    def __init__(self, service: str | None = None) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a single JSON line (no trailing newline)."""
        return encode_line(record_to_dict(record, self.service))


class ConsoleFormatter(logging.Formatter):
    """Human-readable single-line format for development (same fields, redacted).

    Example line::

        2026-01-01T12:00:00.000Z INFO  api [req-1] GET /users 200 12.3 ms status=200
    """

    def __init__(self, service: str | None = None) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """Return ``timestamp level logger [correlation id] message key=value ...``."""
        data = record_to_dict(record, self.service)
        head = f"{data.pop('timestamp')} {data.pop('level'):<7} {data.pop('logger')}"
        cid = data.pop("correlation_id")
        message = data.pop("message")
        exception = data.pop("exception", None)
        data.pop("service", None)
        line = f"{head} [{cid or '-'}] {message}"
        if data:
            line += " " + " ".join(f"{key}={value}" for key, value in data.items())
        if exception:
            line += "\n" + exception
        return line
