"""Load benchmark of the reference meter service: MQTT → PostgreSQL ingestion and the readings API.

    python bench/bench_meter.py            60,000 readings of 1,000 meters per configuration
    python bench/bench_meter.py --quick    20,000 readings, two configurations
    python bench/bench_meter.py --api      only the API load (3), on 60,000 seeded readings

What runs, all on this machine, in one go:

1. Raw floors: Mosquitto moving messages from ``mosquitto_pub -l`` to ``mosquitto_sub``
   (both C: the broker alone, QoS 0), and PostgreSQL ``COPY`` of reading rows through
   asyncpg ``copy_records_to_table`` in batches of 1,000.
2. Ingestion: service replicas (``MeterRuntime`` in child processes, one shared
   subscription ``$share/<group>/...``, PostgreSQL in a throwaway database, in-memory
   cache and event bus) fed by a paho publisher process (QoS 1, 1,000 meters). Unpaced
   runs: MQTT 5, 100 in flight, as fast as the broker acknowledges (like a fleet),
   against a private Mosquitto with :data:`SIZED_BROKER_CONF` (the documented queue
   settings). Paced run: the shared stock Mosquitto, the parent keeping at most 2,000
   readings per replica in flight. Configurations: 1 replica unpaced and paced
   (``--quick``: only these), 2 replicas, events off, ``EVENTS_PER=reading`` and
   ``GC_TUNING=false``, in ``--rounds`` interleaved rounds. Reported: readings
   stored per second in the steady state (10 %..90 % of the rows, from ``count(*)``
   samples), service CPU per reading (all replicas), the share of wall time in the
   database and in event publishing, and the end check: ``count(*)`` and
   ``count(DISTINCT device_id, ts)`` against what was published (lost / stored twice).
   ``--profile PREFIX`` runs the first replica of the first configuration under
   pyinstrument (``PREFIX-0.txt``).
3. API: the app on uvicorn in this process, ``GET /api/v1/devices/{id}/readings?limit=50``
   with a bearer token from 16 concurrent tasks of another process (``--api``: this part
   alone, on 60 readings per meter written with ``COPY`` like the ingestion leaves them).

Mosquitto keeps at most ``max_queued_messages`` (default 1,000) QoS 1 messages per
subscriber beyond those in flight, so an unpaced publisher faster than the service
makes a stock broker drop readings: hence the sized private broker of the unpaced runs
and the in-flight window of the paced one; the end check shows any loss.
The throwaway database is created and dropped by the script.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DATABASE_URL = os.environ.get("ENERGY_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
MQTT_URL = os.environ.get("ENERGY_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
METERS = 1000
#: Readings in flight (published, not yet stored) per replica: below what the broker queues.
WINDOW_PER_REPLICA = 2000
ADMIN_PASSWORD = "bench-" + secrets.token_urlsafe(12)  # one per run: the first replica seeds it


def _mqtt_address(url: str = MQTT_URL) -> tuple[str, int]:
    from meter_service import MQTTAddress  # the service's own MQTT_URL parsing

    address = MQTTAddress(url)
    return address.host, address.port


#: The private broker of the unpaced runs, configured as the messaging README's "Broker
#: settings the delivery guarantee depends on" says (queue sized for the whole run).
SIZED_BROKER_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
max_queued_messages 200000
max_queued_bytes 0
max_inflight_messages 20
persistence false
sys_interval 1
"""


@contextlib.contextmanager
def sized_broker() -> Any:
    """Run a private Mosquitto with :data:`SIZED_BROKER_CONF` on a free loopback port; yield its URL."""
    import tempfile

    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(SIZED_BROKER_CONF.format(port=port))
        broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
                time.sleep(0.05)
            yield f"mqtt://127.0.0.1:{port}"
        finally:
            broker.terminate()
            broker.wait(timeout=10)


def _payload(ts: int, i: int) -> str:
    return f'{{"ts":{ts},"power_w":{200 + i % 3000}.5,"voltage_v":230.1,"energy_kwh":{i / 1000:.3f}}}'


# --------------------------------------------------------------------------- child processes


