"""The application factory: FastAPI app, middleware, auth, health, metrics and the API routers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from energy_auth.fastapi import install_auth
from energy_common.apidocs import error_responses, install_swagger_ui
from energy_common.health.router import health_router
from energy_common.middleware import setup_middleware
from energy_common.proxies import TrustedProxies
from energy_monitoring.web import add_metrics_route, instrumentation_middleware
from fastapi import APIRouter, Depends, FastAPI

from meter_service.__about__ import __version__
from meter_service._dashboard import dashboard_router
from meter_service._routes_auth import auth_router
from meter_service._routes_commands import commands_router
from meter_service._routes_devices import devices_router, known_device
from meter_service._routes_ingestion import ingestion_router
from meter_service._routes_readings import readings_router
from meter_service._runtime import MeterRuntime
from meter_service._settings import MeterSettings

__all__ = ["API_PREFIX", "create_app"]

#: Where the REST API lives.
API_PREFIX = "/api/v1"
_UNOBSERVED = ("/metrics", "/health", "/health/live", "/health/ready")
#: Errors any API route can answer: a schema mismatch, the service starting or stopping
#: (or an engine down behind a fail-closed limit), and the unexpected.
_API_ERRORS = error_responses(422, 500, 503)


def create_app(settings: MeterSettings | None = None) -> FastAPI:
    """Build the meter service; its resources start with the app's lifespan.

    ``app.state.meter`` is the :class:`MeterRuntime` (database, cache, MQTT, devices,
    ingestion, tokens...); ``app.state.runtime`` is the same object while it runs. Run
    it with any ASGI server (``uvicorn --factory meter_service:create_app``) or with
    ``python -m meter_service`` (the demo).

    Args:
        settings: The settings; read from the environment when None.

    Example:
        >>> app = create_app(MeterSettings(tracing_exporter="off"))
        >>> app.title
        'Meter service'
    """
    settings = settings if settings is not None else MeterSettings()
    runtime = MeterRuntime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime:
            app.state.runtime = runtime
            try:
                yield
            finally:
                app.state.runtime = None

    app = FastAPI(
        title="Meter service",
        version=__version__,
        description="Meter telemetry over MQTT, readings and commands over REST.",
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry would open its own server span plus three
        # operation spans per request once a tracer provider is installed; the
        # energy-monitoring middleware's span is the one server span per request.
        telemetry={"tracing": False},
    )
    app.state.runtime = None  # set while serving (requests get 503 before and after)
    app.state.meter = runtime
    app.state.rate_limiter = runtime.limiter
    app.state.trusted_proxies = TrustedProxies.parse(settings.trusted_proxies)  # client addresses for the limits
    setup_middleware(
        app, settings, instrumentation=instrumentation_middleware(registry=runtime.metrics, exclude_paths=_UNOBSERVED)
    )
    install_auth(app, runtime.tokens)
    install_swagger_ui(app)
    add_metrics_route(app, registry=runtime.metrics)
    app.include_router(health_router(runtime.health, details=not settings.is_production))
    api = APIRouter(prefix=API_PREFIX, responses=_API_ERRORS)
    api.include_router(auth_router(settings), responses=error_responses(400, 401, 413, 429))
    api.include_router(devices_router(settings))
    api.include_router(commands_router(settings))
    # known_device: 404 for an unknown meter, as GET /devices/{id} (after the 401/403 checks).
    api.include_router(
        readings_router(), dependencies=[Depends(known_device)], responses=error_responses(400, 401, 403, 404)
    )
    api.include_router(ingestion_router())
    app.include_router(api)
    app.include_router(dashboard_router())
    return app
