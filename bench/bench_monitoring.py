"""energy-monitoring benchmark: metric hot path, HTTP instrumentation, @trace overhead.

    python bench/bench_monitoring.py            full run (~1 minute)
    python bench/bench_monitoring.py --quick    a few short rounds

All figures are medians of interleaved, shuffled rounds measured in CPU time
(``time.process_time``), reported as ratios, because the machine is shared.

1. Counter hot path, ns per call: ``increment_counter(name, tags={...})`` vs a cached
   prometheus-client child ``.inc()`` (target: within 2x) vs ``Counter.labels(...).inc()``.
2. HTTP instrumentation on FastAPI (raw in-process ASGI loop, ``GET /ping``, one recorded
   server span per request, batch-exported as in ``bench_asgi.recording_provider``, and
   checked after every round): energy ``instrument_app`` (tracing + metrics) vs
   prometheus-fastapi-instrumentator + opentelemetry-instrumentation-fastapi (target: faster).
3. With ``bench/bench_asgi.py``'s driver: the whole energy stack plus these middlewares vs
   bare FastAPI (target >= 0.4x) and vs the peer stack.
4. ``@trace`` vs a bare ``tracer.start_as_current_span`` around the same function.
5. In a child process with a *global* SDK provider installed (what ``setup_tracing`` does in
   a service): FastAPI's native telemetry turns on by itself (a server span plus operation
   spans per request) and our tracing middleware, inside FastAPI's stack, steps aside;
   compared with ``FastAPI(telemetry={"tracing": False})``, where our one span is recorded.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_asgi
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, Counter

TAGS = {"endpoint": "/users", "method": "GET"}


def interleaved(cases: Mapping[str, Callable[[int], float]], *, rounds: int, n: int, seed: int = 7) -> dict[str, float]:
    """Run each case ``rounds`` times in shuffled order; return the median CPU ns per op."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)
    rng = random.Random(seed)
    for case in cases.values():
        case(max(1, n // 10))  # warm-up: caches, first-call paths
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            samples[name].append(cases[name](n) * 1e9 / n)
    return {name: statistics.median(values) for name, values in samples.items()}


def counter_cases() -> dict[str, Callable[[int], float]]:
    """The three ways of counting one labelled request."""
    from energy_monitoring.metrics import MetricsRegistry, increment_counter, set_default_registry

    set_default_registry(MetricsRegistry(const_labels={"service": "bench"}))
    raw = Counter("raw_requests", "raw", ["endpoint", "method"], registry=CollectorRegistry())
    child = Counter("cached_requests", "cached", ["endpoint", "method"], registry=CollectorRegistry()).labels(**TAGS)

    def energy_case(n: int) -> float:
        inc = increment_counter  # the seed's module function, on the default registry
        start = time.process_time()
        for _ in range(n):
            inc("api.requests", 1, TAGS)
        return time.process_time() - start

    def child_case(n: int) -> float:
        inc = child.inc
        start = time.process_time()
        for _ in range(n):
            inc()
        return time.process_time() - start

    def labels_case(n: int) -> float:
        labels = raw.labels
        start = time.process_time()
        for _ in range(n):
            labels(**TAGS).inc()
        return time.process_time() - start

    return {"increment_counter": energy_case, "child.inc": child_case, "labels().inc": labels_case}


def energy_obs_app() -> Any:
    """FastAPI /ping with energy_monitoring's tracing + metrics middlewares."""
    from energy_monitoring.metrics import MetricsRegistry
    from energy_monitoring.web import instrument_app

    provider, counter = bench_asgi.recording_provider()
    app = bench_asgi.bare_app()
    instrument_app(app, registry=MetricsRegistry(), tracer_provider=provider)
    bench_asgi.traced(app, provider, counter)
    return app


def peer_obs_app() -> Any:
    """FastAPI /ping with prometheus-fastapi-instrumentator + opentelemetry-instrumentation-fastapi."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from prometheus_fastapi_instrumentator import Instrumentator

    provider, counter = bench_asgi.recording_provider()
    app = bench_asgi.bare_app()
    Instrumentator(registry=CollectorRegistry()).instrument(app)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    bench_asgi.traced(app, provider, counter)
    return app


def energy_stack_obs_app() -> Any:
    """bench_asgi's energy stack with the monitoring middlewares in setup_middleware's slot."""
    from energy_monitoring.metrics import MetricsRegistry
    from energy_monitoring.web import instrumentation_middleware

    provider, counter = bench_asgi.recording_provider()
    app: Any = bench_asgi.energy_app(
        instrumentation=instrumentation_middleware(registry=MetricsRegistry(), tracer_provider=provider)
    )
    bench_asgi.traced(app, provider, counter)
    return app


def trace_cases() -> dict[str, Callable[[int], float]]:
    """@trace vs a hand-written start_as_current_span, both through the global SDK provider."""
    from energy_monitoring.tracing import trace
    from opentelemetry import trace as otel_trace

    # No processor: spans are created and recorded (ids, attributes, timing) but go nowhere.
    otel_trace.set_tracer_provider(TracerProvider())
    tracer = otel_trace.get_tracer(__name__)

    def work(x: int) -> int:
        return x + 1

    traced = trace("bench.work")(work)

    def decorated(n: int) -> float:
        start = time.process_time()
        for i in range(n):
            traced(i)
        return time.process_time() - start

    def manual(n: int) -> float:
        start = time.process_time()
        for i in range(n):
            with tracer.start_as_current_span("bench.work"):
                work(i)
        return time.process_time() - start

    return {"@trace": decorated, "start_as_current_span": manual}


def native_telemetry_section(rounds: int, requests: int) -> None:
    """Section 5; runs in its own process because the global provider is process-wide."""
    from energy_monitoring.metrics import MetricsRegistry
    from energy_monitoring.web import instrumentation_middleware
    from opentelemetry import trace as otel_trace
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    counter = bench_asgi.SpanCounter()
    provider = TracerProvider()
    # Four spans per request for FastAPI's default: a queue that never drops within a round.
    provider.add_span_processor(BatchSpanProcessor(counter, max_queue_size=8 * requests))  # type: ignore[arg-type]
    otel_trace.set_tracer_provider(provider)
    off = {"tracing": False}

    def traced(app: Any) -> Any:
        bench_asgi.traced(app, provider, counter)
        return app

    def obs() -> Any:
        return instrumentation_middleware(registry=MetricsRegistry())

    variants = {
        "bare": lambda: bench_asgi._trivial_app(off),
        "native": lambda: traced(bench_asgi._trivial_app()),
        "native-1span": lambda: traced(bench_asgi._trivial_app({"operation_spans": False})),
        "energy+obs/nat": lambda: traced(bench_asgi.energy_app(instrumentation=obs())),
        "energy+obs": lambda: traced(bench_asgi.energy_app(instrumentation=obs(), telemetry=off)),
    }
    spans: dict[str, int] = {}

    def count_spans(name: str) -> None:
        if name != "bare":  # the untraced baseline's round starts without a flush and reset
            provider.force_flush()
            spans[name] = spans.get(name, 0) + counter.spans

    http = bench_asgi.run_benchmark(variants, rounds=rounds, requests=requests, after_round=count_spans)
    print(f"\n5. global SDK provider (as setup_tracing installs), {rounds} rounds x {requests} requests, medians")
    print(bench_asgi.format_report(http))
    for name in variants:
        print(f"   {name:<16} {spans.get(name, 0) / (rounds * requests):.2f} spans/request")
    print(
        f"   energy+obs (FastAPI telemetry tracing off, our span) = {http['energy+obs'] / http['bare']:.2f}x; "
        f"with FastAPI's default native spans = {http['energy+obs/nat'] / http['bare']:.2f}x"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the five sections and print the ratios."""
    parser = argparse.ArgumentParser(description="energy-monitoring benchmark")
    parser.add_argument("--quick", action="store_true", help="a few short rounds")
    parser.add_argument("--native-section", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rounds = 5 if args.quick else 15
    ops = 20_000 if args.quick else 100_000
    http_rounds, requests = (3, 500) if args.quick else (9, 2000)
    if args.native_section:
        native_telemetry_section(http_rounds, requests)
        return 0

    counters = interleaved(counter_cases(), rounds=rounds, n=ops)
    print(f"1. counter hot path, CPU ns/call, median of {rounds} rounds x {ops}")
    for name, ns in counters.items():
        print(f"   {name:<22} {ns:8.1f} ns   {ns / counters['child.inc']:5.2f}x child.inc")
    ratio = counters["increment_counter"] / counters["child.inc"]
    print(
        f"   increment_counter/child.inc = {ratio:.2f}x (target <= 2x); labels().inc/child.inc = "
        f"{counters['labels().inc'] / counters['child.inc']:.2f}x"
    )

    variants = {
        "bare": bench_asgi.bare_app,
        "energy-obs": energy_obs_app,
        "peer-obs": peer_obs_app,
        "energy": bench_asgi.energy_app,
        "energy+obs": energy_stack_obs_app,
        "peer": bench_asgi.peer_app,
    }
    http = bench_asgi.run_benchmark(variants, rounds=http_rounds, requests=requests)
    print(f"\n2./3. in-process ASGI GET /ping, {http_rounds} rounds x {requests} requests, medians")
    print(bench_asgi.format_report(http))
    obs = http["energy-obs"] / http["peer-obs"]
    print(
        f"   2. energy-obs/peer-obs = {obs:.2f}x (target > 1: faster); energy-obs/bare = "
        f"{http['energy-obs'] / http['bare']:.2f}x; peer-obs/bare = {http['peer-obs'] / http['bare']:.2f}x"
    )
    print(
        f"   3. energy+obs/bare = {http['energy+obs'] / http['bare']:.2f}x (target >= 0.4x); "
        f"energy+obs/peer = {http['energy+obs'] / http['peer']:.2f}x"
    )

    traces = interleaved(trace_cases(), rounds=rounds, n=ops // 4)
    overhead = traces["@trace"] - traces["start_as_current_span"]
    print(f"\n4. @trace, CPU ns/call, median of {rounds} rounds x {ops // 4}")
    for name, ns in traces.items():
        print(f"   {name:<22} {ns:8.1f} ns")
    print(
        f"   @trace/start_as_current_span = {traces['@trace'] / traces['start_as_current_span']:.2f}x "
        f"(overhead {overhead:+.0f} ns/call)"
    )
    sys.stdout.flush()
    flags = ["--native-section", *(["--quick"] if args.quick else [])]
    return subprocess.run([sys.executable, __file__, *flags], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
