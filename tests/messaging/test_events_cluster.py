"""The Redis Streams event bus on a Redis Cluster started here: one slot per namespace, a failover loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("redis")

from energy_messaging.events import Event, EventBusConfigurationError, EventBusError
from energy_messaging.events.redis_streams import RedisStreamsEventBus
from redis.asyncio.cluster import RedisCluster

FAST = {"min_idle": 0.5, "block": 0.1}


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _node_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is free too."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 55_000)
        if _bindable(port) and _bindable(port + 10_000):
            return port
    raise RuntimeError("no free port pair for a private Redis Cluster node")


def _cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args], check=True, capture_output=True, text=True, timeout=10
    ).stdout


def _until(condition: Any, what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(subprocess.CalledProcessError):
            if condition():
                return
        time.sleep(0.05)
    raise RuntimeError(f"private Redis Cluster: {what} not reached within {within} s")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """A private cluster: a master with all 16384 slots and its replica, on loopback; yields their ports."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("ENERGY_REQUIRE_SERVICES", "").lower() in {"1", "true", "yes"}:
            pytest.fail("redis-server is not installed (ENERGY_REQUIRE_SERVICES=1)")
        pytest.skip("redis-server is not installed")
    processes = []
    ports = []
    try:
        for name in ("a", "b"):
            port = _node_port()
            data: Path = tmp_path_factory.mktemp(f"cluster-{name}")
            argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", str(data / "nodes.conf")]
            argv += ["--cluster-node-timeout", "2000"]
            processes.append(subprocess.Popen(argv, cwd=data, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            ports.append(port)
        a, b = ports
        for port in ports:
            _until(lambda port=port: _cli(port, "PING").strip() == "PONG", "node up")
        _cli(a, "CLUSTER", "ADDSLOTSRANGE", "0", "16383")
        _cli(b, "CLUSTER", "MEET", "127.0.0.1", str(a))
        master_id = _cli(a, "CLUSTER", "MYID").strip()
        _until(lambda: master_id in _cli(b, "CLUSTER", "NODES"), "replica knows the master")
        _until(lambda: "OK" in _cli(b, "CLUSTER", "REPLICATE", master_id), "replicate accepted")
        _until(lambda: "master_link_status:up" in _cli(b, "INFO", "replication"), "replication link")
        _until(lambda: "cluster_state:ok" in _cli(a, "CLUSTER", "INFO"), "cluster state ok")
        _until(lambda: "cluster_state:ok" in _cli(b, "CLUSTER", "INFO"), "cluster state ok on the replica")
        yield a, b
    finally:
        for process in processes:
            process.kill()
            process.wait(10)


@pytest.fixture
async def cluster_client(cluster: tuple[int, int]) -> AsyncIterator[RedisCluster]:
    """A RedisCluster client of the private cluster."""
    client = RedisCluster(host="127.0.0.1", port=cluster[0])
    await client.initialize()
    yield client
    await client.aclose()


async def test_namespace_without_hash_tag_is_refused(cluster_client: RedisCluster) -> None:
    """On a cluster a namespace without a hash tag is a configuration error naming the fix."""
    with pytest.raises(EventBusConfigurationError, match="hash tag"):
        RedisStreamsEventBus(cluster_client, namespace="energy:events")


async def test_bus_runs_on_a_cluster_with_its_keys_in_one_slot(cluster_client: RedisCluster) -> None:
    """Events of two types flow through one group; their streams and the dead-letter stream share a slot."""
    namespace = f"{{t{uuid.uuid4().hex[:8]}}}:events"
    seen: list[str] = []

    async def handler(event: Event) -> None:
        seen.append(event.type)

    async def poison(event: Event) -> None:
        raise RuntimeError("no")

    async with RedisStreamsEventBus(cluster_client, namespace=namespace, max_deliveries=1, **FAST) as bus:
        bus.subscribe("meter.a", handler)
        bus.subscribe("meter.b", handler)
        bus.subscribe("meter.bad", poison)
        for _ in range(5):
            await bus.publish("meter.a", {})
            await bus.publish("meter.b", {})
        await bus.publish("meter.bad", {})
        for _ in range(500):
            if len(seen) == 10 and await bus.read_dead_letters():
                break
            await asyncio.sleep(0.02)
        keys = [bus.stream_for("meter.a"), bus.stream_for("meter.b"), bus.dead_letter_stream]
        slots = {cluster_client.keyslot(key) for key in keys}
        letters = await bus.read_dead_letters()
        for key in keys:
            await cluster_client.delete(key)
        await cluster_client.delete(bus.stream_for("meter.bad"))
    assert sorted(seen) == ["meter.a"] * 5 + ["meter.b"] * 5
    assert len(letters) == 1
    assert len(slots) == 1


@pytest.mark.slow
async def test_failover_loses_no_acknowledged_event(cluster: tuple[int, int], cluster_client: RedisCluster) -> None:
    """Every event whose publish returned is handled, across a manual failover of the master to its replica."""
    _, b = cluster
    namespace = f"{{f{uuid.uuid4().hex[:8]}}}:events"
    handled: set[int] = set()
    acknowledged: list[int] = []

    async def handler(event: Event) -> None:
        handled.add(event.data["n"])

    async def publish_all(bus: RedisStreamsEventBus, numbers: range) -> None:
        for n in numbers:
            for _ in range(200):  # a publish cut by the failover is retried (at least once)
                try:
                    await bus.publish("meter.f", {"n": n})
                    acknowledged.append(n)
                    break
                except EventBusError:
                    await asyncio.sleep(0.05)

    async with RedisStreamsEventBus(cluster_client, namespace=namespace, **FAST) as bus:
        bus.subscribe("meter.f", handler)
        await publish_all(bus, range(100))
        publishing = asyncio.create_task(publish_all(bus, range(100, 300)), name="publisher")
        await asyncio.sleep(0.05)
        await asyncio.to_thread(_cli, b, "CLUSTER", "FAILOVER")
        await asyncio.to_thread(_until, lambda: "role:master" in _cli(b, "INFO", "replication"), "failover")
        await asyncio.wait_for(publishing, 60)
        deadline = time.monotonic() + 30
        while not set(acknowledged) <= handled and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a set
            await asyncio.sleep(0.05)
        await cluster_client.delete(bus.stream_for("meter.f"))
    assert len(acknowledged) == 300
    assert set(acknowledged) - handled == set()
