"""The meter service's token endpoint behind a real uvicorn: spoofed X-Forwarded-For, trusted proxies, lockouts.

The service runs with its own server configuration (``meter_service._demo.server_config``)
on a free loopback port, on the embedded defaults. Each test sends real HTTP requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("meter_service")

import httpx
import uvicorn
from meter_service import MeterSettings, create_app
from meter_service._demo import server_config

# amqtt 0.12 warns about its own legacy configuration; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PASSWORD = "correct horse battery staple"


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The service under uvicorn on 127.0.0.1, and a client for it; stopped on exit."""
    values: dict[str, Any] = {
        "tracing_exporter": "off",
        "admin_password": PASSWORD,
        "jwt_secret_key": secrets.token_urlsafe(32),
        "simulator_id_prefix": f"m{uuid.uuid4().hex[:6]}-",
        "database_url": None,
        "redis_url": None,
        "mqtt_url": None,
        "data_dir": tmp_path,
        "host": "127.0.0.1",
        "port": free_port(),
        "token_rate_limit": 6,
        "login_failure_limit": 3,
        "rate_limit_window": 60,
    }
    settings = MeterSettings(**(values | overrides))
    server = uvicorn.Server(server_config(create_app(settings), settings))
    task = asyncio.create_task(server.serve(), name="meter-login-test-server")
    try:
        for _ in range(300):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def login(client: httpx.AsyncClient, password: str, forwarded_for: str | None = None) -> int:
    """POST the token endpoint as admin; return the status code."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    response = await client.post(
        "/api/v1/auth/token", json={"username": "admin", "password": password}, headers=headers
    )
    return response.status_code


async def test_spoofed_forwarded_for_gets_no_fresh_password_checks(tmp_path: Path) -> None:
    """A new X-Forwarded-For per request does not reset anything: the 3rd wrong password locks the pair (429 after)."""
    async with serving(tmp_path) as client:
        codes = [await login(client, "wrong", f"203.0.113.{n}") for n in range(1, 9)]
        assert codes[:3] == [401, 401, 401]
        assert set(codes[3:]) == {429}
        assert await login(client, PASSWORD, "198.51.100.1") == 429  # still the same address: 127.0.0.1


async def test_request_limit_per_address_ignores_spoofed_hops(tmp_path: Path) -> None:
    """The per-address request limit (6/min) counts every request from 127.0.0.1 whatever the header says."""
    async with serving(tmp_path, login_failure_limit=100) as client:
        codes = [await login(client, "wrong", f"203.0.113.{n}") for n in range(1, 10)]
    assert codes[:6] == [401] * 6
    assert set(codes[6:]) == {429}


async def test_behind_a_trusted_proxy_each_client_is_throttled_alone(tmp_path: Path) -> None:
    """With TRUSTED_PROXIES=127.0.0.1 the right-most untrusted hop is the client: the attacker is locked, the owner is not."""
    async with serving(tmp_path, trusted_proxies="127.0.0.1", token_rate_limit=50) as client:
        attacker = [await login(client, "wrong", f"10.9.9.{n}, 203.0.113.66") for n in range(1, 6)]
        assert attacker == [401, 401, 401, 429, 429]  # the 3rd failure locks the pair
        assert await login(client, PASSWORD, "203.0.113.66") == 429
        assert await login(client, PASSWORD, "198.51.100.7") == 200
