"""Tests for energy_common.logging: JSON lines, context fields, redaction, idempotent setup."""

from __future__ import annotations

import contextlib
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
    log_fields,
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


def test_uvicorn_color_message_is_dropped(output: io.StringIO) -> None:
    """uvicorn's ANSI-coloured duplicate of the message (extra color_message) never reaches the JSON line."""
    setup_logging("svc", stream=output)
    logging.getLogger("energy.test.uvicorn_like").info(
        "Finished server process [%d]", 42, extra={"color_message": "Finished server process [\x1b[36m%d\x1b[0m]"}
    )
    (line,) = lines(output)
    assert line["message"] == "Finished server process [42]"
    assert "color_message" not in line
    assert "\x1b" not in output.getvalue()


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


@contextlib.contextmanager
def only_energy_handler(output: io.StringIO) -> Iterator[EnergyLogHandler]:
    """Root has only the energy JSON handler (pytest's capture handlers set aside), as in production.

    Used inside the test body: pytest adds its handlers when the call phase starts.
    """
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = []
    handler = setup_logging("svc", stream=output)
    try:
        yield handler
    finally:
        root.handlers[:] = saved


@contextlib.contextmanager
def counting_records() -> Iterator[list[str]]:
    """Count the LogRecords created in the block (the direct path creates none)."""
    factory = logging.getLogRecordFactory()
    made: list[str] = []

    def counting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        made.append(record.name)
        return record

    logging.setLogRecordFactory(counting)
    try:
        yield made
    finally:
        logging.setLogRecordFactory(factory)


def without_timestamp(line: dict[str, Any]) -> dict[str, Any]:
    """A parsed line minus its timestamp."""
    return {key: value for key, value in line.items() if key != "timestamp"}


@pytest.mark.parametrize(
    ("template", "args", "fields"),
    [
        ("GET %s %d", ("/users", 200), {"route": "/users", "status_code": 200, "client": None}),
        ("login %s", ("password=hunter2",), {"authorization": "Bearer abcdefgh", "nested": {"token": "t"}}),
        ("plain", (), {"service": "clash", "logger": "clash", "value": 1.5}),
    ],
)
def test_log_fields_matches_the_formatter(
    output: io.StringIO, template: str, args: tuple[Any, ...], fields: dict[str, Any]
) -> None:
    """log_fields' direct path writes exactly the line the JSON formatter writes for logger.log()."""
    logger = logging.getLogger("energy.test.fast")
    with correlation_scope("req-f"), only_energy_handler(output), counting_records() as made:
        log_fields(logger, logging.WARNING, template, args, fields)
    assert made == []
    with correlation_scope("req-f"):
        setup_logging("svc", stream=output)
        logger.warning(template, *args, extra=fields)  # pytest's handler is present: stdlib path
    fast, slow = lines(output)
    assert without_timestamp(fast) == without_timestamp(slow)
    assert "hunter2" not in output.getvalue()
    assert "abcdefgh" not in output.getvalue()


def test_log_fields_checked_mode(output: io.StringIO) -> None:
    """In checked mode the caller's fields are written as given."""
    with only_energy_handler(output), counting_records() as made:
        log_fields(logging.getLogger("energy.test.fast"), logging.INFO, "done", (), {"route": "/x"}, checked=True)
    assert made == []
    assert without_timestamp(lines(output)[0]) == {
        "level": "INFO",
        "service": "svc",
        "logger": "energy.test.fast",
        "message": "done",
        "correlation_id": None,
        "route": "/x",
    }


def test_log_fields_respects_levels_and_disabled(output: io.StringIO) -> None:
    """Logger level, handler level and a disabled logger are honoured on the direct path."""
    logger = logging.getLogger("energy.test.levels")
    logger.setLevel(logging.WARNING)
    with only_energy_handler(output):
        log_fields(logger, logging.INFO, "dropped by logger level", (), {})
        logging.getLogger().handlers[0].setLevel(logging.ERROR)
        log_fields(logger, logging.WARNING, "dropped by handler level", (), {})
        logger.disabled = True
        log_fields(logger, logging.CRITICAL, "dropped: disabled", (), {})
    logger.setLevel(logging.NOTSET)
    logger.disabled = False
    assert output.getvalue() == ""


