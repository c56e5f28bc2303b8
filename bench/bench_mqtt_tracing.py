"""What MQTT spans cost per message: consume and publish with tracing off, a no-op provider, and sampled spans.

    python bench/bench_mqtt_tracing.py                 3 interleaved rounds, 30,000 consumed / 10,000 published
    python bench/bench_mqtt_tracing.py --quick         1 round, 10,000 / 4,000
    python bench/bench_mqtt_tracing.py --before REF    also run energy-messaging as of git REF (e.g. main)
    python bench/bench_mqtt_tracing.py --only consume  one workload (process, consume or publish)

Every variant runs in a fresh interpreter (OpenTelemetry allows one global tracer
provider per process), in interleaved rounds in a shuffled order; medians. The workloads
are ``process`` (received messages handed straight to the manager's inbound path, in
process: no broker, no event-loop scheduling, the steadiest figure) and
``bench_mqtt.py``'s: ``consume`` is its ``energy`` consumer (a paho publisher in a
separate process, QoS 0 telemetry, routing ``{device_id}`` + JSON + a counting handler,
MQTT 5), ``publish`` its sliding window of 100 awaited QoS 1 ``publish()`` calls.

Variants:

``off``           no OpenTelemetry SDK (the API's proxy provider): the manager skips spans.
``noop``          ``trace.set_tracer_provider(NoOpTracerProvider())``: skipped as well.
``sampled-1%``    the SDK's ``TracerProvider`` with ``ParentBased(TraceIdRatioBased(0.01))``
                  and a ``BatchSpanProcessor`` to an exporter that drops the spans: a span
                  object per message, 1 % of them recorded and exported.
``sampled-100%``  the same with every span recorded and exported (the worst case).
``before``        (with ``--before``) the ``off`` workload on energy-messaging as of a git
                  ref, extracted with ``git archive``: the untraced path before this change.
``before-1%``     (with ``--before``) ``sampled-1%`` on that ref: the sampled path before it.

Before its workload each child runs 300 messages through a manager's inbound path in
process (:func:`warm_up`), so the one-time imports of the first traced message are not
timed. Reported: messages per second (consume: wall time first to last message; publish: wall
time of the run), CPU µs per message of the variant's process, ratios to ``off``, and
the added CPU per message.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VARIANTS = ("off", "noop", "sampled-1%", "sampled-100%")
#: The variants run on energy-messaging as of ``--before REF``, and the provider each installs.
BEFORE = {"before": "off", "before-1%": "sampled-1%"}


def install_provider(variant: str) -> None:
    """Install the tracer provider of a variant (in the child process)."""
    variant = BEFORE.get(variant, variant)
    if variant == "off":
        return
    from opentelemetry import trace

    if variant == "noop":
        trace.set_tracer_provider(trace.NoOpTracerProvider())
        return
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    class Drop(SpanExporter):
        """Counts and drops the spans (the export itself is not what is measured)."""

        exported = 0

        def export(self, spans: object) -> SpanExportResult:
            Drop.exported += len(spans)  # type: ignore[arg-type]
            return SpanExportResult.SUCCESS

    ratio = 0.01 if variant == "sampled-1%" else 1.0
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    trace.set_tracer_provider(provider)


def child(variant: str, workload: str, prefix: str, count: int) -> None:
    """Run one workload under one variant and print ``{"rate", "cpu_us"}`` as JSON."""
    install_provider(variant)
    sys.path.insert(0, str(BENCH))
    import bench_mqtt

    warm_up(prefix)
    if workload == "consume":
        counter, cpu = asyncio.run(bench_mqtt.consume_energy(prefix, count))
        if counter.count != count or not counter.params_ok:
            raise SystemExit(f"{variant}: {count - counter.count} lost or a bad message; no figures")
        rate = counter.count / max(counter.last - counter.first, 1e-9)
    elif workload == "process":
        rate, cpu = asyncio.run(process_in_process(prefix, count))
    else:
        cpu0 = time.process_time()
        seconds = asyncio.run(bench_mqtt.publish_energy(prefix, count))
        cpu = time.process_time() - cpu0
        rate = count / seconds
    print(json.dumps({"rate": rate, "cpu_us": cpu / count * 1e6}))


def warm_up(prefix: str) -> None:
    """Run a few hundred messages through a manager's inbound path before the timed window.

    The first traced message imports what tracing needs (propagators, the context API)
    and fills the manager's caches: one-time work of several milliseconds that would
    otherwise land in the first workload's figures, unevenly between the variants.
    """
    asyncio.run(process_in_process(f"{prefix}/warm-up", 300))


async def process_in_process(prefix: str, count: int) -> tuple[float, float]:
    """Hand ``count`` received messages straight to the manager's inbound path (no broker, no loop wake-ups).

    The per-message work of ``consume`` (routing ``{device_id}``, JSON, the handler, the
    span) without the network and the event loop's scheduling, whose cost per message
    varies with the arrival rate: the steadiest figure for what a span adds.
    """
    import paho.mqtt.client as paho
    from energy_messaging import MQTTManager, MQTTMessage

    seen = 0
    mqtt = MQTTManager("127.0.0.1", 1, protocol="5")

    @mqtt.on(f"{prefix}/devices/{{device_id}}/telemetry", qos=0)
    async def handler(message: MQTTMessage) -> None:
        nonlocal seen
        if message.params["device_id"] == f"m{message.payload['i'] % 100}":
            seen += 1

    messages = []
    for i in range(count):
        message = paho.MQTTMessage(topic=f"{prefix}/devices/m{i % 100}/telemetry".encode())
        message.payload = json.dumps({"i": i, "power_w": 1.5}).encode()
        messages.append(message)
    process = mqtt._inbound._process
    for message in messages[:100]:  # warm-up: caches, the tracer, the gate
        await process(message)
    seen = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for message in messages:
        await process(message)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if seen != count:
        raise SystemExit(f"process: {count - seen} messages not handled correctly; no figures")
    return count / wall, cpu


def run_variant(variant: str, workload: str, count: int, before: Path | None) -> dict[str, float]:
    """Run a variant in a fresh interpreter and return its figures."""
    env = dict(os.environ)
    if variant in BEFORE and before is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(before), env.get("PYTHONPATH", "")])
    prefix = f"bench/tr-{uuid.uuid4().hex[:8]}"
    out = subprocess.run(
        [sys.executable, __file__, "--child", variant, workload, prefix, str(count)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )
    if out.returncode != 0:
        raise SystemExit(f"{workload} {variant} failed:\n{out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def extract_before(ref: str, into: Path) -> Path:
    """Extract energy-messaging's sources as of ``ref`` (git archive) and return the import root."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "packages/energy-messaging/src"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "packages" / "energy-messaging" / "src"


