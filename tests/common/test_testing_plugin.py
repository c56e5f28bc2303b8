"""Tests for energy_common.testing: the fixtures a service's own tests use."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from energy_common import testing
from energy_common.config import Settings, get_settings
from energy_common.middleware import setup_middleware
from fastapi import FastAPI

pytest_plugins = ["pytester"]

# The plugin's fixtures, made available to this module as a service's conftest would.
energy_settings = testing.energy_settings
energy_logs = testing.energy_logs
energy_client = testing.energy_client


@pytest.fixture
def app() -> FastAPI:
    """The service app the energy_client fixture binds to."""
    application = FastAPI()
    state: dict[str, Any] = {}

    @application.get("/ping")
    async def ping() -> dict[str, Any]:
        logging.getLogger("svc").info("pinged", extra={"token": "t-123"})
        return {"started": state.get("started", False)}

    @application.get("/boom")
    async def boom() -> None:
        raise RuntimeError("x")

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        state["started"] = True
        yield

    application.router.lifespan_context = lifespan
    setup_middleware(application, Settings(service_name="svc"))
    return application


def test_energy_settings_overrides(energy_settings: Callable[..., Settings]) -> None:
    """energy_settings sets the environment, clears the cache and defaults to ENVIRONMENT=testing."""
    settings = energy_settings(service_name="svc-a", cors_origins=["https://a.example"], debug=True)
    assert settings.service_name == "svc-a"
    assert settings.environment == "testing"
    assert settings.cors_origins == ["https://a.example"]
    assert settings.debug is True
    assert get_settings() is settings


def test_energy_settings_is_undone() -> None:
    """After the previous test the override is gone."""
    assert get_settings().service_name != "svc-a"


async def test_energy_client_and_logs(energy_client: httpx.AsyncClient, energy_logs: list[dict[str, Any]]) -> None:
    """energy_client runs the lifespan and calls the app in-process; energy_logs captures redacted lines."""
    response = await energy_client.get("/ping")
    assert response.json() == {"started": True}
    line = next(item for item in energy_logs if item["message"] == "pinged")
    assert line["token"] == "[REDACTED]"
    assert line["correlation_id"] == response.headers["x-request-id"]


async def test_energy_client_shows_500s(energy_client: httpx.AsyncClient, energy_logs: list[dict[str, Any]]) -> None:
    """Errors come back as responses (what clients see), not as exceptions in the test."""
    response = await energy_client.get("/boom")
    assert response.status_code == 500
    assert any(item["level"] == "ERROR" for item in energy_logs)


async def test_asgi_client_without_lifespan() -> None:
    """asgi_client also drives a plain ASGI callable."""

    async def raw(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with testing.asgi_client(raw) as client:
        assert (await client.get("/")).status_code == 204


@pytest.mark.slow
def test_loads_as_a_plugin(pytester: pytest.Pytester) -> None:
    """A service enables the fixtures with pytest_plugins in its conftest (pytest-asyncio strict mode)."""
    pytester.makeini("[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(
        """
        import pytest
        from fastapi import FastAPI

        pytest_plugins = ["energy_common.testing"]

        @pytest.fixture
        def app():
            app = FastAPI()

            @app.get("/ping")
            async def ping():
                return {"ok": True}

            return app
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio
        async def test_ping(energy_client, energy_logs, energy_settings):
            assert energy_settings(service_name="x").service_name == "x"
            assert (await energy_client.get("/ping")).json() == {"ok": True}
        """
    )
    result = pytester.runpytest_subprocess("-W", "error", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
