"""Pytest fixtures for a service's own tests (needs pytest and the ``http`` extra).

Enable the plugin in the service's ``conftest.py``::

    pytest_plugins = ["energy_common.testing"]

Fixtures:
    ``energy_settings``: factory ``energy_settings(**overrides) -> Settings`` that sets the
        environment variables (``ENVIRONMENT=testing`` by default), clears the
        ``get_settings`` cache and returns the fresh settings; undone after the test.
    ``energy_logs``: the list of structured log dicts captured during the test (see
        :func:`energy_common.logging.capture_logs`).
    ``energy_client``: an ``httpx.AsyncClient`` bound in-process to the ``app`` fixture
        the service defines, with the app's lifespan running.

Example:
    >>> async def test_ping(energy_client, energy_logs):  # doctest: +SKIP
    ...     response = await energy_client.get("/ping")
    ...     assert response.headers["x-request-id"]
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from energy_common._extras import missing_extra

try:
    import pytest
except ImportError as exc:  # pragma: no cover - a plugin is only imported by pytest
    raise ImportError("energy_common.testing is a pytest plugin; install pytest to use it.") from exc
try:
    import httpx
except ImportError as exc:  # pragma: no cover - exercised by the packaging tests
    raise missing_extra("energy-common", "http", exc) from exc

from energy_common.config import Settings, get_settings
from energy_common.logging import capture_logs

try:  # pytest-asyncio's decorator works in both its strict and auto modes
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - e.g. anyio's plugin drives async fixtures itself
    _async_fixture = pytest.fixture  # type: ignore[assignment]

__all__ = ["asgi_client", "energy_client", "energy_logs", "energy_settings"]


@contextlib.asynccontextmanager
async def asgi_client(app: Any, *, base_url: str = "http://testserver") -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app``'s lifespan and yield an ``httpx.AsyncClient`` calling it in-process.

    Exceptions the app lets escape become 500 responses (as a server would send), so
    tests see what clients see.

    Args:
        app: A FastAPI/Starlette application (or any ASGI app; lifespan runs when the
            app has ``router.lifespan_context``).
        base_url: Base URL of the requests.
    """
    lifespan = getattr(getattr(app, "router", None), "lifespan_context", None)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with contextlib.AsyncExitStack() as stack:
        if lifespan is not None:
            await stack.enter_async_context(lifespan(app))
        client = await stack.enter_async_context(httpx.AsyncClient(transport=transport, base_url=base_url))
        yield client


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | dict):
        return json.dumps(value)
    return str(value)


@pytest.fixture
def energy_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Settings]]:
    """Factory fixture: ``energy_settings(log_level="DEBUG", cors_origins=[...]) -> Settings``."""

    def override(**values: Any) -> Settings:
        values.setdefault("environment", "testing")
        for name, value in values.items():
            if value is None:
                monkeypatch.delenv(name.upper(), raising=False)
            else:
                monkeypatch.setenv(name.upper(), _env_value(value))
        get_settings.cache_clear()
        return get_settings()

    yield override
    get_settings.cache_clear()


@pytest.fixture
def energy_logs() -> Iterator[list[dict[str, Any]]]:
    """Structured (redacted) dicts of every record logged during the test, DEBUG and up."""
    with capture_logs(logging.DEBUG) as logs:
        yield logs


@_async_fixture
async def energy_client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process ``httpx.AsyncClient`` for the ``app`` fixture defined by the service."""
    app = request.getfixturevalue("app")
    async with asgi_client(app) as client:
        yield client