def main(quick: bool, rounds: int | None, before_ref: str | None, only: str | None) -> None:
    """Run the workloads over every variant and print the report."""
    rounds = rounds or (1 if quick else 3)
    counts = {
        "process": 20_000 if quick else 100_000,
        "consume": 10_000 if quick else 30_000,
        "publish": 4_000 if quick else 10_000,
    }
    if only is not None:
        counts = {only: counts[only]}
    with tempfile.TemporaryDirectory(prefix="bench-before-") as tmp:
        before = extract_before(before_ref, Path(tmp)) if before_ref else None
        variants = (*VARIANTS, *BEFORE) if before is not None else VARIANTS
        for workload, count in counts.items():
            rates: dict[str, list[float]] = {name: [] for name in variants}
            cpus: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(rounds):
                for name in random.sample(list(variants), len(variants)):
                    figures = run_variant(name, workload, count, before)
                    rates[name].append(figures["rate"])
                    cpus[name].append(figures["cpu_us"])
                    print(f"  {workload} {name:13s} {figures['rate']:9.0f} msg/s  {figures['cpu_us']:6.1f} µs CPU/msg")
            base_rate, base_cpu = statistics.median(rates["off"]), statistics.median(cpus["off"])
            print(f"\n{workload} ({count} msgs, {rounds} rounds, medians)   msg/s   ratio to off   CPU µs/msg   added")
            for name in variants:
                rate, cpu = statistics.median(rates[name]), statistics.median(cpus[name])
                print(f"  {name:13s} {rate:9.0f}   {rate / base_rate:5.2f}x   {cpu:7.1f}   {cpu - base_cpu:+6.1f} µs")
            print()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        raise SystemExit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3, 1 with --quick)")
    parser.add_argument("--before", default=None, help="also run energy-messaging as of this git ref")
    parser.add_argument("--only", choices=("process", "consume", "publish"), default=None, help="run one workload")
    args = parser.parse_args()
    main(args.quick, args.rounds, args.before, args.only)
