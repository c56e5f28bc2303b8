"""Shared test fixtures: the real engines (PostgreSQL, Redis, MQTT) and private servers.

Every test talks to real services on loopback. Their addresses come from
``ENERGY_TEST_DATABASE_URL``, ``ENERGY_TEST_REDIS_URL`` and ``ENERGY_TEST_MQTT_URL``
(loopback defaults). A service that cannot be reached skips the test with the reason,
unless ``ENERGY_REQUIRE_SERVICES=1`` (set by CI), where it fails instead.

Isolation between concurrent runs: each test session gets its own PostgreSQL database
(dropped afterwards), each Redis test its own key prefix (its keys deleted afterwards)
and each MQTT test its own topic prefix.

This module runs in every per-distribution environment, so it imports only pytest and
the standard library at the top; driver imports happen inside the fixtures that need
them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"


def services_required() -> bool:
    """Tell whether an unreachable service must fail the run (CI) rather than skip."""
    return os.environ.get("ENERGY_REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> None:
    """Skip (laptop) or fail (CI) the current test because a service is missing."""
    if services_required():
        pytest.fail(f"{reason} (ENERGY_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def tcp_reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    """Tell whether a TCP connection to host:port succeeds within ``timeout``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Block until host:port accepts connections, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tcp_reachable(host, port, timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


# --------------------------------------------------------------------------- PostgreSQL


@dataclass(frozen=True)
class PostgresDatabase:
    """A throw-away PostgreSQL database created for this test session.

    Attributes:
        dsn: libpq form, ``postgresql://user@host:port/dbname`` (asyncpg, psql).
        url: SQLAlchemy form, ``postgresql+asyncpg://user@host:port/dbname``.
        name: The database name.
    """

    dsn: str
    url: str
    name: str


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[PostgresDatabase]:
    """A fresh PostgreSQL database for the session, dropped at the end."""
    base = os.environ.get("ENERGY_TEST_DATABASE_URL", DEFAULT_DATABASE_URL)
    base = base.replace("postgresql+asyncpg://", "postgresql://")
    host, port = _host_port(base, 5432)
    if not tcp_reachable(host, port):
        unavailable(f"PostgreSQL is not reachable at {host}:{port} (ENERGY_TEST_DATABASE_URL)")
    try:
        import asyncpg
    except ImportError:
        pytest.skip("asyncpg is not installed in this environment (energy-common[postgres])")

    name = f"energy_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(base, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    # CREATE DATABASE fails with "source database is being accessed by other users" while
    # another session sits in the template, which concurrent test runs and benchmarks can
    # cause: copy template0 (nobody may connect to it) and retry a few times anyway.
    last_error: Exception | None = None
    for attempt in range(5):
        try:
            asyncio.run(admin(f'CREATE DATABASE "{name}" TEMPLATE template0'))
            break
        except (OSError, asyncpg.PostgresError) as exc:
            last_error = exc
            time.sleep(0.2 * (attempt + 1))
    else:
        unavailable(f"cannot create a test database on {host}:{port}: {last_error}")
    parts = urlsplit(base)
    dsn = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))
    try:
        yield PostgresDatabase(dsn=dsn, url=dsn.replace("postgresql://", "postgresql+asyncpg://", 1), name=name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_url(postgres_database: PostgresDatabase) -> str:
    """SQLAlchemy URL (``postgresql+asyncpg://``) of the session's test database."""
    return postgres_database.url


# --------------------------------------------------------------------------- polling, metrics

#: ``await wait_until(condition, within=10.0)``
WaitUntil = Callable[..., Awaitable[None]]


async def wait_for(condition: Callable[[], object], within: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(0.01)


@pytest.fixture
def wait_until() -> WaitUntil:
    """Poll a condition until it holds (``await wait_until(condition, within=10.0)``), failing after ``within`` s."""
    return wait_for


def metric_value(registry: Any, name: str, **labels: str) -> float | None:
    """The value of one sample of an energy-monitoring ``MetricsRegistry`` (None when the series does not exist)."""
    value: float | None = registry.collector_registry.get_sample_value(name, labels)
    return value


# --------------------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the shared Redis server (tests must namespace keys with ``redis_key_prefix``)."""
    url = os.environ.get("ENERGY_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    host, port = _host_port(url, 6379)
    if not tcp_reachable(host, port):
        unavailable(f"Redis is not reachable at {host}:{port} (ENERGY_TEST_REDIS_URL)")
    return url


@pytest.fixture
def redis_key_prefix() -> str:
    """A key prefix unique to this test, e.g. ``test:3f2a9c1b:``."""
    return f"test:{uuid.uuid4().hex[:8]}:"


@pytest.fixture
async def redis_client(redis_url: str, redis_key_prefix: str) -> AsyncIterator[Any]:
    """A ``redis.asyncio.Redis`` client; keys under ``redis_key_prefix`` are deleted afterwards."""
    try:
        import redis.asyncio as redis_asyncio
    except ImportError:
        pytest.skip("redis is not installed in this environment")
    client = redis_asyncio.from_url(redis_url)
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means the server is not usable
        await client.aclose()
        unavailable(f"Redis at {redis_url} does not answer PING: {exc}")
    try:
        yield client
    finally:
        keys = [key async for key in client.scan_iter(match=f"{redis_key_prefix}*", count=1000)]
        # Hash-tagged keys ({prefix...}) are matched too when the prefix sits inside the tag.
        keys += [key async for key in client.scan_iter(match=f"*{redis_key_prefix}*", count=1000)]
        if keys:
            await client.delete(*set(keys))
        await client.aclose()


# --------------------------------------------------------------------------- Redis Cluster


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_port() -> int:
    """A free port whose cluster-bus port (port + 10000) is free and valid too.

    An ephemeral port from the kernel is often above 55535, where the bus port would not
    exist and redis-server refuses to start in cluster mode.
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 55_000)
        if _bindable(port) and _bindable(port + 10_000):
            return port
    raise RuntimeError("no free port pair for a private Redis Cluster node")


@pytest.fixture(scope="module")
def cluster_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A private one-node Redis Cluster (all 16384 slots) on a free loopback port (shared by a module's tests)."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not installed")
    port = _cluster_port()
    data = tmp_path_factory.mktemp("cluster")
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    argv += ["--cluster-enabled", "yes", "--cluster-config-file", str(data / "nodes.conf")]
    process = subprocess.Popen(argv, cwd=data, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.05)
        subprocess.run(
            ["redis-cli", "-p", str(port), "CLUSTER", "ADDSLOTSRANGE", "0", "16383"],
            check=True,
            capture_output=True,
            timeout=10,
        )
        for _ in range(100):
            info = subprocess.run(
                ["redis-cli", "-p", str(port), "CLUSTER", "INFO"],
                check=False,
                capture_output=True,
                text=True,
                timeout=10,
            )
            if "cluster_state:ok" in info.stdout:
                break
            time.sleep(0.05)
        yield port
    finally:
        process.kill()
        process.wait(10)


# --------------------------------------------------------------------------- MQTT


@dataclass(frozen=True)
class MQTTBroker:
    """Address of an MQTT broker on loopback."""

    host: str
    port: int

    @property
    def url(self) -> str:
        """The ``mqtt://host:port`` form."""
        return f"mqtt://{self.host}:{self.port}"


@pytest.fixture(scope="session")
def mqtt_broker() -> MQTTBroker:
    """The shared MQTT broker (Mosquitto); namespace topics with ``mqtt_topic_prefix``."""
    url = os.environ.get("ENERGY_TEST_MQTT_URL", DEFAULT_MQTT_URL)
    host, port = _host_port(url, 1883)
    if not tcp_reachable(host, port):
        unavailable(f"MQTT broker is not reachable at {host}:{port} (ENERGY_TEST_MQTT_URL)")
    return MQTTBroker(host, port)


@pytest.fixture
def mqtt_topic_prefix() -> str:
    """A topic prefix unique to this test, e.g. ``test/3f2a9c1b``."""
    return f"test/{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- private servers


@dataclass
class PrivateServer:
    """A server process of the test's own on a free loopback port (for fault tests).

    ``stop()`` ends it gracefully (SIGTERM), ``kill()`` with SIGKILL, ``start()`` starts
    it again on the same port with the same data directory.
    """

    name: str
    argv: list[str]
    port: int
    data_dir: Path
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, timeout: float = 10.0) -> None:
        """Start the process and wait until its port accepts connections."""
        if self.process is not None and self.process.poll() is None:
            return
        log = (self.data_dir / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir)
        log.close()
        try:
            wait_for_port(self.host, self.port, timeout)
        except TimeoutError:
            self.kill()
            output = (self.data_dir / f"{self.name}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} did not start on port {self.port}:\n{output}") from None

    def _signal(self, sig: int, timeout: float) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM) and wait for the process to exit."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Kill at once (SIGKILL), as a crash would."""
        self._signal(signal.SIGKILL, 10.0)


def _launch(servers: list[PrivateServer], server: PrivateServer) -> PrivateServer:
    """Start ``server`` and keep it in ``servers`` for its factory's teardown."""
    servers.append(server)
    server.start()
    return server


@pytest.fixture
def redis_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], PrivateServer]]:
    """Factory for private ``redis-server`` processes on free ports, killed after the test."""
    binary = shutil.which("redis-server")
    servers: list[PrivateServer] = []

    def make() -> PrivateServer:
        if binary is None:
            unavailable("redis-server is not installed")
        port = free_port()
        data = tmp_path_factory.mktemp("redis")
        argv = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        return _launch(servers, PrivateServer("redis", argv, port, data))

    yield make
    for server in servers:
        with contextlib.suppress(Exception):
            server.kill()


