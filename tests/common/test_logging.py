"""Tests for energy_common.logging: JSON lines, context fields, redaction, idempotent setup."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from energy_common.context import correlation_scope
from energy_common.exceptions import ConfigurationError
from energy_common.logging import (
    REDACTED,
    EnergyLogHandler,
    ServiceLogger,
    capture_logs,
    is_sensitive_key,
    redact,
    redact_text,
    setup_logging,
)
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(autouse=True)
def restore_root() -> Iterator[None]:
    """Leave the root logger as the test found it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


@pytest.fixture
def output() -> io.StringIO:
    """A stream that setup_logging writes to."""
    return io.StringIO()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Parse every JSON line written so far."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_has_core_fields(output: io.StringIO) -> None:
    """Each record becomes one JSON object with timestamp, level, service, logger, message, correlation_id."""
    setup_logging("meter-api", log_level="INFO", stream=output)
    with correlation_scope("req-7"):
        logging.getLogger("energy.test").info("hello %s", "world", extra={"device_id": "d-1", "count": 3})
    (line,) = lines(output)
    assert TIMESTAMP.match(line["timestamp"])
    assert line["level"] == "INFO"
    assert line["service"] == "meter-api"
    assert line["logger"] == "energy.test"
    assert line["message"] == "hello world"
    assert line["correlation_id"] == "req-7"
    assert line["device_id"] == "d-1"
    assert line["count"] == 3
    assert "trace_id" not in line
    assert output.getvalue().count("\n") == 1


def test_trace_and_span_ids_when_a_span_is_active(output: io.StringIO) -> None:
    """trace_id and span_id come from the active OpenTelemetry span."""
    setup_logging("meter-api", stream=output)
    context = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    with trace.use_span(NonRecordingSpan(context)):
        logging.getLogger("energy.test").warning("inside")
    (line,) = lines(output)
    assert line["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert line["span_id"] == "b7ad6b7169203331"


def test_level_filters(output: io.StringIO) -> None:
    """Records below the configured level are dropped."""
    setup_logging("svc", log_level="WARNING", stream=output)
    logging.getLogger("energy.test").info("quiet")
    logging.getLogger("energy.test").error("loud")
    assert [line["message"] for line in lines(output)] == ["loud"]


def test_library_loggers_share_the_format(output: io.StringIO) -> None:
    """Any library's logger (not only ours) emits the same JSON through the root logger."""
    setup_logging("svc", stream=output)
    logging.getLogger("sqlalchemy.engine").warning("from a library")
    assert lines(output)[0]["logger"] == "sqlalchemy.engine"


@pytest.mark.parametrize(
    "key",
    [
        "authorization",
        "Authorization",
        "cookie",
        "set-cookie",
        "password",
        "db_password",
        "token",
        "refresh_token",
        "secret",
        "client_secret",
        "api_key",
        "X-API-Key",
        "apikey",
        "private_key",
        "credentials",
        "pwd",
    ],
)
def test_sensitive_fields_are_redacted(output: io.StringIO, key: str) -> None:
    """A field whose name looks secret is replaced, at the top level and nested in dicts and lists."""
    setup_logging("svc", stream=output)
    logging.getLogger("energy.test").info(
        "call",
        extra={
            key: "hunter2-value",
            "request": {"headers": {key: "hunter2-value", "accept": "json"}},
            "items": [{key: "hunter2-value"}],
        },
    )
    (line,) = lines(output)
    assert "hunter2-value" not in output.getvalue()
    assert line[key] == REDACTED
    assert line["request"]["headers"] == {key: REDACTED, "accept": "json"}
    assert line["items"] == [{key: REDACTED}]


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        ("Authorization: Bearer abcdef123456", "abcdef123456"),
        ("login with password=hunter2 failed", "hunter2"),
        ('config {"api_key": "k-123456"}', "k-123456"),
        ("token: tok_abcdef", "tok_abcdef"),
        ("connect postgresql://app:pa55word@db:5432/energy", "pa55word"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl seen", "eyJzdWIiOiIxIn0"),
    ],
)
def test_secrets_in_messages_are_redacted(output: io.StringIO, message: str, secret: str) -> None:
    """Bearer tokens, key=value secrets, URL passwords and JWTs are removed from messages."""
    setup_logging("svc", stream=output)
    logging.getLogger("energy.test").info(message)
    assert secret not in output.getvalue()
    assert REDACTED in lines(output)[0]["message"]


def test_secrets_in_format_arguments_are_redacted(output: io.StringIO) -> None:
    """A secret passed as a %-argument is redacted in the formatted message."""
    setup_logging("svc", stream=output)
    logging.getLogger("energy.test").info("header %s", "Bearer abcdef123456")
    assert "abcdef123456" not in output.getvalue()


def test_secrets_in_tracebacks_are_redacted(output: io.StringIO) -> None:
    """The exception text is redacted too, while the traceback is kept."""
    setup_logging("svc", stream=output)
    try:
        raise RuntimeError("cannot connect redis://:s3cretpw@cache:6379/0")
    except RuntimeError:
        logging.getLogger("energy.test").exception("failed")
    (line,) = lines(output)
    assert "s3cretpw" not in output.getvalue()
    assert "Traceback" in line["exception"]
    assert "RuntimeError" in line["exception"]


