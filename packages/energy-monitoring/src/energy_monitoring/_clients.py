"""Client spans for SQLAlchemy, Redis and httpx through the OpenTelemetry contrib instrumentations.

We do not write our own client instrumentation: the contrib packages
(``opentelemetry-instrumentation-sqlalchemy``, ``-redis``, ``-httpx``, extra ``instrument``)
follow the database and HTTP semantic conventions and are maintained upstream. This module
only switches them on once, with settings that keep secrets out of spans:

* SQLAlchemy: ``db.statement`` is the statement as compiled, with bind placeholders; bound
  parameter values are never recorded, and sqlcommenter stays off (no comments appended to
  the SQL that reaches the server).
* Redis: the instrumentation records ``COMMAND ? ?``: the command name, never its keys or values.
* httpx: ``url.full``/``http.url`` keep scheme, host, port and path; user info is dropped and
  every query value is replaced by ``REDACTED`` (tokens in query strings are common), and no
  header is captured unless the operator opts in through the OpenTelemetry environment
  variables.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import weakref
from collections.abc import Collection, Iterable
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from opentelemetry import trace as otel_trace

from energy_monitoring._errors import TracingError

__all__ = [
    "CLIENT_LIBRARIES",
    "ClientLibrary",
    "instrument_clients",
    "instrument_engine",
    "redact_url",
    "uninstrument_clients",
]

logger = logging.getLogger("energy_monitoring.tracing")

ClientLibrary = Literal["sqlalchemy", "redis", "httpx"]
#: The client libraries :func:`instrument_clients` knows, with the contrib module of each.
CLIENT_LIBRARIES: dict[ClientLibrary, str] = {
    "sqlalchemy": "opentelemetry.instrumentation.sqlalchemy",
    "redis": "opentelemetry.instrumentation.redis",
    "httpx": "opentelemetry.instrumentation.httpx",
}
_URL_ATTRIBUTES = ("url.full", "http.url")
_lock = threading.Lock()
_instrumented: set[str] = set()
_engines: weakref.WeakSet[Any] = weakref.WeakSet()


def redact_url(url: str) -> str:
    """Drop user info and replace every query value of ``url`` by ``REDACTED``.

    Example:
        >>> redact_url("https://u:p@api.example/v1/x?token=abc&page=2")
        'https://api.example/v1/x?token=REDACTED&page=REDACTED'
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port is not None else host
    except ValueError:
        return "REDACTED"
    query = urlencode([(key, "REDACTED") for key, _ in parse_qsl(parts.query, keep_blank_values=True)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _redact_span_url(span: otel_trace.Span, request: Any) -> None:
    """httpx request hook: rewrite the URL attributes the instrumentation has just set."""
    if not span.is_recording():
        return
    url = getattr(request, "url", None)
    if url is None and isinstance(request, tuple) and len(request) > 1:
        url = request[1]  # RequestInfo(method, url, headers, stream, extensions)
    redacted = redact_url(str(url))
    for name in _URL_ATTRIBUTES:
        span.set_attribute(name, redacted)


async def _redact_span_url_async(span: otel_trace.Span, request: Any) -> None:
    """The async twin of :func:`_redact_span_url` (httpx.AsyncClient takes async hooks)."""
    _redact_span_url(span, request)


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _installed(library: ClientLibrary) -> bool:
    """True when both the contrib instrumentation and the client library itself are importable."""
    return _found(CLIENT_LIBRARIES[library]) and _found(library)


def _instrumentor(library: ClientLibrary) -> Any:
    """The contrib instrumentor of ``library`` (a singleton per process, as BaseInstrumentor makes it)."""
    # Imported here: each contrib package is optional (extra "instrument") and imports its client library.
    if library == "sqlalchemy":
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor  # noqa: PLC0415

        return SQLAlchemyInstrumentor()
    if library == "redis":
        from opentelemetry.instrumentation.redis import RedisInstrumentor  # noqa: PLC0415

        return RedisInstrumentor()
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor  # noqa: PLC0415

    return HTTPXClientInstrumentor()


def _instrument_one(library: ClientLibrary, provider: otel_trace.TracerProvider | None) -> None:
    options: dict[str, Any] = {"tracer_provider": provider}
    if library == "sqlalchemy":
        options["enable_commenter"] = False
    elif library == "httpx":
        options.update(request_hook=_redact_span_url, async_request_hook=_redact_span_url_async)
    _instrumentor(library).instrument(**options)


def instrument_clients(
    libraries: Iterable[ClientLibrary] | None = None,
    *,
    tracer_provider: otel_trace.TracerProvider | None = None,
) -> frozenset[ClientLibrary]:
    """Switch on client spans for the installed contrib instrumentations (idempotent).

    Args:
        libraries: Which of ``"sqlalchemy"``, ``"redis"``, ``"httpx"`` to instrument; None
            means every one whose contrib package is installed (extra ``instrument``).
            Naming one that is not installed (the contrib package or the client library) raises.
        tracer_provider: Provider for the client spans (the global one if None).

    Returns:
        The libraries instrumented by this process so far.

    Raises:
        TracingError: an unknown library name.
        ImportError: a named library's contrib package is missing (names the extra).

    SQLAlchemy engines created before this call (``energy_common.database.Database`` builds
    its engine when constructed) are instrumented with :func:`instrument_engine`.
    """
    if libraries is None:
        wanted = [name for name in CLIENT_LIBRARIES if _installed(name)]
    else:
        wanted = list(libraries)
        for name in wanted:
            if name not in CLIENT_LIBRARIES:
                raise TracingError(
                    f"Unknown client library {name!r} to instrument; use one of {', '.join(CLIENT_LIBRARIES)}.",
                    {"library": str(name)},
                )
            if not _installed(name):
                from energy_common._extras import missing_extra  # noqa: PLC0415

                missing = CLIENT_LIBRARIES[name] if not _found(CLIENT_LIBRARIES[name]) else name
                raise missing_extra("energy-monitoring", "instrument", ModuleNotFoundError(missing, name=missing))
    with _lock:
        for name in wanted:
            if name in _instrumented:
                continue
            _instrument_one(name, tracer_provider)
            _instrumented.add(name)
        return frozenset(_instrumented)  # type: ignore[arg-type]


def uninstrument_clients() -> None:
    """Switch off what :func:`instrument_clients` switched on (for tests, and for a clean shutdown).

    Engines attached with :func:`instrument_engine` keep their spans until they are disposed.
    Never raises: a failure is logged.
    """
    with _lock:
        for name in sorted(_instrumented):
            try:
                _instrumentor(name).uninstrument()  # type: ignore[arg-type]
            except Exception:
                logger.exception("Could not switch off client spans for %s", name)
        _instrumented.clear()


def instrument_engine(engine: Any, *, tracer_provider: otel_trace.TracerProvider | None = None) -> bool:
    """Record client spans for one existing SQLAlchemy engine (sync or async); idempotent.

    Args:
        engine: An ``Engine``, an ``AsyncEngine`` or anything with an ``engine`` attribute
            holding one (such as ``energy_common.database.Database``).
        tracer_provider: Provider for the spans (the global one if None).

    Returns:
        True if the engine was instrumented now, False if it already was.

    Raises:
        ImportError: ``opentelemetry-instrumentation-sqlalchemy`` is missing (extra ``instrument``).
        TracingError: ``engine`` is not a SQLAlchemy engine.
    """
    try:
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer  # noqa: PLC0415
        from opentelemetry.metrics import get_meter  # noqa: PLC0415
        from opentelemetry.trace import get_tracer  # noqa: PLC0415
    except ImportError as exc:
        from energy_common._extras import missing_extra  # noqa: PLC0415

        raise missing_extra("energy-monitoring", "instrument", exc) from exc
    # EngineTracer is what SQLAlchemyInstrumentor().instrument(engine=...) builds; that public
    # door works once per process, so later engines are attached the same way directly
    # (pinned by tests/monitoring/test_monitoring_clients.py::test_engine_tracer_contract).
    target = getattr(engine, "engine", engine)
    target = getattr(target, "sync_engine", target)
    if not hasattr(target, "dispatch") or not hasattr(target, "dialect"):
        raise TracingError(
            f"instrument_engine needs a SQLAlchemy Engine or AsyncEngine, got {type(engine).__name__}.",
            {"type": type(engine).__name__},
        )
    with _lock:
        if target in _engines:
            return False
        tracer = get_tracer("opentelemetry.instrumentation.sqlalchemy", tracer_provider=tracer_provider)
        usage = get_meter("opentelemetry.instrumentation.sqlalchemy").create_up_down_counter(
            name="db.client.connections.usage", unit="connections"
        )
        EngineTracer(tracer, target, usage, False, {}, False)  # type: ignore[no-untyped-call]
        _engines.add(target)
        return True


def _requested(instrument: bool | Collection[ClientLibrary]) -> Iterable[ClientLibrary] | None:
    """Map ``setup_tracing(instrument=...)`` to :func:`instrument_clients`' argument (None = installed)."""
    if instrument is True:
        return None
    if instrument is False:
        return ()
    return list(instrument)
