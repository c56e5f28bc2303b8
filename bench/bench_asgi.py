"""In-process ASGI benchmark: bare FastAPI vs the energy stack vs the usual peer stack.

    python bench/bench_asgi.py            9 interleaved rounds
    python bench/bench_asgi.py --quick    3 short rounds

Each variant is a FastAPI app with one trivial ``GET /ping`` endpoint, driven by a raw
ASGI call loop (no network, no HTTP client): a prepared scope, a ``receive`` that returns
an empty body and a ``send`` that checks the status. Cost is measured in CPU time
(``time.process_time``) so that other load on the machine matters less; variants run in
interleaved rounds in a shuffled order, and the report gives the median requests per
CPU-second and its ratio to bare FastAPI.

Variants:
    bare    FastAPI alone.
    energy  FastAPI + ``energy_common.middleware.setup_middleware`` (correlation id,
            request log written as JSON to /dev/null, security headers, CORS, body
            limit, error envelope) + exception handlers.
    peer    FastAPI + asgi-correlation-id + prometheus-fastapi-instrumentator +
            opentelemetry-instrumentation-fastapi (see :func:`recording_provider`) +
            Starlette CORSMiddleware + a BaseHTTPMiddleware that sets security headers.

Spans go through the pipeline a real service runs (:func:`recording_provider`): the SDK
tracer provider with its default sampler, a ``BatchSpanProcessor`` and an exporter that
drops what it is handed (an OTLP exporter would send it away). After every round the
provider is flushed and the exported server spans are counted: exactly one recorded span
per request, or the benchmark fails (a full queue dropping spans would flatter the result).

Reuse: ``bench/bench_monitoring.py`` can import this module (put ``bench/`` on
``sys.path``) and call ``main(extra_variants={"energy+obs": lambda: energy_app(
instrumentation=[...])})`` or use :func:`run_benchmark` and :func:`format_report`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message

Variant = Callable[[], ASGIApp]

ORIGIN = "https://app.example.com"
_SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/ping",
    "raw_path": b"/ping",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"bench.local"), (b"user-agent", b"bench/1.0"), (b"accept", b"*/*")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}


_DEVNULL: list[TextIO] = []


def _devnull() -> TextIO:
    if not _DEVNULL:
        _DEVNULL.append(Path(os.devnull).open("w", encoding="utf-8"))  # noqa: SIM115 - lives for the process
    return _DEVNULL[0]


def _trivial_app(telemetry: Any = None) -> FastAPI:
    app = FastAPI() if telemetry is None else FastAPI(telemetry=telemetry)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"status": "ok"}

    return app


class SpanCounter:
    """Exporter for a ``BatchSpanProcessor``: counts what it is handed, keeps nothing."""

    def __init__(self) -> None:
        self.server_spans = 0
        self.spans = 0

    def export(self, spans: Sequence[Any]) -> Any:
        """Count the batch (as an exporter that sent it would, minus the network)."""
        from opentelemetry.sdk.trace.export import SpanExportResult
        from opentelemetry.trace import SpanKind

        self.spans += len(spans)
        self.server_spans += sum(1 for span in spans if span.kind is SpanKind.SERVER)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here."""
        return True


def recording_provider() -> tuple[Any, SpanCounter]:
    """A private SDK tracer provider as a service runs it: default sampler, batch export.

    Every span is recorded and sampled (``ParentBased(ALWAYS_ON)``), ended spans are
    queued by a ``BatchSpanProcessor`` and exported from its worker thread (whose CPU
    time counts: ``time.process_time`` is per process) to a :class:`SpanCounter`.
    """
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    counter = SpanCounter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(counter))  # type: ignore[arg-type]
    return provider, counter


def bare_app() -> ASGIApp:
    """FastAPI with one trivial endpoint and nothing else."""
    return _trivial_app()


def energy_app(*, instrumentation: Sequence[Middleware] = (), telemetry: Any = None) -> ASGIApp:
    """FastAPI with the energy-common stack; ``instrumentation`` goes after the correlation id.

    ``telemetry`` is passed to ``FastAPI(telemetry=...)`` (FastAPI's native OpenTelemetry).
    """
    from energy_common.config import Settings
    from energy_common.logging import setup_logging
    from energy_common.middleware import setup_middleware

    # Request log lines are really formatted and written, just not to the terminal.
    setup_logging("bench", log_level="INFO", stream=_devnull())
    app = _trivial_app(telemetry)
    setup_middleware(app, Settings(service_name="bench", cors_origins=[ORIGIN]), instrumentation=instrumentation)
    return app


