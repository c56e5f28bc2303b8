"""Tests for energy_common.health: the checker, the built-in checks (real PostgreSQL and Redis) and redaction."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis_asyncio
from energy_common import health
from energy_common.database import Database
from energy_common.exceptions import ConfigurationError
from energy_common.health import (
    CallableHealthCheck,
    DatabaseHealthCheck,
    DiskSpaceHealthCheck,
    HealthCheck,
    HealthCheckDegraded,
    HealthChecker,
    HealthStatus,
    RedisHealthCheck,
    redact,
)
from energy_common.health.memory import MemoryHealthCheck
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def probe(name: str, result: Any = None, *, critical: bool = True, timeout: float | None = None) -> CallableHealthCheck:
    """A check returning ``result``, or raising it when it is an exception."""

    async def run() -> Mapping[str, Any] | None:
        if isinstance(result, BaseException):
            raise result
        return result  # type: ignore[no-any-return]

    return CallableHealthCheck(name, run, critical=critical, timeout=timeout)


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """An AsyncEngine on the session's PostgreSQL test database."""
    eng = create_async_engine(postgres_url, pool_size=2)
    yield eng
    await eng.dispose()


class DatabaseLike:
    """Any object exposing an ``.engine`` (the contract DatabaseHealthCheck relies on)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine


def test_public_api_is_pinned() -> None:
    """The public names of energy_common.health stay stable."""
    assert health.__all__ == [
        "CallableHealthCheck",
        "CheckResult",
        "DatabaseHealthCheck",
        "DiskSpaceHealthCheck",
        "HTTPHealthCheck",
        "HealthCheck",
        "HealthCheckDegraded",
        "HealthChecker",
        "HealthReport",
        "HealthStatus",
        "MemoryHealthCheck",
        "RedisHealthCheck",
        "health_router",
        "redact",
        "redact_url",
    ]
    assert health.MemoryHealthCheck is MemoryHealthCheck


def test_core_import_needs_no_extra() -> None:
    """Importing energy_common.health loads neither SQLAlchemy, Redis, httpx, psutil nor FastAPI."""
    code = (
        "import sys, energy_common.health\n"
        "heavy = {'sqlalchemy', 'redis', 'httpx', 'psutil', 'fastapi'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


@pytest.mark.postgres
@pytest.mark.redis
async def test_seed_example_against_real_postgres_and_redis(postgres_url: str, redis_client: Any) -> None:
    """The seed example runs with energy_common.database.Database: both checks pass on the real servers."""
    async with Database(postgres_url) as db_connection:
        health_checker = HealthChecker("my-service")
        health_checker.add_check(DatabaseHealthCheck(db_connection))
        health_checker.add_check(RedisHealthCheck(redis_client))
        result = await health_checker.run_all_checks()
    assert result.status is HealthStatus.HEALTHY
    body = result.to_dict()
    assert body["service"] == "my-service"
    assert body["status"] == "healthy"
    assert body["checks"]["database"]["details"] == {"dialect": "postgresql"}
    assert body["checks"]["redis"]["status"] == "healthy"
    assert "timestamp" in body


@pytest.mark.postgres
async def test_database_check_accepts_engine_or_any_holder(engine: AsyncEngine) -> None:
    """A bare AsyncEngine works as well as any object whose .engine is one."""
    assert await DatabaseHealthCheck(engine).check() == {"dialect": "postgresql"}
    assert await DatabaseHealthCheck(DatabaseLike(engine)).check() == {"dialect": "postgresql"}


async def test_database_check_on_sqlite(tmp_path: Path) -> None:
    """The embedded default (SQLite through aiosqlite) passes the same check."""
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'health.db'}") as db:
        assert await DatabaseHealthCheck(db).check() == {"dialect": "sqlite"}


async def test_unreachable_dependencies_fail_without_leaking_secrets() -> None:
    """A database and a Redis that cannot be reached are unhealthy; their passwords never show."""
    port = closed_port()
    eng = create_async_engine(f"postgresql+asyncpg://app:supersecret@127.0.0.1:{port}/energy")
    client = redis_asyncio.from_url(f"redis://:topsecret@127.0.0.1:{port}/0", socket_connect_timeout=1)
    checker = HealthChecker("svc", default_timeout=3)
    checker.add_check(DatabaseHealthCheck(eng))
    checker.add_check(RedisHealthCheck(client, critical=False))
    try:
        report = await checker.run_all_checks()
    finally:
        await client.aclose()
        await eng.dispose()
    assert report.status is HealthStatus.UNHEALTHY
    text = str(report.to_dict())
    assert "supersecret" not in text
    assert "topsecret" not in text
    assert all(result.status is HealthStatus.UNHEALTHY and result.error for result in report.checks)


@pytest.mark.parametrize("bad", [object(), None, "postgresql://x"])
def test_database_check_refuses_non_engines(bad: object) -> None:
    """Anything that is not an AsyncEngine (nor holds one) is a configuration error."""
    with pytest.raises(ConfigurationError, match="AsyncEngine"):
        DatabaseHealthCheck(bad)


def test_redis_check_refuses_clients_without_ping() -> None:
    """A client without ping() is a configuration error."""
    with pytest.raises(ConfigurationError, match="ping"):
        RedisHealthCheck(object())


async def test_hanging_check_times_out_and_others_still_report() -> None:
    """A hung check is cut at its timeout; the run returns with every other result."""

    async def hang() -> None:
        await asyncio.Event().wait()

    checker = HealthChecker("svc")
    checker.add_check(CallableHealthCheck("hang", hang, timeout=0.1))
    checker.add_check(probe("ok", {"fine": True}))
    report = await checker.run_all_checks()
    by_name = {r.name: r for r in report.checks}
    assert by_name["hang"].status is HealthStatus.UNHEALTHY
    assert by_name["hang"].error == "Timed out after 0.1 s."
    assert by_name["ok"].details == {"fine": True}
    assert report.status is HealthStatus.UNHEALTHY


async def test_check_ignoring_cancellation_is_abandoned() -> None:
    """A check that swallows its cancellation does not hold the run beyond timeout plus grace."""
    released = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await released.wait()

    checker = HealthChecker("svc")
    checker.add_check(CallableHealthCheck("stubborn", stubborn, timeout=0.05))
    report = await checker.run_all_checks()
    assert report.checks[0].status is HealthStatus.UNHEALTHY
    assert "did not stop" in (report.checks[0].error or "")
    released.set()
    for _ in range(100):
        if not checker._stragglers:
            break
        await asyncio.sleep(0.01)
    assert not checker._stragglers


async def test_checks_run_concurrently() -> None:
    """Two checks that each wait for the other can only pass when run at the same time."""
    a, b = asyncio.Event(), asyncio.Event()

    async def first() -> None:
        a.set()
        await b.wait()

    async def second() -> None:
        b.set()
        await a.wait()

    checker = HealthChecker("svc", default_timeout=2)
    checker.add_check(CallableHealthCheck("first", first))
    checker.add_check(CallableHealthCheck("second", second))
    assert (await checker.run_all_checks()).status is HealthStatus.HEALTHY


async def test_raising_check_reports_type_and_redacted_message() -> None:
    """An exception becomes an unhealthy result naming its type, with secrets stripped."""
    error = RuntimeError("cannot reach postgresql://app:hunter2@db/x with token=abc123 Bearer eyJhbGciOi")
    checker = HealthChecker("svc")
    checker.add_check(probe("db", error))
    result = (await checker.run_all_checks()).checks[0]
    assert result.status is HealthStatus.UNHEALTHY
    assert result.error is not None
    assert result.error.startswith("RuntimeError: ")
    for secret in ("hunter2", "abc123", "eyJhbGciOi"):
        assert secret not in result.error


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        ([], HealthStatus.HEALTHY),
        ([probe("a"), probe("b", critical=False)], HealthStatus.HEALTHY),
        ([probe("a"), probe("b", OSError("x"), critical=False)], HealthStatus.DEGRADED),
        ([probe("a", HealthCheckDegraded("lagging", {"lag_s": 4}))], HealthStatus.DEGRADED),
        ([probe("a", OSError("x")), probe("b", critical=False)], HealthStatus.UNHEALTHY),
    ],
)
async def test_overall_status(checks: list[CallableHealthCheck], expected: HealthStatus) -> None:
    """Critical failure → unhealthy; non-critical failure or a degraded check → degraded; else healthy."""
    checker = HealthChecker("svc")
    for check in checks:
        checker.add_check(check)
    report = await checker.run_all_checks()
    assert report.status is expected
    assert report.ready is (expected is not HealthStatus.UNHEALTHY)


async def test_degraded_check_keeps_its_details() -> None:
    """HealthCheckDegraded's message and details are shown in the result."""
    checker = HealthChecker("svc")
    checker.add_check(probe("replica", HealthCheckDegraded("replica lagging", {"lag_s": 4})))
    result = (await checker.run_all_checks()).checks[0]
    assert result.to_dict()["status"] == "degraded"
    assert result.error == "replica lagging"
    assert result.details == {"lag_s": 4}