def test_log_fields_falls_back_for_filters_and_foreign_handlers(output: io.StringIO) -> None:
    """Filters get real LogRecords (the stdlib path)."""
    logger = logging.getLogger("energy.test.filtered")
    seen: list[logging.LogRecord] = []

    def keep(record: logging.LogRecord) -> bool:
        seen.append(record)
        return record.getMessage() != "secret-drop"

    logger.addFilter(keep)
    try:
        with only_energy_handler(output):
            log_fields(logger, logging.INFO, "secret-drop", (), {})
            log_fields(logger, logging.INFO, "kept %s", ("x",), {"a": 1})
    finally:
        logger.removeFilter(keep)
    assert [record.getMessage() for record in seen] == ["secret-drop", "kept x"]
    assert [line["message"] for line in lines(output)] == ["kept x"]
    assert lines(output)[0]["a"] == 1


def test_log_fields_without_handlers_uses_last_resort(capsys: pytest.CaptureFixture[str]) -> None:
    """With no handler anywhere, logging's last resort (stderr, WARNING and up) still applies."""
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = []
    try:
        log_fields(logging.getLogger("energy.test.none"), logging.ERROR, "to stderr", (), {})
    finally:
        root.handlers[:] = saved
    assert "to stderr" in capsys.readouterr().err


async def test_request_log_on_the_direct_path(output: io.StringIO) -> None:
    """The request log middleware's line, written without a LogRecord, has every documented field."""
    import httpx
    from energy_common.config import Settings
    from energy_common.middleware import setup_middleware
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/devices/{device_id}")
    async def device(device_id: str) -> dict[str, str]:
        return {"id": device_id}

    setup_middleware(app, Settings(service_name="svc"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        with only_energy_handler(output), counting_records() as made:
            response = await http.get("/devices/d1", headers={"X-Request-ID": "req-d"})
            await http.get("/devices/token=abcdef123")
    assert "energy.request" not in made
    first, second = [line for line in lines(output) if line["logger"] == "energy.request"]
    assert response.status_code == 200
    assert first["message"].startswith("GET /devices/{device_id} 200 ")
    assert (first["http_method"], first["route"], first["path"], first["status_code"]) == (
        "GET",
        "/devices/{device_id}",
        "/devices/d1",
        200,
    )
    assert first["correlation_id"] == "req-d"
    assert first["client"] == "127.0.0.1"
    assert first["duration_ms"] >= 0
    assert first["service"] == "svc"
    assert "abcdef123" not in output.getvalue()
    assert second["path"] == f"/devices/token={REDACTED}"


def test_service_logger_accepts_keywords() -> None:
    """The seed's positional calls and keyword calls log the same line."""
    logger = ServiceLogger("svc")
    with capture_logs() as logs:
        logger.log_api_call("GET", "/users", 200, 0.1)
        logger.log_api_call(method="GET", path="/users", status=200, duration_s=0.1)
        logger.log_database_operation(operation="SELECT", table="users", duration_s=0.01)
    assert logs[0]["message"] == logs[1]["message"] == "GET /users 200 100.0 ms"
    assert logs[2]["table"] == "users"


def test_public_names() -> None:
    """The public surface of energy_common.logging is pinned."""
    import energy_common.logging as module

    assert module.__all__ == [
        "REDACTED",
        "ConsoleFormatter",
        "EnergyLogHandler",
        "JSONFormatter",
        "ServiceLogger",
        "capture_logs",
        "get_service_name",
        "is_sensitive_key",
        "log_fields",
        "parse_log_level",
        "record_to_dict",
        "redact",
        "redact_text",
        "setup_logging",
        "text_is_clean",
    ]
