"""Client addresses that cannot be spoofed: ``X-Forwarded-For`` is read only from trusted proxies.

The address a rate limit or a login throttle keys on is the TCP peer, unless that peer
is a proxy the service was told to trust (``TRUSTED_PROXIES``, none by default). Then
``X-Forwarded-For`` is read from the right, skipping trusted hops; the first untrusted
hop is the client. Entries further left were written by the client itself and are
never believed (a client can send ``X-Forwarded-For: 203.0.113.9`` with every request).

Run uvicorn with ``proxy_headers=False`` (``--no-proxy-headers``) when using this: by
default uvicorn trusts ``X-Forwarded-For`` from 127.0.0.1 and rewrites the peer address
before the application sees it.

Pure functions on ASGI scopes; no web framework is imported.

Example:
    >>> proxies = TrustedProxies.parse("10.0.0.0/8, 127.0.0.1")
    >>> scope = {"client": ("10.1.2.3", 5000), "headers": [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.7")]}
    >>> client_address(scope, proxies)
    '203.0.113.7'
    >>> client_address(scope, TrustedProxies())  # nothing trusted: the peer
    '10.1.2.3'
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from energy_common.exceptions import ConfigurationError

__all__ = ["STATE_ATTRIBUTE", "TrustedProxies", "client_address", "forwarded_for"]

#: Attribute of ``app.state`` where :func:`client_address` finds the trusted proxies.
STATE_ATTRIBUTE = "trusted_proxies"
MAX_FORWARDED_HOPS = 32
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """The networks whose ``X-Forwarded-For`` is believed (empty: none, the default).

    Attributes:
        networks: Trusted proxy networks (a bare address is a /32 or /128).
    """

    networks: tuple[_Network, ...] = ()

    @classmethod
    def parse(cls, value: str | Iterable[str] | None) -> TrustedProxies:
        """Build from ``"10.0.0.0/8, 127.0.0.1"`` or a list of such entries (``None``/empty: trust none).

        Raises:
            ConfigurationError: An entry is not an address or a network; the message names it.
        """
        if value is None:
            return cls()
        entries = value.split(",") if isinstance(value, str) else list(value)
        networks = []
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError as exc:
                raise ConfigurationError(
                    f"Trusted proxy {entry!r} is not an IP address or network; use e.g. '10.0.0.0/8' or '127.0.0.1'."
                ) from exc
        return cls(tuple(networks))

    def trusts(self, address: str) -> bool:
        """Tell whether ``address`` is one of the trusted proxies (a malformed address is not)."""
        if not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)


def forwarded_for(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """The ``X-Forwarded-For`` hops of raw ASGI headers, left to right (several headers concatenate)."""
    hops: list[str] = []
    for name, value in headers:
        if name.lower() == b"x-forwarded-for":
            hops.extend(part.strip() for part in value.decode("latin-1").split(","))
    return hops


def _normalised(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address.strip("[]")))
    except ValueError:
        return "invalid"


def client_address(scope: Mapping[str, Any], trusted: TrustedProxies | None = None) -> str:
    """The client's address for an ASGI ``scope``: the peer, or the right-most untrusted forwarded hop.

    Args:
        scope: The ASGI scope (``request.scope`` in Starlette/FastAPI).
        trusted: The trusted proxies; default: ``scope["app"].state.trusted_proxies`` when set, else none.

    Returns:
        A normalised IP address; ``"unknown"`` without a peer, ``"invalid"`` for a forwarded hop that
        is not an IP address (so garbage cannot mint fresh rate-limit keys either: they all share one).
    """
    if trusted is None:
        state = getattr(scope.get("app"), "state", None)
        found = getattr(state, STATE_ATTRIBUTE, None)
        trusted = found if isinstance(found, TrustedProxies) else TrustedProxies()
    client = scope.get("client")
    if not client:
        return "unknown"
    peer = str(client[0])
    if not trusted.trusts(peer):
        normalised = _normalised(peer)
        return peer if normalised == "invalid" else normalised  # e.g. a test client's name
    hops = forwarded_for(scope.get("headers", ()))[-MAX_FORWARDED_HOPS:]
    for hop in reversed(hops):
        address = _normalised(hop)
        if address == "invalid" or not trusted.trusts(address):
            return address
    # Every hop is a trusted proxy (or there is no header): the left-most one is the client.
    return _normalised(hops[0]) if hops else _normalised(peer)