def peer_app() -> ASGIApp:
    """FastAPI with the peer libraries services commonly assemble by hand."""
    from asgi_correlation_id import CorrelationIdMiddleware
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from prometheus_client import CollectorRegistry
    from prometheus_fastapi_instrumentator import Instrumentator
    from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
    from starlette.middleware.cors import CORSMiddleware
    from starlette.requests import Request
    from starlette.responses import Response

    class SecurityHeaders(BaseHTTPMiddleware):
        async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
            response = await call_next(request)
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["X-Frame-Options"] = "DENY"
            response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
            response.headers["Content-Security-Policy"] = "default-src 'none'"
            response.headers["Referrer-Policy"] = "no-referrer"
            return response

    provider, counter = recording_provider()
    app = _trivial_app()
    app.add_middleware(SecurityHeaders)
    app.add_middleware(CORSMiddleware, allow_origins=[ORIGIN])
    Instrumentator(registry=CollectorRegistry()).instrument(app)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    app.add_middleware(CorrelationIdMiddleware)
    traced(app, provider, counter)
    return app


def traced(app: Any, provider: Any, counter: SpanCounter) -> None:
    """Register ``app``'s span pipeline so every round checks one server span per request."""
    app.state.bench_spans = (provider, counter)


def default_variants() -> dict[str, Variant]:
    """The three variants of this benchmark, baseline first."""
    return {"bare": bare_app, "energy": energy_app, "peer": peer_app}


async def drive(app: ASGIApp, requests: int) -> float:
    """Send ``requests`` GET /ping calls through ``app``; return the CPU seconds spent."""

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    status: list[int] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    start = time.process_time()
    for _ in range(requests):
        await app(dict(_SCOPE), receive, send)
    elapsed = time.process_time() - start
    if set(status) != {200} or len(status) != requests:
        raise RuntimeError(f"benchmark app answered {sorted(set(status))}, expected only 200")
    return elapsed


def _spans(app: ASGIApp) -> tuple[Any, SpanCounter] | None:
    return getattr(getattr(app, "state", None), "bench_spans", None)


def _clear(app: ASGIApp) -> None:
    spans = _spans(app)
    if spans is not None:
        provider, counter = spans
        provider.force_flush()
        counter.server_spans = counter.spans = 0


def _check(app: ASGIApp, name: str, requests: int) -> None:
    spans = _spans(app)
    if spans is not None:
        provider, counter = spans
        provider.force_flush()
        if counter.server_spans != requests:
            raise RuntimeError(f"{name}: {counter.server_spans} server spans exported for {requests} requests")


def run_benchmark(
    variants: Mapping[str, Variant],
    *,
    rounds: int = 9,
    requests: int = 2000,
    warmup: int = 200,
    seed: int = 1,
    after_round: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Run every variant in interleaved, shuffled rounds; return median requests per CPU-second.

    ``after_round(name)`` runs after each timed round (outside the timing), before the
    span check.
    """

    async def run() -> dict[str, float]:
        apps = {name: factory() for name, factory in variants.items()}
        for app in apps.values():
            await drive(app, warmup)
        samples: dict[str, list[float]] = {name: [] for name in apps}
        order = list(apps)
        rng = random.Random(seed)
        for _ in range(rounds):
            rng.shuffle(order)
            for name in order:
                _clear(apps[name])
                gc.collect()  # each round pays for its own garbage, not for the previous variant's
                cpu = await drive(apps[name], requests)
                if after_round is not None:
                    after_round(name)
                _check(apps[name], name, requests)
                samples[name].append(requests / cpu if cpu > 0 else float("inf"))
        return {name: statistics.median(values) for name, values in samples.items()}

    return asyncio.run(run())


def format_report(results: Mapping[str, float], *, baseline: str = "bare") -> str:
    """Render the medians as a table with ratios to ``baseline``."""
    base = results[baseline]
    lines = [f"{'variant':<16} {'req/CPU-s':>11} {'µs/req':>8} {'vs ' + baseline:>9}"]
    for name, rate in results.items():
        lines.append(f"{name:<16} {rate:>11.0f} {1e6 / rate:>8.1f} {rate / base:>8.2f}x")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, *, extra_variants: Mapping[str, Variant] | None = None) -> int:
    """Command-line entry point; ``extra_variants`` lets another benchmark add rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 short rounds")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--requests", type=int, default=None)
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 9)
    requests = args.requests or (500 if args.quick else 2000)
    variants = {**default_variants(), **(extra_variants or {})}
    results = run_benchmark(variants, rounds=rounds, requests=requests)
    print(f"in-process ASGI, GET /ping, {rounds} rounds x {requests} requests, medians")
    print(format_report(results))
    energy = results["energy"] / results["bare"]
    peer = results["peer"] / results["bare"]
    print(f"energy/bare = {energy:.2f}x (target >= 0.6x); peer/bare = {peer:.2f}x; energy/peer = {energy / peer:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