def test_non_json_values_are_stringified_and_redacted(output: io.StringIO) -> None:
    """Values that are not JSON types are printed with str() and redacted."""

    class Opaque:
        def __str__(self) -> str:
            return "password=hunter2"

    setup_logging("svc", stream=output)
    logging.getLogger("energy.test").info("obj", extra={"thing": Opaque()})
    assert lines(output)[0]["thing"] == f"password={REDACTED}"


def test_ordinary_text_is_untouched() -> None:
    """Text without secrets is returned unchanged."""
    text = "GET /devices/42 200 12.5 ms keyboard"
    assert redact_text(text) == text
    assert redact({"a": [1, {"b": None}], "path": "/x"}) == {"a": [1, {"b": None}], "path": "/x"}
    assert not is_sensitive_key("user_id")
    assert not is_sensitive_key(3)


def test_console_format(output: io.StringIO) -> None:
    """The development format is one readable, redacted line."""
    setup_logging("svc", json=False, stream=output)
    with correlation_scope("req-3"):
        logging.getLogger("energy.test").warning("hello", extra={"device": "d-1", "token": "t-secret"})
    text = output.getvalue()
    assert text.count("\n") == 1
    assert "WARNING" in text
    assert "[req-3] hello" in text
    assert "device=d-1" in text
    assert "t-secret" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_setup_twice_keeps_one_handler(output: io.StringIO) -> None:
    """A second setup_logging replaces its handler instead of adding one; foreign handlers stay."""
    foreign = logging.NullHandler()
    logging.getLogger().addHandler(foreign)
    setup_logging("svc", stream=io.StringIO())
    setup_logging("svc", stream=output)
    root = logging.getLogger()
    assert sum(isinstance(h, EnergyLogHandler) for h in root.handlers) == 1
    assert foreign in root.handlers
    logging.getLogger("energy.test").warning("once")
    assert len(lines(output)) == 1


def test_follows_a_replaced_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit stream, lines go to the current sys.stdout, never a closed old one."""
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", first)
    setup_logging("svc")
    logging.getLogger("energy.test").warning("one")
    monkeypatch.setattr(sys, "stdout", second)
    first.close()
    logging.getLogger("energy.test").warning("two")
    assert json.loads(second.getvalue())["message"] == "two"


def test_closed_stream_does_not_raise() -> None:
    """Writing to a closed stream drops the line instead of raising into the caller."""
    stream = io.StringIO()
    setup_logging("svc", stream=stream)
    stream.close()
    logging.getLogger("energy.test").error("dropped")


@pytest.mark.parametrize("level", ["LOUD", "", -1, True])
def test_bad_level_is_refused(level: Any) -> None:
    """An unknown log level raises ConfigurationError naming LOG_LEVEL."""
    with pytest.raises(ConfigurationError, match="LOG_LEVEL"):
        setup_logging("svc", log_level=level)


@pytest.mark.parametrize("name", ["", "   "])
def test_empty_service_name_is_refused(name: str) -> None:
    """A service name is required."""
    with pytest.raises(ConfigurationError, match="SERVICE_NAME"):
        setup_logging(name)


@pytest.mark.parametrize("level", ["debug", "Info", "warn", 10])
def test_level_spellings(level: str | int) -> None:
    """Level names are case-insensitive; numbers are accepted."""
    setup_logging("svc", log_level=level, stream=io.StringIO())


@pytest.mark.parametrize(("status", "level"), [(200, "INFO"), (302, "INFO"), (404, "WARNING"), (503, "ERROR")])
def test_log_api_call(status: int, level: str) -> None:
    """log_api_call writes method, path, status and duration, at a level that follows the status."""
    with capture_logs() as logs:
        ServiceLogger("svc").log_api_call("GET", "/users", status, 0.145)
    (line,) = logs
    assert line["level"] == level
    assert line["message"] == f"GET /users {status} 145.0 ms"
    assert (line["http_method"], line["path"], line["status_code"], line["duration_ms"]) == (
        "GET",
        "/users",
        status,
        145.0,
    )
    assert line["event"] == "api_call"


def test_log_database_operation_and_event() -> None:
    """log_database_operation and log_event write structured fields; reserved names are kept, renamed."""
    logger = ServiceLogger("svc")
    with capture_logs() as logs:
        logger.log_database_operation("SELECT", "users", 0.023, rows=3)
        logger.log_event("device_registered", level=logging.WARNING, device_id="d-1", name="x", password="p")
    db, event = logs
    assert (db["operation"], db["table"], db["duration_ms"], db["rows"]) == ("SELECT", "users", 23.0, 3)
    assert db["logger"] == "svc"
    assert event["level"] == "WARNING"
    assert event["message"] == "device_registered"
    assert (event["event"], event["device_id"], event["name_"], event["password"]) == (
        "device_registered",
        "d-1",
        "x",
        REDACTED,
    )


def test_service_logger_exception() -> None:
    """ServiceLogger.exception records the traceback of the current exception."""
    with capture_logs() as logs:
        try:
            raise ValueError("boom")
        except ValueError:
            ServiceLogger("svc").exception("failed", step=2)
    assert "ValueError: boom" in logs[0]["exception"]
    assert logs[0]["step"] == 2


def test_capture_logs_restores_the_logger() -> None:
    """capture_logs lowers the level for the block and restores level and handlers afterwards."""
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    before = root.handlers[:]
    with capture_logs() as logs:
        logging.getLogger("energy.test").debug("seen")
    logging.getLogger("energy.test").warning("not captured")
    assert [line["message"] for line in logs] == ["seen"]
    assert root.level == logging.WARNING
    assert root.handlers == before
