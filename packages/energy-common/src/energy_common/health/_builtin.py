"""Built-in checks that need no extra at import time: database, Redis, disk space, callables.

The database check imports SQLAlchemy only when it is built, so ``energy_common.health``
works without the ``db`` extra; the Redis check only calls ``ping()`` on the client.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from energy_common._extras import missing_extra
from energy_common.exceptions import ConfigurationError
from energy_common.health._types import HealthCheckDegraded

__all__ = ["CallableHealthCheck", "DatabaseHealthCheck", "DiskSpaceHealthCheck", "RedisHealthCheck"]


class DatabaseHealthCheck:
    """Run ``SELECT 1`` on a SQLAlchemy ``AsyncEngine``.

    Args:
        engine_or_database: An ``AsyncEngine``, or any object whose ``engine`` attribute
            is one (such as ``energy_common.database.Database``).
        name: Name in the report.
        critical: Whether the service is unusable without the database.
        timeout: Seconds allowed; None uses the checker's default.

    Raises:
        ImportError: The ``db`` extra is not installed.
        ConfigurationError: No ``AsyncEngine`` could be found in ``engine_or_database``.

    Example:
        >>> checker.add_check(DatabaseHealthCheck(db))  # doctest: +SKIP
    """

    def __init__(
        self, engine_or_database: Any, *, name: str = "database", critical: bool = True, timeout: float | None = None
    ) -> None:
        try:
            from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: PLC0415 - keeps the core free of the db extra
        except ImportError as exc:  # pragma: no cover - exercised only without the extra
            raise missing_extra("energy-common", "db", exc) from exc
        engine = engine_or_database
        if not isinstance(engine, AsyncEngine):
            engine = getattr(engine_or_database, "engine", None)
        if not isinstance(engine, AsyncEngine):
            raise ConfigurationError(
                f"DatabaseHealthCheck needs a SQLAlchemy AsyncEngine or an object with an .engine that is one, "
                f"got {type(engine_or_database).__name__}."
            )
        self._engine = engine
        self.name = name
        self.critical = critical
        self.timeout = timeout

    async def check(self) -> Mapping[str, Any]:
        """Open a connection from the pool and run ``SELECT 1``."""
        from sqlalchemy import text  # noqa: PLC0415 - keeps the core free of the db extra

        async with self._engine.connect() as conn:
            value = (await conn.execute(text("SELECT 1"))).scalar()
        if value != 1:
            raise RuntimeError(f"SELECT 1 returned {value!r}.")
        return {"dialect": self._engine.dialect.name}


class RedisHealthCheck:
    """Send ``PING`` through a ``redis.asyncio`` client (or anything with ``async ping()``).

    Args:
        client: The client, e.g. ``redis.asyncio.Redis`` or a cache object exposing ``ping``.
        name: Name in the report.
        critical: Whether the service is unusable without Redis.
        timeout: Seconds allowed; None uses the checker's default.

    Raises:
        ConfigurationError: ``client`` has no ``ping`` method.
    """

    def __init__(
        self, client: Any, *, name: str = "redis", critical: bool = True, timeout: float | None = None
    ) -> None:
        if not callable(getattr(client, "ping", None)):
            raise ConfigurationError(
                f"RedisHealthCheck needs a client with an async ping(), got {type(client).__name__}."
            )
        self._client = client
        self.name = name
        self.critical = critical
        self.timeout = timeout

    async def check(self) -> None:
        """Send PING and fail unless the server answers."""
        answer = await self._client.ping()
        if answer is False:
            raise ConnectionError("PING was not answered with PONG.")


class DiskSpaceHealthCheck:
    """Check the free space of the file system holding ``path``.

    Args:
        path: Any path on the file system to watch (e.g. the data directory).
        min_free_ratio: Below this share of free space the check fails.
        degraded_free_ratio: Below this share (but above ``min_free_ratio``) it is degraded.
        min_free_bytes: Optional absolute floor; less free space than this fails too.
        name: Name in the report.
        critical: Whether a full disk makes the service unusable.
        timeout: Seconds allowed; None uses the checker's default.

    Raises:
        ConfigurationError: The ratios are not ``0 <= min <= degraded < 1``.
    """

    def __init__(
        self,
        path: str | Path = "/",
        *,
        min_free_ratio: float = 0.05,
        degraded_free_ratio: float = 0.10,
        min_free_bytes: int = 0,
        name: str = "disk",
        critical: bool = False,
        timeout: float | None = None,
    ) -> None:
        if not 0 <= min_free_ratio <= degraded_free_ratio < 1 or min_free_bytes < 0:
            raise ConfigurationError(
                "DiskSpaceHealthCheck needs 0 <= min_free_ratio <= degraded_free_ratio < 1 and min_free_bytes >= 0."
            )
        self.path = Path(path)
        self.min_free_ratio = min_free_ratio
        self.degraded_free_ratio = degraded_free_ratio
        self.min_free_bytes = min_free_bytes
        self.name = name
        self.critical = critical
        self.timeout = timeout

    async def check(self) -> Mapping[str, Any]:
        """Read the usage (in a thread: statvfs can block on network mounts) and judge it."""
        usage = await asyncio.to_thread(shutil.disk_usage, self.path)
        ratio = usage.free / usage.total if usage.total else 0.0
        details = {"path": str(self.path), "total_bytes": usage.total, "free_bytes": usage.free, "free_ratio": ratio}
        if ratio < self.min_free_ratio or usage.free < self.min_free_bytes:
            raise OSError(f"Only {ratio:.1%} ({usage.free} bytes) free on {self.path}; free some space.")
        if ratio < self.degraded_free_ratio:
            raise HealthCheckDegraded(f"Only {ratio:.1%} free on {self.path}.", details)
        return details


class CallableHealthCheck:
    """Wrap an async function as a check (the quickest way to add a custom one).

    Args:
        name: Name in the report.
        func: ``async def probe() -> Mapping | None`` that raises on failure.
        critical: Whether the service is unusable when it fails.
        timeout: Seconds allowed; None uses the checker's default.

    Example:
        >>> async def queue_ok() -> None: ...
        >>> check = CallableHealthCheck("queue", queue_ok, critical=False)
    """

    def __init__(
        self,
        name: str,
        func: Callable[[], Awaitable[Mapping[str, Any] | None]],
        *,
        critical: bool = True,
        timeout: float | None = None,
    ) -> None:
        if not callable(func):
            raise ConfigurationError(f"CallableHealthCheck needs an async function, got {type(func).__name__}.")
        self._func = func
        self.name = name
        self.critical = critical
        self.timeout = timeout

    async def check(self) -> Mapping[str, Any] | None:
        """Call the wrapped function."""
        return await self._func()
