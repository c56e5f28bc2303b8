"""MQTT benchmark on the shared Mosquitto: MQTTManager vs raw aiomqtt vs raw paho.

    python bench/bench_mqtt.py            3 interleaved rounds, 50,000 telemetry messages
    python bench/bench_mqtt.py --quick    1 round, 10,000 messages
    python bench/bench_mqtt.py --sections publish,import --rounds 5

Sections (variants run in interleaved rounds in a shuffled order; medians; ratios):

consume   A paho publisher in a separate process sends N QoS 0 telemetry messages
          (``<prefix>/devices/<id>/telemetry``, JSON) as fast as the consumer keeps up (it
          never runs more than 900 messages ahead, read from shared memory, because the
          shared Mosquitto drops what exceeds its 1,000-message client queue); the consumer
          in this process routes the topic (wildcard filter with the device id), decodes
          the JSON and calls a handler that counts. Reported: messages per second of wall
          time (first to last message) and per CPU second of this process.
          Variants: ``energy`` (MQTTManager.subscribe with ``{device_id}``), ``aiomqtt``
          (``async for message in client.messages`` + ``Topic.matches`` + json.loads),
          ``paho`` (as paho's docs recommend: ``loop_start()``'s network thread and a
          ``message_callback_add`` callback for the filter, + json.loads), all on MQTT 5;
          and ``energy-311`` / ``paho-311``, the same two on MQTT 3.1.1.
publish   QoS 1 publishing of N/5 JSON messages with up to 100 publishes in flight:
          ``energy`` (a sliding window of 100 concurrent ``publish()`` calls),
          ``energy-nowait`` (``publish(wait=False)`` then one ``flush()``),
          ``energy-serial`` (awaiting each PUBACK in turn), ``paho`` (``max_inflight_messages_set(100)``, network
          thread, wait for the last ``wait_for_publish``).
latency   One publisher and one subscriber in this process, QoS 1, 1,000 msg/s for 2 s:
          p50/p99 of receive time minus send time, ``energy`` vs ``aiomqtt``.
import    ``import energy_messaging`` (names load lazily on first use) and the seed's
          ``from energy_messaging.mqtt import MQTTManager, DeviceManager`` vs
          ``import aiomqtt`` in fresh interpreters: CPU time (without tracemalloc, which slows
          imports ~4x) and traced memory (in a second interpreter), medians of 7,
          once with every module's bytecode cached (a private PYTHONPYCACHEPREFIX, warmed
          first: how an installed package runs) and once as this environment runs
          (PYTHONDONTWRITEBYTECODE: site-packages and the editable sources compile each time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import multiprocessing.process
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from energy_messaging import MQTTManager, MQTTMessage

HOST = os.environ.get("ENERGY_BENCH_MQTT_HOST", "127.0.0.1")
PORT = int(os.environ.get("ENERGY_BENCH_MQTT_PORT", "1883"))
IDLE = 3.0  # seconds without a message that end a consume run

WINDOW = 900  # messages the publisher may run ahead of the consumer (Mosquitto queues 1,000 by default)


def publisher_main(prefix: str, count: int, host: str, port: int, progress: Any) -> None:
    """The fast publisher (separate process): as fast as the consumer keeps up, never past the broker's queue."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.connect(host, port)
    client.loop_start()
    for n in range(count):
        while n - progress.value >= WINDOW:
            time.sleep(0.0002)
        payload = json.dumps({"ts": time.time(), "seq": n, "power_w": 1234.5, "voltage_v": 230.1, "energy_kwh": 12.25})
        client.publish(f"{prefix}/devices/d{n % 100}/telemetry", payload, qos=0)
    client.loop_stop()
    client.disconnect()


def start_publisher(prefix: str, count: int, progress: Any) -> multiprocessing.process.BaseProcess:
    """Start the fast publisher process."""
    proc = multiprocessing.get_context("spawn").Process(
        target=publisher_main, args=(prefix, count, HOST, PORT, progress), daemon=True
    )
    proc.start()
    return proc


class Counter:
    """Counts handled messages and remembers the first/last arrival time."""

    def __init__(self) -> None:
        self.progress: Any = multiprocessing.get_context("spawn").Value("q", 0, lock=False)
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.params_ok = True

    def hit(self, device_id: str, payload: Any) -> None:
        """Record one handled message."""
        now = time.perf_counter()
        if self.count == 0:
            self.first = now
        self.last = now
        self.count += 1
        if self.count % 100 == 0:
            self.progress.value = self.count
        if not device_id or "power_w" not in payload:
            self.params_ok = False


async def wait_idle(counter: Counter, count: int) -> None:
    """Return when every message arrived or none came for IDLE seconds."""
    seen, since = -1, time.perf_counter()
    while counter.count < count:
        await asyncio.sleep(0.05)
        if counter.count != seen:
            seen, since = counter.count, time.perf_counter()
        elif time.perf_counter() - since > IDLE:
            break