async def test_cache_serves_last_report_until_ttl() -> None:
    """Within cache_ttl the last report is served without probing; after it, checks run again."""
    clock = FakeClock()
    calls: list[int] = []

    async def counted() -> None:
        calls.append(1)

    checker = HealthChecker("svc", cache_ttl=10, clock=clock)
    checker.add_check(CallableHealthCheck("counted", counted))
    first = await checker.run_all_checks()
    second = await checker.run_all_checks()
    assert len(calls) == 1
    assert not first.cached
    assert second.cached
    assert second.timestamp == first.timestamp
    assert checker.last_report is first
    await checker.run_all_checks(critical_only=True)  # cached separately
    assert len(calls) == 2
    await checker.run_all_checks(use_cache=False)
    assert len(calls) == 3
    clock.now += 10
    assert not (await checker.run_all_checks()).cached
    assert len(calls) == 4


async def test_critical_only_skips_non_critical_checks() -> None:
    """Readiness runs only the critical checks."""
    checker = HealthChecker("svc")
    checker.add_check(probe("db"))
    checker.add_check(probe("disk", OSError("full"), critical=False))
    report = await checker.run_all_checks(critical_only=True)
    assert [r.name for r in report.checks] == ["db"]
    assert report.status is HealthStatus.HEALTHY


