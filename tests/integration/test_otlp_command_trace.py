"""One command round trip of the meter service, exported over OTLP/HTTP to a receiver on loopback, is one connected trace.

The service runs as ``python -m meter_service`` (embedded broker, one simulated meter)
with ``TRACING_EXPORTER=otlp``; the receiver is this test's own HTTP server, decoding
each ``ExportTraceServiceRequest`` with opentelemetry-proto (in the ``otlp`` extra's
closure). The request carries its own ``traceparent``, so the trace is found by the id
the client chose. The trace must read: HTTP server span → the command span (``command
read_meter``, CLIENT, events ``sent`` then ``reply``, state ``succeeded``) → MQTT publish
of the command → the meter's handling → its reply's publish → the service's handling of
the reply, all inside the HTTP span (the response goes out after the reply), every span
and every log line of the command with the request's correlation id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("meter_service")
trace_service = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")

PASSWORD = "correct horse battery staple"
_ENGINE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "MQTT_URL", "ADMIN_PASSWORD", "ENVIRONMENT", "TRACING_EXPORTER")
_KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUSES = {0: "UNSET", 1: "OK", 2: "ERROR"}


@dataclass(frozen=True)
class ReceivedSpan:
    """A span as the receiver decoded it."""

    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str
    start: int
    end: int
    attributes: dict[str, Any]
    events: tuple[tuple[str, int, dict[str, Any]], ...] = ()
    status: str = "UNSET"


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver (protobuf) on loopback that keeps every span it was sent."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[ReceivedSpan] = []
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        """The traces URL to give the exporter."""
        return f"http://127.0.0.1:{self.server_address[1]}/v1/traces"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
            self.send_error(404)
            return
        request = trace_service.ExportTraceServiceRequest()
        request.ParseFromString(body)
        received = [
            ReceivedSpan(
                name=span.name,
                kind=_KINDS.get(span.kind, str(span.kind)),
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                parent_id=span.parent_span_id.hex(),
                start=span.start_time_unix_nano,
                end=span.end_time_unix_nano,
                attributes={item.key: _value(item.value) for item in span.attributes},
                events=tuple(
                    (event.name, event.time_unix_nano, {item.key: _value(item.value) for item in event.attributes})
                    for event in span.events
                ),
                status=_STATUSES.get(span.status.code, str(span.status.code)),
            )
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]
        server: Any = self.server
        with server.lock:
            server.spans.extend(received)
        answer = trace_service.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads the spans, not an access log."""


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind is not None else None


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    """Run the receiver in a thread for the block."""
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def meter_service(tmp_path: Path, http_port: int, endpoint: str) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """Run the meter service with OTLP export to ``endpoint`` for at most 60 s."""
    env = {key: value for key, value in os.environ.items() if key not in _ENGINE_VARIABLES}
    env.update(
        DATA_DIR=str(tmp_path / "data"),
        LOG_LEVEL="INFO",
        LOG_JSON="true",
        ADMIN_PASSWORD=PASSWORD,
        EMBEDDED_BROKER_PORT=str(_free_port()),
        COMMAND_TIMEOUT="5",
        TRACING_EXPORTER="otlp",
        TRACING_SAMPLE_RATIO="1.0",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",  # export within 0.1 s, not 5 s
    )
    argv = [sys.executable, "-m", "meter_service", "--port", str(http_port), "--meters", "1", "--interval", "30"]
    argv += ["--summary-every", "60", "--duration", "60"]
    log = tmp_path / "meter-service.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process, log
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