async def consume_energy(prefix: str, count: int, protocol: str = "5") -> tuple[Counter, float]:
    """MQTTManager consumer."""
    counter = Counter()
    async with MQTTManager(HOST, PORT, max_queued_messages=1000, protocol=protocol) as mqtt:  # type: ignore[arg-type]

        async def handler(message: MQTTMessage) -> None:
            counter.hit(message.params["device_id"], message.payload)

        await mqtt.subscribe(f"{prefix}/devices/{{device_id}}/telemetry", handler, qos=0)
        return await run_consume(prefix, count, counter)


async def consume_aiomqtt(prefix: str, count: int) -> tuple[Counter, float]:
    """Raw aiomqtt consumer."""
    counter = Counter()
    async with aiomqtt.Client(HOST, PORT, protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.subscribe(f"{prefix}/devices/+/telemetry", qos=0)

        async def loop() -> None:
            pattern = f"{prefix}/devices/+/telemetry"
            async for message in client.messages:
                if message.topic.matches(pattern):
                    counter.hit(message.topic.value.split("/")[-2], json.loads(message.payload))  # type: ignore[arg-type]

        task = asyncio.create_task(loop())
        try:
            return await run_consume(prefix, count, counter)
        finally:
            task.cancel()


async def consume_paho(prefix: str, count: int, v5: bool = True) -> tuple[Counter, float]:
    """Raw paho consumer (its own network thread, paho's per-filter callback)."""
    counter = Counter()
    pattern = f"{prefix}/devices/+/telemetry"
    ready = threading.Event()

    def on_telemetry(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        counter.hit(message.topic.split("/")[-2], json.loads(message.payload))

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5 if v5 else paho.MQTTv311)
    client.message_callback_add(pattern, on_telemetry)
    client.on_subscribe = lambda *args: ready.set()
    client.connect(HOST, PORT)
    client.loop_start()
    client.subscribe(pattern, qos=0)
    await asyncio.to_thread(ready.wait, 5)
    try:
        return await run_consume(prefix, count, counter)
    finally:
        client.loop_stop()
        client.disconnect()


async def run_consume(prefix: str, count: int, counter: Counter) -> tuple[Counter, float]:
    """Run the publisher against a ready consumer; return the counter and CPU seconds used."""
    cpu = time.process_time()
    proc = start_publisher(prefix, count, counter.progress)
    await wait_idle(counter, count)
    used = time.process_time() - cpu
    await asyncio.to_thread(proc.join, 30)
    return counter, used


CONSUMERS: dict[str, Callable[[str, int], Awaitable[tuple[Counter, float]]]] = {
    "energy": consume_energy,
    "aiomqtt": consume_aiomqtt,
    "paho": consume_paho,
    "energy-311": lambda prefix, count: consume_energy(prefix, count, "3.1.1"),
    "paho-311": lambda prefix, count: consume_paho(prefix, count, v5=False),
}


async def publish_energy_nowait(prefix: str, count: int) -> float:
    """QoS 1 publishing with ``wait=False`` (paho's window of 100) and one ``flush()``; return seconds."""
    async with MQTTManager(HOST, PORT, max_inflight=100) as mqtt:
        start = time.perf_counter()
        for n in range(count):
            await mqtt.publish(f"{prefix}/pub", {"seq": n, "power_w": 1234.5}, qos=1, wait=False)
            if n % 100 == 99:
                await asyncio.sleep(0)  # let PUBACKs in
        await mqtt.flush()
        return time.perf_counter() - start


async def publish_energy(prefix: str, count: int, *, serial: bool = False) -> float:
    """QoS 1 publishing with MQTTManager; return seconds."""
    async with MQTTManager(HOST, PORT, max_inflight=100) as mqtt:
        start = time.perf_counter()
        if serial:
            for n in range(count):
                await mqtt.publish(f"{prefix}/pub", {"seq": n, "power_w": 1234.5}, qos=1)
        else:
            window = asyncio.Semaphore(100)  # a sliding window: at most 100 awaiting their PUBACK

            async def one(n: int) -> None:
                async with window:
                    await mqtt.publish(f"{prefix}/pub", {"seq": n, "power_w": 1234.5}, qos=1)

            await asyncio.gather(*(one(n) for n in range(count)))
        return time.perf_counter() - start


async def publish_paho(prefix: str, count: int) -> float:
    """QoS 1 publishing with paho (network thread, 100 in flight); return seconds."""

    def run() -> float:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        client.connect(HOST, PORT)
        client.loop_start()
        start = time.perf_counter()
        info = None
        for n in range(count):
            info = client.publish(f"{prefix}/pub", json.dumps({"seq": n, "power_w": 1234.5}), qos=1)
        assert info is not None
        info.wait_for_publish(60)
        elapsed = time.perf_counter() - start
        client.loop_stop()
        client.disconnect()
        return elapsed

    return await asyncio.to_thread(run)


async def latency_energy(prefix: str, rate: int, seconds: float) -> list[float]:
    """Latencies (s) with MQTTManager on both ends."""
    samples: list[float] = []
    async with MQTTManager(HOST, PORT) as sub, MQTTManager(HOST, PORT) as pub:

        async def handler(message: MQTTMessage) -> None:
            samples.append(time.perf_counter() - message.payload["t"])

        await sub.subscribe(f"{prefix}/lat", handler, qos=1)
        await paced(rate, seconds, lambda: pub.publish(f"{prefix}/lat", {"t": time.perf_counter()}, qos=1, wait=False))
        await asyncio.sleep(0.5)
    return samples


async def latency_aiomqtt(prefix: str, rate: int, seconds: float) -> list[float]:
    """Latencies (s) with raw aiomqtt on both ends."""
    samples: list[float] = []
    v5 = aiomqtt.ProtocolVersion.V5
    async with aiomqtt.Client(HOST, PORT, protocol=v5) as sub, aiomqtt.Client(HOST, PORT, protocol=v5) as pub:
        await sub.subscribe(f"{prefix}/lat", qos=1)

        async def loop() -> None:
            async for message in sub.messages:
                received = time.perf_counter()
                samples.append(received - json.loads(message.payload)["t"])  # type: ignore[arg-type]

        task = asyncio.create_task(loop())

        async def send() -> None:
            await pub.publish(f"{prefix}/lat", json.dumps({"t": time.perf_counter()}), qos=1)

        tasks: list[asyncio.Task[None]] = []
        await paced(rate, seconds, lambda: tasks.append(asyncio.create_task(send())) or asyncio.sleep(0))
        await asyncio.gather(*tasks)
        await asyncio.sleep(0.5)
        task.cancel()
    return samples


async def paced(rate: int, seconds: float, send: Callable[[], Awaitable[Any]]) -> None:
    """Call ``send`` ``rate`` times per second for ``seconds``."""
    start = time.perf_counter()
    for n in range(int(rate * seconds)):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await send()


SECTIONS = ("consume", "publish", "latency", "import")

IMPORTS = {
    "import aiomqtt": "import aiomqtt",
    "import energy_messaging": "import energy_messaging",
    "from .mqtt import MQTTManager, DeviceManager": "from energy_messaging.mqtt import MQTTManager, DeviceManager",
}


def import_cost(statement: str, pycache: str | None = None) -> tuple[float, float]:
    """(CPU seconds, traced MiB) of running an import statement in a fresh interpreter.

    With ``pycache`` (a directory), bytecode is read from and written there for every
    module, as an installed package has it; without, the environment decides (this dev
    env sets PYTHONDONTWRITEBYTECODE, so editable sources and site-packages compile).
    """
    env = dict(os.environ)
    if pycache is not None:
        env["PYTHONPYCACHEPREFIX"] = pycache
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    # Two interpreters: tracemalloc slows imports ~4x (it hooks every allocation), so the
    # CPU time is taken without it and the memory with it.
    timing = f"import time; t = time.process_time(); {statement}; print(time.process_time() - t)"
    memory = f"import tracemalloc; tracemalloc.start(); {statement}; print(tracemalloc.get_traced_memory()[0])"
    run = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
        for code in (timing, memory)
    ]
    return float(run[0]), int(run[1]) / 2**20


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(quick: bool, sections: set[str], rounds: int | None = None) -> None:
    """Run the chosen sections and print the report."""
    rounds = rounds or (1 if quick else 3)
    count = 10_000 if quick else 50_000
    run_id = uuid.uuid4().hex[:8]
    print(f"MQTT benchmark on {HOST}:{PORT}; {rounds} round(s); {count} messages per consume run\n")

    if "consume" in sections:
        await section_consume(rounds, count, run_id)
    if "publish" in sections:
        await section_publish(rounds, count // 5, run_id)
    if "latency" in sections:
        await section_latency(quick, run_id)
    if "import" in sections:
        section_import(quick)


async def section_consume(rounds: int, count: int, run_id: str) -> None:
    """Consume: MQTTManager vs raw aiomqtt vs raw paho."""
    rates: dict[str, list[float]] = {name: [] for name in CONSUMERS}
    cpu_rates: dict[str, list[float]] = {name: [] for name in CONSUMERS}
    for r in range(rounds):
        order = list(CONSUMERS)
        random.shuffle(order)
        for name in order:
            counter, cpu = await CONSUMERS[name](f"bench/{run_id}/c{r}{name}", count)
            span = max(counter.last - counter.first, 1e-9)
            rates[name].append(counter.count / span)
            cpu_rates[name].append(counter.count / max(cpu, 1e-9))
            lost = count - counter.count
            print(f"  consume {name:10s} {counter.count:6d} msgs ({lost} lost) {counter.count / span:9.0f} msg/s")
            if lost or not counter.params_ok:
                raise SystemExit(f"consume {name}: {lost} lost or a message without device id/payload; no figures")
    base = statistics.median(rates["aiomqtt"])
    base_cpu = statistics.median(cpu_rates["aiomqtt"])
    print(
        "\nconsume (routing + JSON + handler), median   ratio to raw aiomqtt / to raw paho, same protocol (wall, CPU)"
    )
    for name in CONSUMERS:
        wall, cpu_rate = statistics.median(rates[name]), statistics.median(cpu_rates[name])
        ref = "paho-311" if name.endswith("-311") else "paho"
        paho_wall, paho_cpu = statistics.median(rates[ref]), statistics.median(cpu_rates[ref])
        print(
            f"  {name:14s} {wall:9.0f}/s  {cpu_rate:9.0f}/CPU-s   {wall / base:5.2f}x, {cpu_rate / base_cpu:5.2f}x"
            f"  /  {wall / paho_wall:5.2f}x, {cpu_rate / paho_cpu:5.2f}x"
        )


async def section_publish(rounds: int, pub_count: int, run_id: str) -> None:
    """QoS 1 publishing with several in flight vs paho."""
    pubs: dict[str, list[float]] = {"energy": [], "energy-nowait": [], "energy-serial": [], "paho": []}
    cpus: dict[str, list[float]] = {name: [] for name in pubs}  # process CPU (paho: its thread too) per message
    runners: dict[str, Callable[[str], Awaitable[float]]] = {
        "energy": lambda p: publish_energy(p, pub_count),
        "energy-nowait": lambda p: publish_energy_nowait(p, pub_count),
        "energy-serial": lambda p: publish_energy(p, pub_count // 5, serial=True),
        "paho": lambda p: publish_paho(p, pub_count),
    }
    for r in range(rounds):
        order = list(runners)
        random.shuffle(order)
        for name in order:
            n = pub_count // 5 if name == "energy-serial" else pub_count
            cpu = time.process_time()
            pubs[name].append(n / await runners[name](f"bench/{run_id}/p{r}"))
            cpus[name].append((time.process_time() - cpu) / n)
    print(f"\nQoS 1 publish ({pub_count} msgs, up to 100 in flight), median msg/s  ratio to paho  CPU/msg")
    for name, values in pubs.items():
        value = statistics.median(values)
        print(
            f"  {name:14s} {value:9.0f}/s   {value / statistics.median(pubs['paho']):5.2f}x"
            f"   {statistics.median(cpus[name]) * 1e6:6.1f} us"
        )


async def section_latency(quick: bool, run_id: str) -> None:
    """p50/p99 latency at a fixed rate."""
    print("\nlatency at 1,000 msg/s for 2 s, QoS 1 (ms)          p50      p99")
    for name, fn in (("energy", latency_energy), ("aiomqtt", latency_aiomqtt)):
        samples = await fn(f"bench/{run_id}/l{name}", 1000, 1.0 if quick else 2.0)
        print(f"  {name:14s} {len(samples):5d} msgs   {pct(samples, 0.5) * 1e3:7.2f}  {pct(samples, 0.99) * 1e3:7.2f}")


def section_import(quick: bool) -> None:
    """Import cost vs aiomqtt."""
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as pycache:
        for statement in IMPORTS.values():
            import_cost(statement, pycache)  # writes the bytecode of every module involved
        for title, where in (("bytecode cached, as installed", pycache), ("this env: no bytecode cache", None)):
            imports: dict[str, list[tuple[float, float]]] = {label: [] for label in IMPORTS}
            for _ in range(3 if quick else 7):
                for label in random.sample(list(IMPORTS), len(IMPORTS)):
                    imports[label].append(import_cost(IMPORTS[label], where))
            print(f"\nimport ({title}; fresh interpreters, medians)  CPU (ms)  traced MiB  ratio to aiomqtt")
            ref_t = statistics.median(t for t, _ in imports["import aiomqtt"])
            ref_m = statistics.median(m for _, m in imports["import aiomqtt"])
            for label, values in imports.items():
                t = statistics.median(v for v, _ in values)
                m = statistics.median(v for _, v in values)
                print(f"  {label:46s} {t * 1e3:7.1f}   {m:7.2f}    {t / ref_t:4.2f}x / {m / ref_m:4.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3, 1 with --quick)")
    args = parser.parse_args()
    asyncio.run(main(args.quick, set(args.sections.split(",")), args.rounds))
