"""HTTPHealthCheck: probe another service's URL (extra ``http``).

Import it from here: ``from energy_common.health.http import HTTPHealthCheck``
(``energy_common.health`` re-exports it lazily, so the package imports without httpx).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

from energy_common._extras import missing_extra
from energy_common.exceptions import ConfigurationError
from energy_common.health._redact import redact_url

try:
    import httpx
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing_extra("energy-common", "http", exc) from exc

__all__ = ["HTTPHealthCheck"]


class HTTPHealthCheck:
    """GET a URL and expect an allowed status (2xx by default); redirects are not followed.

    Args:
        url: Absolute ``http(s)://`` URL, e.g. ``http://auth-service:8005/health/live``.
        name: Name in the report; defaults to ``http:<host>``.
        expected_status: Statuses that count as healthy (default: 200-299).
        headers: Extra request headers (never shown in the report).
        critical: Whether the service is unusable when the peer is down.
        timeout: Seconds allowed; None uses the checker's default.
        client: Reuse this ``httpx.AsyncClient`` (its pool) instead of a new one per probe.

    Raises:
        ConfigurationError: ``url`` is not an absolute http(s) URL.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        expected_status: Collection[int] | None = None,
        headers: Mapping[str, str] | None = None,
        critical: bool = False,
        timeout: float | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ConfigurationError(f"HTTPHealthCheck needs an absolute http(s) URL, got {redact_url(url)!r}.")
        self.url = url
        self.name = name or f"http:{parts.hostname}"
        self.expected_status = frozenset(expected_status) if expected_status is not None else frozenset(range(200, 300))
        self._headers = dict(headers or {})
        self.critical = critical
        self.timeout = timeout
        self._client = client

    async def check(self) -> Mapping[str, Any]:
        """Send the GET and compare the status."""
        if self._client is not None:
            response = await self._client.get(self.url, headers=self._headers, follow_redirects=False)
        else:
            async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
                response = await client.get(self.url, headers=self._headers)
        if response.status_code not in self.expected_status:
            raise ConnectionError(f"{redact_url(self.url)} answered HTTP {response.status_code}.")
        return {"status_code": response.status_code}