async def _ready(client: httpx.AsyncClient, log: Path) -> None:
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if (await client.get("/health/ready")).status_code == 200:
                return
        await asyncio.sleep(0.2)
    pytest.fail(f"the meter service did not get ready\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def _chain(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[str]:
    """Names from ``span`` up to its root."""
    return [s.name for s in _lineage(span, by_id)]


def _lineage(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[ReceivedSpan]:
    """``span``, its parent, and so on up to the root (bounded: a cycle cannot loop)."""
    found = [span]
    while (parent := by_id.get(found[-1].parent_id)) is not None and len(found) <= len(by_id):
        found.append(parent)
    return found


def _ancestor_ids(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[str]:
    """Span ids of the parent chain of ``span`` (itself excluded)."""
    return [s.span_id for s in _lineage(span, by_id)[1:]]


@pytest.mark.slow
async def test_a_command_round_trip_is_one_connected_trace_over_otlp(tmp_path: Path) -> None:
    """HTTP span → command span → command publish → meter handling → reply publish → reply handling, one trace."""
    http_port = _free_port()
    correlation_id = f"otlp-{uuid.uuid4().hex[:12]}"
    trace_id, client_span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    with receiver() as otlp, meter_service(tmp_path, http_port, otlp.endpoint) as (_process, log):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=15) as client:
            await _ready(client, log)
            token = await client.post("/api/v1/auth/token", json={"username": "admin", "password": PASSWORD})
            assert token.status_code == 200, token.text
            headers = {
                "Authorization": f"Bearer {token.json()['data']['access_token']}",
                "X-Request-ID": correlation_id,
                "traceparent": f"00-{trace_id}-{client_span_id}-01",  # the client's own trace
            }
            response = await client.post(
                "/api/v1/devices/meter-001/commands", json={"command": "read_meter"}, headers=headers
            )
            assert response.status_code == 200, response.text
            assert response.headers["x-request-id"] == correlation_id
            command_id = response.json()["data"]["command_id"]

            def server_span() -> ReceivedSpan | None:
                with otlp.lock:
                    return next(
                        (
                            s
                            for s in otlp.spans
                            if s.kind == "SERVER" and s.attributes.get("correlation_id") == correlation_id
                        ),
                        None,
                    )

            for _ in range(100):
                if server_span() is not None:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)  # the meter's spans may come in the next batch
        logs = log.read_text(errors="replace")
    http = server_span()
    assert http is not None, f"no server span for the request\n{logs[-3000:]}"
    assert http.name == "POST /api/v1/devices/{device_id}/commands"
    assert http.trace_id == trace_id  # the request's traceparent leads to the trace
    assert http.parent_id == client_span_id
    # The response names the server span (W3C traceresponse): a client finds its trace from it.
    assert response.headers["traceresponse"] == f"00-{trace_id}-{http.span_id}-01"
    with otlp.lock:
        trace = [s for s in otlp.spans if s.trace_id == http.trace_id]
    by_id = {s.span_id: s for s in trace}
    kinds = {(s.kind, s.name) for s in trace}
    command_publish = next((s for s in trace if s.kind == "PRODUCER" and s.name == "publish devices/+/commands"), None)
    meter_process = next((s for s in trace if s.kind == "CONSUMER" and s.name == "process devices/+/commands"), None)
    reply_publish = next((s for s in trace if s.kind == "PRODUCER" and "/replies/" in s.name), None)
    reply_process = next((s for s in trace if s.kind == "CONSUMER" and "/replies/" in s.name), None)
    command = next((s for s in trace if s.kind == "CLIENT" and s.name == "command read_meter"), None)
    assert command_publish is not None, kinds
    assert meter_process is not None, kinds
    assert reply_publish is not None, kinds
    assert reply_process is not None, kinds
    assert command is not None, kinds
    # The command span: opened under the HTTP span, the publish of the command inside it.
    assert http.span_id in _ancestor_ids(command, by_id), _chain(command, by_id)
    assert command.span_id in _ancestor_ids(command_publish, by_id), _chain(command_publish, by_id)
    assert command.span_id in _ancestor_ids(reply_process, by_id)
    assert command.attributes["energy.command.state"] == "succeeded"
    assert command.attributes["energy.command.id"] == command_id
    assert command.attributes["energy.command.name"] == "read_meter"
    assert command.attributes["energy.device.id"] == "meter-001"
    assert command.status != "ERROR"
    events = [name for name, _, _ in command.events]
    assert events[0] == "sent", events
    assert events[-1] == "reply", events
    assert set(events) <= {"sent", "delivered", "reply"}, events
    at = {name: time for name, time, _ in command.events}
    assert command.start <= at["sent"] <= command_publish.start  # claimed, then published
    # The reply's handling records the reply event and ends the span, before the response.
    assert reply_process.start <= at["reply"] <= command.end <= min(reply_process.end, http.end)
    assert dict(command.events[-1][2]) == {"energy.command.state": "succeeded"}
    # One connected trace: each step is a descendant of the one before, up to the HTTP span.
    assert http.name in _chain(command_publish, by_id)
    assert meter_process.parent_id == command_publish.span_id
    assert reply_publish.parent_id == meter_process.span_id
    assert reply_process.parent_id == reply_publish.span_id
    assert _chain(reply_process, by_id)[-1] == http.name  # the root is the HTTP span
    # The HTTP response goes out after the reply was handled.
    assert http.start <= command.start <= command_publish.start <= reply_process.end <= http.end
    for span in (http, command, command_publish, meter_process, reply_publish, reply_process):
        assert span.attributes.get("correlation_id") == correlation_id, span
    assert command_publish.attributes["messaging.system"] == "mqtt"
    assert command_publish.attributes["messaging.destination.name"] == "devices/meter-001/commands"
    # Every log line of this request carries its correlation id and trace id.
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    ours = [line for line in lines if line.get("correlation_id") == correlation_id]
    assert any("command" in line["message"] for line in ours), logs[-3000:]
    command_lines = [line for line in lines if "read_meter" in line.get("message", "")]
    assert len(command_lines) >= 2, logs[-3000:]  # sent, succeeded
    for line in command_lines:
        assert line.get("correlation_id") == correlation_id, line
        assert line.get("trace_id") == http.trace_id, line
