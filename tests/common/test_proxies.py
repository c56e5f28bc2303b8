"""Client addresses from trusted proxies only: parsing, the right-most untrusted hop, rate limits that resist spoofing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from energy_common.cache import MemoryBackend, RateLimitCache
from energy_common.cache.web import rate_limit
from energy_common.exceptions import ConfigurationError
from energy_common.middleware import install_exception_handlers
from energy_common.proxies import TrustedProxies, client_address, forwarded_for
from fastapi import Depends, FastAPI, Request


def scope(peer: str | None, *forwarded: str) -> dict[str, Any]:
    """An ASGI scope from ``peer`` with one X-Forwarded-For header per value."""
    return {
        "client": (peer, 40000) if peer is not None else None,
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded],
    }


CORP = TrustedProxies.parse("10.0.0.0/8, 127.0.0.1, ::1")


@pytest.mark.parametrize(
    ("request_scope", "trusted", "expected"),
    [
        (scope("127.0.0.1", "203.0.113.9"), TrustedProxies(), "127.0.0.1"),  # nothing trusted: header ignored
        (scope("198.51.100.4", "203.0.113.9"), CORP, "198.51.100.4"),  # untrusted peer: header ignored
        (scope("10.0.0.5", "203.0.113.9"), CORP, "203.0.113.9"),  # one trusted proxy
        (scope("10.0.0.5", "6.6.6.6, 203.0.113.9"), CORP, "203.0.113.9"),  # spoofed left part ignored
        (scope("10.0.0.5", "6.6.6.6, 203.0.113.9, 10.0.0.7"), CORP, "203.0.113.9"),  # two proxies
        (scope("10.0.0.5", "6.6.6.6", "203.0.113.9"), CORP, "203.0.113.9"),  # two headers concatenate
        (scope("10.0.0.5", "10.0.0.8, 10.0.0.7"), CORP, "10.0.0.8"),  # all hops trusted: left-most
        (scope("10.0.0.5"), CORP, "10.0.0.5"),  # trusted peer, no header
        (scope("10.0.0.5", "not-an-ip"), CORP, "invalid"),  # garbage shares one key
        (scope("10.0.0.5", "[2001:db8::1]"), CORP, "2001:db8::1"),
        (scope("::1", "2001:DB8:0:0::1"), CORP, "2001:db8::1"),  # normalised
        (scope(None, "203.0.113.9"), CORP, "unknown"),
        (scope("testclient", "203.0.113.9"), CORP, "testclient"),
    ],
)
def test_client_address(request_scope: dict[str, Any], trusted: TrustedProxies, expected: str) -> None:
    """The client is the peer unless it is a trusted proxy; then the right-most untrusted forwarded hop."""
    assert client_address(request_scope, trusted) == expected


def test_parse_and_errors() -> None:
    """Comma lists and iterables parse; empty means none; a bad entry is a ConfigurationError naming it."""
    assert TrustedProxies.parse(None) == TrustedProxies.parse("") == TrustedProxies()
    assert TrustedProxies.parse(["10.0.0.1", "fd00::/8"]).trusts("fd00::5")
    assert not TrustedProxies().trusts("127.0.0.1")
    assert not CORP.trusts("garbage")
    with pytest.raises(ConfigurationError, match=r"'10\.0\.0\.300'"):
        TrustedProxies.parse("10.0.0.0/8, 10.0.0.300")


def test_forwarded_for_reads_every_header_in_order() -> None:
    """Several X-Forwarded-For headers are one list, left to right; other headers are ignored."""
    headers = [(b"X-Forwarded-For", b"1.1.1.1, 2.2.2.2"), (b"x-real-ip", b"9.9.9.9"), (b"x-forwarded-for", b"3.3.3.3")]
    assert forwarded_for(headers) == ["1.1.1.1", "2.2.2.2", "3.3.3.3"]


def app_with_limit(trusted: TrustedProxies | None) -> FastAPI:
    """An app whose /login allows 3 requests per client address per minute."""
    app = FastAPI()
    install_exception_handlers(app)
    app.state.rate_limiter = RateLimitCache(MemoryBackend())
    if trusted is not None:
        app.state.trusted_proxies = trusted

    @app.post("/login", dependencies=[Depends(rate_limit(3, 60))])
    async def login(request: Request) -> dict[str, str]:
        return {"client": client_address(request.scope)}

    return app


async def test_spoofed_forwarded_for_does_not_buy_new_attempts() -> None:
    """Without trusted proxies a new X-Forwarded-For per request still hits the same limit (429 on the 4th)."""
    transport = httpx.ASGITransport(app=app_with_limit(None), client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        codes = [
            (await http.post("/login", headers={"X-Forwarded-For": f"203.0.113.{n}"})).status_code for n in range(5)
        ]
    assert codes == [200, 200, 200, 429, 429]


async def test_trusted_proxy_limits_each_client_and_ignores_spoofed_prefixes() -> None:
    """Behind a trusted proxy each real client has its own limit; what a client prepends does not change its key."""
    transport = httpx.ASGITransport(app=app_with_limit(TrustedProxies.parse("127.0.0.1")), client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        first = [
            (await http.post("/login", headers={"X-Forwarded-For": f"198.51.100.{n}, 203.0.113.7"})).status_code
            for n in range(4)
        ]
        other = await http.post("/login", headers={"X-Forwarded-For": "203.0.113.8"})
    assert first == [200, 200, 200, 429]
    assert other.status_code == 200
    assert other.json() == {"client": "203.0.113.8"}