def test_protocol_is_structural() -> None:
    """Any object with name, critical, timeout and async check() is a HealthCheck."""

    class Custom:
        name = "mqtt"
        critical = False
        timeout = None

        async def check(self) -> None:
            return None

    assert isinstance(Custom(), HealthCheck)
    assert not isinstance(object(), HealthCheck)


def test_add_check_validates() -> None:
    """Non-checks, duplicate names and bad timeouts are refused; remove_check unregisters."""
    checker = HealthChecker("svc")
    checker.add_check(probe("a"))
    with pytest.raises(ConfigurationError, match="not a health check"):
        checker.add_check(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unique"):
        checker.add_check(probe("a"))
    with pytest.raises(ConfigurationError, match="timeout"):
        checker.add_check(probe("b", timeout=0))
    checker.remove_check("a")
    assert checker.checks == ()


@pytest.mark.parametrize("options", [{"default_timeout": 0}, {"default_timeout": float("nan")}, {"cache_ttl": -1}])
def test_checker_validates_options(options: dict[str, Any]) -> None:
    """Timeouts must be positive and the cache TTL non-negative."""
    with pytest.raises(ConfigurationError):
        HealthChecker("svc", **options)


async def test_disk_space_check(tmp_path: Path) -> None:
    """Free space is judged against the ratios and the absolute floor."""
    details = await DiskSpaceHealthCheck(tmp_path, min_free_ratio=0, degraded_free_ratio=0).check()
    assert details["free_bytes"] > 0
    with pytest.raises(OSError, match="free"):
        await DiskSpaceHealthCheck(tmp_path, min_free_bytes=2**62).check()
    with pytest.raises(HealthCheckDegraded):
        await DiskSpaceHealthCheck(tmp_path, min_free_ratio=0, degraded_free_ratio=0.999999).check()
    with pytest.raises(ConfigurationError):
        DiskSpaceHealthCheck(tmp_path, min_free_ratio=0.5, degraded_free_ratio=0.1)


async def test_memory_check() -> None:
    """Memory use is reported, and fails above the configured limit."""
    details = await MemoryHealthCheck(max_used_ratio=1.0, degraded_used_ratio=1.0).check()
    assert details["total_bytes"] > 0
    assert details["process_rss_bytes"] > 0
    with pytest.raises(MemoryError):
        await MemoryHealthCheck(max_used_ratio=1e-9, degraded_used_ratio=1e-9).check()
    with pytest.raises(ConfigurationError):
        MemoryHealthCheck(max_used_ratio=0.5, degraded_used_ratio=0.9)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("redis://:pw@cache:6379/0 refused", "redis://:***@cache:6379/0 refused"),
        ("postgresql://app:s3cret@db/x", "postgresql://app:***@db/x"),
        ("GET /x?token=abc&page=2", "GET /x?token=***&page=2"),
        ("{'password': 'hunter2'}", "{'password': '***'}"),
        ("Authorization: Bearer abc.def.ghi", "Authorization: Bearer ***"),
        ("api_key=K1 secret: S1", "api_key=*** secret: ***"),
        ("nothing to hide", "nothing to hide"),
    ],
)
def test_redact(message: str, expected: str) -> None:
    """URL passwords, token/key/password values and bearer credentials are replaced by ***."""
    assert redact(message) == expected


def test_redact_cuts_long_messages() -> None:
    """Messages are cut to max_length characters."""
    assert len(redact("x" * 1000, max_length=50)) == 50


@pytest.mark.parametrize(
    ("blocked", "statement", "extra"),
    [
        ("psutil", "from energy_common.health import MemoryHealthCheck", "system"),
        ("psutil", "import energy_common.health.memory", "system"),
        ("httpx", "from energy_common.health import HTTPHealthCheck", "http"),
        ("httpx", "import energy_common.http_client", "http"),
        ("fastapi", "from energy_common.health.router import health_router", "web"),
    ],
)
def test_missing_extra_is_named_only_when_used(blocked: str, statement: str, extra: str) -> None:
    """Without an extra, energy_common.health still imports; the module needing it names the extra."""
    code = (
        f"import sys\nsys.modules[{blocked!r}] = None\n"
        "import energy_common.health\n"
        f"try:\n    {statement}\nexcept ImportError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert f"pip install 'energy-common[{extra}]'" in out.stdout