@pytest.fixture
def mosquitto_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., PrivateServer]]:
    """Factory for private Mosquitto brokers (persistence on) on free ports, killed after the test.

    Call it as ``mosquitto_factory()`` or with extra config lines:
    ``mosquitto_factory(["max_queued_messages 100000"])``.
    """
    binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    servers: list[PrivateServer] = []

    def make(extra_config: list[str] | None = None) -> PrivateServer:
        if binary is None:
            unavailable("mosquitto is not installed")
        port = free_port()
        data = tmp_path_factory.mktemp("mosquitto")
        config = [
            f"listener {port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {data}/",
            "autosave_interval 1",
            "max_queued_messages 0",
            "max_inflight_messages 0",
            # As root, Mosquitto drops to its own user, which cannot write the temporary
            # persistence directory: stay root so sessions survive a restart.
            *(["user root"] if os.geteuid() == 0 else []),
            *(extra_config or []),
        ]
        conf = data / "mosquitto.conf"
        conf.write_text("\n".join(config) + "\n")
        return _launch(servers, PrivateServer("mosquitto", [str(binary), "-c", str(conf)], port, data))

    yield make
    for server in servers:
        with contextlib.suppress(Exception):
            server.kill()


@pytest.fixture(scope="session")
def scratch_dir() -> Iterator[Path]:
    """A session-wide scratch directory outside the repository."""
    path = Path(tempfile.mkdtemp(prefix="energy-tests-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def chromium() -> Iterator[Any]:
    """A headless Debian chromium driven by selenium through Debian's chromium-driver.

    Both come from Debian's packages (``.ci/run`` installs them): selenium is pointed at
    them, so it never tries to download a browser or a driver.
    """
    browser = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        unavailable(
            "Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed in this environment (dependency group 'tools')")
    options = webdriver.ChromeOptions()
    options.binary_location = str(browser)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1300"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    session = webdriver.Chrome(service=Service(str(driver)), options=options)
    try:
        yield session
    finally:
        session.quit()


# --------------------------------------------------------------------------- Prometheus


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of ``promtool`` (Debian package ``prometheus``, installed by ``.ci/run``)."""
    path = shutil.which("promtool")
    if path is None:
        unavailable("promtool is not installed (Debian package prometheus; .ci/run installs it)")
    return str(path)


@pytest.fixture
def prometheus_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., PrivateServer]]:
    """Factory for private Prometheus servers on free loopback ports, stopped after the test.

    ``prometheus_factory(["127.0.0.1:8000"], job="meter-service", rule_files=[path])``
    scrapes the targets and evaluates the rules every ``interval`` (default 1 s), with its
    own configuration and data directory. Each server runs under ``timeout`` (at most
    ``lifetime`` seconds), so even an interrupted test run leaves no Prometheus behind.
    """
    binary = shutil.which("prometheus")
    wrapper = shutil.which("timeout")
    servers: list[PrivateServer] = []

    def make(
        targets: list[str],
        *,
        job: str = "prometheus-test",
        rule_files: list[Path] | None = None,
        interval: str = "1s",
        lifetime: int = 180,
    ) -> PrivateServer:
        if binary is None or wrapper is None:
            unavailable("prometheus is not installed (Debian package prometheus; .ci/run installs it)")
        port = free_port()
        data = tmp_path_factory.mktemp("prometheus")
        config = {  # JSON is YAML: no YAML writer needed
            "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
            "rule_files": [str(path) for path in rule_files or []],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}],
        }
        conf = data / "prometheus.yml"
        conf.write_text(json.dumps(config, indent=2))
        argv = [
            str(wrapper),
            "-k",
            "5",
            str(lifetime),
            str(binary),
            f"--config.file={conf}",
            f"--storage.tsdb.path={data / 'tsdb'}",
            "--storage.tsdb.retention.time=1h",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        return _launch(servers, PrivateServer("prometheus", argv, port, data))

    yield make
    for server in servers:
        # SIGTERM: `timeout` passes it on to Prometheus (a SIGKILL would orphan it).
        with contextlib.suppress(Exception):
            server.stop(timeout=15)
