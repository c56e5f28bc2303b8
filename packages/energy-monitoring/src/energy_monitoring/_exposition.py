"""Exposition: render the metrics text and serve it as a pure ASGI app."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from energy_monitoring._multiprocess import multiprocess_dir, multiprocess_registry
from energy_monitoring._registry import MetricsRegistry

__all__ = ["MetricsApp", "render_metrics"]

logger = logging.getLogger("energy_monitoring.metrics")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _collector(registry: MetricsRegistry | CollectorRegistry | None) -> CollectorRegistry:
    if multiprocess_dir() is not None:
        # Each worker only knows its own values: aggregate every worker's files instead.
        return multiprocess_registry()
    if registry is None:
        from energy_monitoring._api import get_registry  # noqa: PLC0415 - avoids an import cycle

        registry = get_registry()
    return registry.collector_registry if isinstance(registry, MetricsRegistry) else registry


def render_metrics(registry: MetricsRegistry | CollectorRegistry | None = None, accept: str = "") -> tuple[bytes, str]:
    """Return the scrape body and its content type.

    Args:
        registry: What to expose; the default registry if None. In multiprocess mode the
            aggregate of all workers' files is exposed instead.
        accept: The scraper's ``Accept`` header (OpenMetrics is chosen when asked for).

    Example:
        >>> body, content_type = render_metrics()
        >>> content_type.startswith("text/plain")
        True
    """
    encoder, content_type = choose_encoder(accept)
    return encoder(_collector(registry)), content_type


class MetricsApp:
    """A pure ASGI app answering ``GET``/``HEAD`` with the metrics.

    Mount it (``app.mount("/metrics", MetricsApp())``) or add it as a route
    (``app.add_route("/metrics", MetricsApp())``). A failing collection answers 500 with
    a short text (the traceback goes to the log, never to the client).

    Args:
        registry: What to expose; the default registry (at scrape time) if None.
    """

    def __init__(self, registry: MetricsRegistry | CollectorRegistry | None = None) -> None:
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one scrape."""
        if scope["type"] != "http":
            return
        method = scope.get("method", "GET")
        if method not in {"GET", "HEAD"}:
            await _respond(send, 405, b"method not allowed\n", "text/plain; charset=utf-8", allow=True)
            return
        accept = ""
        for key, value in scope.get("headers", ()):
            if key == b"accept":
                accept = value.decode("latin-1")
        try:
            body, content_type = render_metrics(self.registry, accept)
        except Exception:
            logger.exception("Metrics collection failed")
            await _respond(send, 500, b"metrics collection failed\n", "text/plain; charset=utf-8")
            return
        await _respond(send, 200, b"" if method == "HEAD" else body, content_type, length=len(body))


async def _respond(
    send: Send, status: int, body: bytes, content_type: str, *, length: int | None = None, allow: bool = False
) -> None:
    headers = [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(len(body) if length is None else length).encode()),
        (b"cache-control", b"no-store"),
    ]
    if allow:
        headers.append((b"allow", b"GET, HEAD"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