def run_publisher(url: str, root: str, count: int, paced: bool) -> None:
    """Child process: publish ``count`` readings of 1,000 meters (QoS 1), print stats.

    Unpaced (like a fleet): MQTT 5, at most 100 QoS 1 messages in flight, as fast as the
    broker acknowledges them; nothing the service does slows it down. Paced: MQTT 3.1.1,
    1,000 in flight, and the parent writes allowances (publish up to this many in total)
    on stdin, keeping the readings in flight below what a stock broker queues for the
    subscribers.
    """
    import threading

    import paho.mqtt.client as paho

    host, port = _mqtt_address(url)
    acked = 0
    allowance = count if not paced else 0

    def on_publish(*_args: Any) -> None:
        nonlocal acked
        acked += 1

    def read_allowances() -> None:
        nonlocal allowance
        for line in sys.stdin:
            allowance = int(line)

    if paced:
        threading.Thread(target=read_allowances, daemon=True).start()
    protocol = paho.MQTTv311 if paced else paho.MQTTv5
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:8]}", protocol=protocol
    )
    client.max_inflight_messages_set(1000 if paced else 100)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect(host, port)
    client.loop_start()
    topics = [f"{root}/bm{meter:04d}/telemetry" for meter in range(METERS)]
    base = int(time.time() * 1000) - count  # distinct ts per meter: base + round
    started = time.perf_counter()
    i = 0
    while i < count:
        if i >= allowance:
            time.sleep(0.001)
            continue
        client.publish(topics[i % METERS], _payload(base + i // METERS, i), qos=1)
        i += 1
    deadline = time.monotonic() + 120
    while acked < count and time.monotonic() < deadline:
        time.sleep(0.005)
    sent = time.perf_counter() - started
    client.loop_stop()
    client.disconnect()
    print(json.dumps({"published": count, "acked": acked, "seconds": sent}), flush=True)


def run_http_client(url: str, token: str, seconds: float, concurrency: int) -> None:
    """Child process: GET ``url`` from ``concurrency`` tasks for ``seconds``, print the count."""
    import httpx

    async def main() -> dict[str, float]:
        done = errors = 0
        latencies: list[float] = []
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
            stop = time.perf_counter() + seconds

            async def worker() -> None:
                nonlocal done, errors
                while time.perf_counter() < stop:
                    started = time.perf_counter()
                    response = await client.get(url)
                    latencies.append(time.perf_counter() - started)
                    if response.status_code == 200:
                        done += 1
                    else:
                        errors += 1

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
        latencies.sort()
        return {
            "requests": done,
            "errors": errors,
            "seconds": elapsed,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
        }

    print(json.dumps(asyncio.run(main())), flush=True)


def run_replica(settings_json: str, profile: str | None = None) -> None:
    """Child process: one service replica (ingestion only) until SIGTERM; print its counters.

    With ``profile`` the replica runs under pyinstrument (a bench-only tool) and writes
    its text report to ``<profile>.txt``.
    """
    import signal

    from energy_common.logging import setup_logging
    from energy_messaging.devices import Device
    from meter_service import MeterRuntime, MeterSettings

    setup_logging("meter-bench", log_level="WARNING")
    settings = MeterSettings(**json.loads(settings_json))

    async def main() -> dict[str, float]:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        runtime = MeterRuntime(settings)
        # Only registered meters' telemetry is stored: register before the replica connects.
        for meter in range(METERS):
            await runtime.devices.registry.add(Device(f"bm{meter:04d}", "meter"))
        async with runtime:
            print("ready", flush=True)
            cpu = time.process_time()
            await stop.wait()
            cpu = time.process_time() - cpu
            stats = runtime.ingestor.stats
        return {
            "stored": stats.stored,
            "duplicates": stats.duplicates,
            "batches": stats.batches,
            "cpu": cpu,
            "store_seconds": stats.store_seconds,
            "publish_seconds": stats.publish_seconds,
        }

    if profile is None:
        print(json.dumps(asyncio.run(main())), flush=True)
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005, async_mode="disabled")
    with profiler:
        result = asyncio.run(main())
    Path(f"{profile}.txt").write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    print(json.dumps(result), flush=True)


# --------------------------------------------------------------------------- floors


def mosquitto_floor(count: int) -> tuple[float, int]:
    """Messages/s from ``mosquitto_pub -l`` to ``mosquitto_sub`` through the shared broker (QoS 0).

    Returns the rate over the messages that arrived and how many did: under load the
    broker drops QoS 0 messages a slow subscriber cannot take (the run ends after 1 s of
    silence instead of waiting for them).
    """
    import threading

    host, port = _mqtt_address()
    topic = f"bench/{uuid.uuid4().hex[:8]}/floor"
    common = ["-V", "5", "-h", host, "-p", str(port), "-t", topic, "-q", "0"]
    sub = subprocess.Popen(["mosquitto_sub", *common, "-C", str(count)], stdout=subprocess.PIPE)
    received, last = 0, 0.0

    def count_lines() -> None:
        nonlocal received, last
        assert sub.stdout is not None
        for _ in sub.stdout:
            received += 1
            last = time.perf_counter()

    reader = threading.Thread(target=count_lines, daemon=True)
    reader.start()
    time.sleep(0.5)  # subscribed
    lines = ("".join(_payload(1_800_000_000_000 + i, i) + "\n" for i in range(count))).encode()
    started = time.perf_counter()
    subprocess.run(["mosquitto_pub", *common, "-l"], input=lines, check=True, timeout=120)
    while received < count and time.perf_counter() - max(last, started) < 1.0:
        time.sleep(0.05)
    sub.kill()
    sub.wait(timeout=10)
    return received / max(last - started, 1e-9), received


async def copy_floor(dsn: str, count: int) -> float:
    """Rows/s of asyncpg ``copy_records_to_table`` into a readings-shaped table."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE TABLE floor_readings (id BIGSERIAL PRIMARY KEY, device_id VARCHAR(64), ts BIGINT, "
            "power_w DOUBLE PRECISION, voltage_v DOUBLE PRECISION, energy_kwh DOUBLE PRECISION, UNIQUE (device_id, ts))"
        )
        rows = [(f"bm{i % METERS:04d}", 1_800_000_000_000 + i // METERS, 1200.5, 230.1, i / 1000) for i in range(count)]
        started = time.perf_counter()
        for offset in range(0, count, 1000):  # batches like the service's
            await conn.copy_records_to_table(
                "floor_readings",
                records=rows[offset : offset + 1000],
                columns=["device_id", "ts", "power_w", "voltage_v", "energy_kwh"],
            )
        return count / (time.perf_counter() - started)
    finally:
        await conn.execute("DROP TABLE IF EXISTS floor_readings")
        await conn.close()


# --------------------------------------------------------------------------- the service


async def admin(sql: str) -> None:
    """Run one statement on the server's maintenance database."""
    import asyncpg

    conn = await asyncpg.connect(DATABASE_URL.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _settings(dsn: str, root: str, group: str, mqtt_url: str = MQTT_URL, **extra: Any) -> dict[str, Any]:
    return {
        "database_url": dsn.replace("postgresql://", "postgresql+asyncpg://", 1),
        "redis_url": None,
        "mqtt_url": mqtt_url,
        "mqtt_topic_root": root,
        "mqtt_share_group": group,
        "tracing_exporter": "off",
        "admin_password": ADMIN_PASSWORD,
        "jwt_secret_key": secrets.token_urlsafe(32),
        "request_log_enabled": False,
        **extra,
    }


async def ingest_run(
    dsn: str,
    count: int,
    replicas: int,
    *,
    events: bool,
    mqtt_url: str,
    paced: bool,
    profile: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Feed ``replicas`` service processes (one shared subscription) from a publisher process."""

    root = f"bench/{uuid.uuid4().hex[:8]}/devices"
    config = json.dumps(
        _settings(
            dsn,
            root,
            f"bench{uuid.uuid4().hex[:6]}",
            mqtt_url,
            events_enabled=events,
            **(extra or {}),
        )
    )
    children: list[asyncio.subprocess.Process] = []
    try:
        feed = _Feed(mqtt_url, paced, profile)
        result = await _feed(dsn, config, root, count, replicas, feed=feed, children=children)
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
    result["events"] = events
    result["paced"] = paced
    result["extra"] = extra or {}
    return result


class _Feed:
    """How a run is fed: broker URL, paced or not, pyinstrument output prefix of the replicas."""

    def __init__(self, mqtt_url: str, paced: bool, profile: str | None) -> None:
        self.mqtt_url = mqtt_url
        self.paced = paced
        self.profile = profile


async def _feed(
    dsn: str,
    config: str,
    root: str,
    count: int,
    replicas: int,
    *,
    feed: _Feed,
    children: list[asyncio.subprocess.Process],
) -> dict[str, Any]:
    import asyncpg

    for index in range(replicas):  # one after the other: the first one creates the tables
        profile = [] if feed.profile is None else [f"{feed.profile}-{index}"]
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--replica", config, *profile, stdout=asyncio.subprocess.PIPE
        )
        children.append(child)
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 60)
        assert line.strip() == b"ready", line
    conn = await asyncpg.connect(dsn)
    await conn.execute("TRUNCATE readings")
    publisher = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--publisher",
        feed.mqtt_url,
        root,
        str(count),
        "paced" if feed.paced else "unpaced",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert publisher.stdin is not None
    window = WINDOW_PER_REPLICA * replicas
    samples: list[tuple[float, int]] = []
    started = time.perf_counter()
    last_progress = time.monotonic()
    stored = 0
    while stored < count and time.monotonic() - last_progress < 10:
        if feed.paced and publisher.returncode is None:
            with contextlib.suppress(ConnectionError):  # it exits once everything is published
                publisher.stdin.write(f"{stored + window}\n".encode())
                await publisher.stdin.drain()
        await asyncio.sleep(0.1)
        stored = int(await conn.fetchval("SELECT count(*) FROM readings"))
        if not samples or stored != samples[-1][1]:
            last_progress = time.monotonic()
        samples.append((time.perf_counter(), stored))
    with contextlib.suppress(ConnectionError):
        publisher.stdin.close()
    out, _ = await publisher.communicate()
    published = json.loads(out.decode().strip().splitlines()[-1])
    counters = []
    for child in children:
        child.terminate()
        out, _ = await asyncio.wait_for(child.communicate(), 60)
        counters.append(json.loads(out.decode().strip().splitlines()[-1]))
    total = int(await conn.fetchval("SELECT count(*) FROM readings"))
    distinct = int(await conn.fetchval("SELECT count(*) FROM (SELECT DISTINCT device_id, ts FROM readings) AS pairs"))
    await conn.close()
    done = [(t, n) for t, n in samples if n >= count * 0.1]
    top = [(t, n) for t, n in samples if n >= min(count * 0.9, samples[-1][1])]
    steady = 0.0
    if done and top and top[0][0] > done[0][0]:
        steady = (top[0][1] - done[0][1]) / (top[0][0] - done[0][0])
    active = (top[0][0] if top else time.perf_counter()) - started
    cpu = sum(c["cpu"] for c in counters)
    return {
        "replicas": replicas,
        "published": published,
        "stored_total": total,
        "distinct": distinct,
        "steady_per_s": steady,
        "cpu_us_per_reading": 1e6 * cpu / max(total, 1),
        "db_share": max(c["store_seconds"] for c in counters) / max(active, 1e-9),
        "events_share": max(c["publish_seconds"] for c in counters) / max(active, 1e-9),
        "mean_batch": sum(c["stored"] for c in counters) / max(sum(c["batches"] for c in counters), 1),
        "split": [c["stored"] for c in counters],
    }


async def api_run(dsn: str, seconds: float) -> dict[str, Any]:
    """Serve the app on uvicorn in this process and load the readings endpoint from another process."""
    import httpx
    import uvicorn
    from energy_common.logging import setup_logging
    from meter_service import MeterSettings, create_app

    setup_logging("meter-bench", log_level="WARNING")
    port = _free_port()
    values = _settings(dsn, f"bench/{uuid.uuid4().hex[:8]}/devices", f"api{uuid.uuid4().hex[:6]}", port=port)
    app = create_app(MeterSettings(**values))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
        await asyncio.sleep(0.05)
    await app.state.meter.devices.register_device("bm0001", "meter")  # readings of unknown meters are 404
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            answer = await client.post(
                "/api/v1/auth/token", json={"username": "admin", "password": values["admin_password"]}
            )
            token = answer.json()["data"]["access_token"]
        url = f"http://127.0.0.1:{port}/api/v1/devices/bm0001/readings?limit=50"
        cpu = time.process_time()
        loader = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--http-client", url, token, str(seconds), "16", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await loader.communicate()
        cpu = time.process_time() - cpu
    finally:
        server.should_exit = True
        await serving
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["cpu_us_per_request"] = 1e6 * cpu / max(result["requests"], 1)
    return result


async def _seed_readings(dsn: str, count: int) -> None:
    """Write ``count`` readings of the 1,000 meters (what an ingestion run leaves behind)."""
    import asyncpg
    from meter_service import MeterRuntime, MeterSettings

    # The service creates its tables when it starts.
    async with MeterRuntime(MeterSettings(**_settings(dsn, f"bench/{uuid.uuid4().hex[:8]}/devices", "seed"))):
        pass
    conn = await asyncpg.connect(dsn)
    try:
        base = int(time.time() * 1000) - count
        rows = [
            (f"bm{i % METERS:04d}", base + i // METERS, 200 + i % 3000 + 0.5, 230.1, i / 1000) for i in range(count)
        ]
        await conn.copy_records_to_table(
            "readings", records=rows, columns=["device_id", "ts", "power_w", "voltage_v", "energy_kwh"]
        )
        await conn.execute("ANALYZE readings")
    finally:
        await conn.close()


def _print_api(api: dict[str, Any]) -> None:
    print(
        f"API: GET readings (limit=50), 16 concurrent: {api['requests'] / api['seconds']:,.0f} req/s, "
        f"p50 {api['p50_ms']:.1f} ms, p99 {api['p99_ms']:.1f} ms, errors {api['errors']}, "
        f"service CPU {api['cpu_us_per_request']:.0f} us/request"
    )


async def bench_api(seconds: float, rounds: int) -> None:
    """Only the API load, ``rounds`` times on one seeded database; print each round and the median."""
    name = f"meter_bench_{uuid.uuid4().hex[:10]}"
    await admin(f'CREATE DATABASE "{name}"')
    parts = urlsplit(DATABASE_URL.replace("postgresql+asyncpg://", "postgresql://"))
    dsn = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    results = []
    try:
        await _seed_readings(dsn, 60_000)
        for _ in range(rounds):
            results.append(await api_run(dsn, seconds))
            _print_api(results[-1])
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    rate = statistics.median(r["requests"] / r["seconds"] for r in results)
    cpu = statistics.median(r["cpu_us_per_request"] for r in results)
    print(f"API median of {rounds}: {rate:,.0f} req/s, service CPU {cpu:.0f} us/request")


async def bench(args: argparse.Namespace) -> None:
    """Run the floors, the ingestion configurations and the API load, then print the report."""
    count = args.count or (20_000 if args.quick else 60_000)
    floor_count = 50_000
    rounds = 1 if args.quick else 3
    name = f"meter_bench_{uuid.uuid4().hex[:10]}"
    await admin(f'CREATE DATABASE "{name}"')
    parts = urlsplit(DATABASE_URL.replace("postgresql+asyncpg://", "postgresql://"))
    dsn = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    runs = []
    try:
        mosquitto0 = [mosquitto_floor(floor_count) for _ in range(rounds)]
        copy = [await copy_floor(dsn, floor_count) for _ in range(rounds)]
        # (replicas, events, paced, settings): unpaced on the sized private broker, paced on the shared one.
        configurations: list[tuple[int, bool, bool, dict[str, Any]]] = [(1, True, False, {}), (1, True, True, {})]
        if not args.quick:
            configurations += [
                (2, True, False, {}),
                (1, False, False, {}),
                (1, True, False, {"events_per": "reading"}),
                (1, True, False, {"gc_tuning": False}),
            ]
        if args.only_unpaced:
            configurations = configurations[:1]
        with sized_broker() as sized_url:
            for _ in range(args.rounds):  # interleaved rounds
                for index, (replicas, events, paced, extra) in enumerate(configurations):
                    url = MQTT_URL if paced else sized_url
                    profile = args.profile if index == 0 else None
                    run = await ingest_run(
                        dsn, count, replicas, events=events, mqtt_url=url, paced=paced, profile=profile, extra=extra
                    )
                    runs.append(run)
        api = await api_run(dsn, 3.0 if args.quick else 6.0) if not args.only_unpaced else None
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    floor0, copy_rate = statistics.median(rate for rate, _ in mosquitto0), statistics.median(copy)
    arrived = min(n for _, n in mosquitto0)
    print(
        f"floor: Mosquitto        {floor0:,.0f} msgs/s (mosquitto_pub -l -> mosquitto_sub, QoS 0; "
        f"at least {arrived:,} of {floor_count:,} arrived)"
    )
    print(f"floor: PostgreSQL COPY  {copy_rate:,.0f} rows/s (asyncpg copy_records_to_table, batches of 1,000)")
    print(f"ingestion: {count:,} readings of {METERS:,} meters, QoS 1, MQTT -> service -> PostgreSQL (COPY)")
    best = 0.0
    for run in runs:
        lost = run["published"]["published"] - run["stored_total"]
        doubled = run["stored_total"] - run["distinct"]
        label = (
            f"{run['replicas']} replica{'s' if run['replicas'] > 1 else ''}, events {'on' if run['events'] else 'off'}, "
            f"{'paced (stock broker)' if run['paced'] else 'unpaced (sized broker)'}"
            + "".join(f", {key}={value}" for key, value in run["extra"].items())
        )
        print(
            f"  {label:<72} stored {run['steady_per_s']:>7,.0f}/s steady  "
            f"lost {lost:,}  twice {doubled:,}  split {run['split']}  "
            f"CPU {run['cpu_us_per_reading']:.0f} us/reading  DB {run['db_share']:.0%} "
            f"events {run['events_share']:.0%} of wall  mean batch {run['mean_batch']:.0f}  "
            f"vs broker floor {run['steady_per_s'] / floor0:.2f}x, vs COPY {run['steady_per_s'] / copy_rate:.3f}x"
        )
        if lost == 0 and doubled == 0:
            best = max(best, run["steady_per_s"])
    if api is not None:
        _print_api(api)
    verdict = "met" if best >= 25_000 else "MISSED"
    print(f"target >= 25,000 readings/s sustained with none lost or stored twice: {verdict} (best {best:,.0f}/s)")
    print(f"load average at the end: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")


def main(argv: list[str]) -> int:
    """Entry point (also of the publisher and HTTP client child processes)."""
    if argv[:1] == ["--publisher"]:
        run_publisher(argv[1], argv[2], int(argv[3]), argv[4] == "paced")
        return 0
    if argv[:1] == ["--replica"]:
        run_replica(argv[1], argv[2] if len(argv) > 2 else None)
        return 0
    if argv[:1] == ["--http-client"]:
        run_http_client(argv[1], argv[2], float(argv[3]), int(argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer readings (CI smoke run)")
    parser.add_argument("--api", action="store_true", help="only the readings API load (3 rounds; --quick: 1)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of the ingestion runs")
    parser.add_argument("--count", type=int, default=0, help="readings per ingestion run (default 60,000)")
    parser.add_argument("--only-unpaced", action="store_true", help="only one unpaced run: 1 replica, events on")
    parser.add_argument("--profile", metavar="PREFIX", help="pyinstrument the unpaced 1-replica run: PREFIX-0.txt")
    args = parser.parse_args(argv)
    if args.api:
        asyncio.run(bench_api(3.0 if args.quick else 6.0, 1 if args.quick else 3))
        return 0
    if shutil.which("mosquitto_pub") is None:
        print("mosquitto_pub/mosquitto_sub are needed for the broker floor", file=sys.stderr)
        return 1
    asyncio.run(bench(args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
