"""FastAPI router for liveness, readiness and detailed health (extra ``web``).

``/health/live`` never touches a dependency (the process answers, so it is alive),
``/health/ready`` runs the critical checks and answers 503 when one is unhealthy, and
``/health`` runs every check and shows the report (details can be restricted). Every
answer uses the standard envelope: the report is in ``data`` on success and in
``error.details`` of a ``SERVICE_UNAVAILABLE`` error on 503.

Example:
    >>> from fastapi import FastAPI
    >>> from energy_common.health import HealthChecker
    >>> from energy_common.health.router import health_router
    >>> app = FastAPI()
    >>> app.include_router(health_router(HealthChecker("my-service")))
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from energy_common._extras import missing_extra
from energy_common.apidocs import error_responses
from energy_common.exceptions import ServiceUnavailableError
from energy_common.health._checker import HealthChecker
from energy_common.health._types import HealthReport, HealthStatus
from energy_common.responses import APIResponse, ErrorResponse

try:
    from fastapi import APIRouter, Request
    from fastapi.responses import JSONResponse
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise missing_extra("energy-common", "web", exc) from exc

__all__ = ["DetailsPolicy", "health_router"]

#: ``True``/``False``, or a function of the request deciding whether ``/health`` shows details.
DetailsPolicy = bool | Callable[[Request], bool | Awaitable[bool]]

_NO_STORE = {"Cache-Control": "no-store"}


def health_router(
    checker: HealthChecker,
    *,
    prefix: str = "/health",
    details: DetailsPolicy = True,
    tags: list[str] | None = None,
    include_in_schema: bool = True,
) -> APIRouter:
    """Build the router serving ``{prefix}/live``, ``{prefix}/ready`` and ``{prefix}``.

    Args:
        checker: The service's checker.
        prefix: Path prefix of the three routes.
        details: Whether ``{prefix}`` shows check details (durations, errors, details) or
            only statuses; a callable receives the request (e.g. to require an admin
            token or an internal network).
        tags: OpenAPI tags (default ``["health"]``).
        include_in_schema: Whether the routes appear in the OpenAPI schema.

    Returns:
        A FastAPI ``APIRouter`` to pass to ``app.include_router``.
    """
    router = APIRouter(
        prefix=prefix,
        tags=list(tags or ["health"]),
        include_in_schema=include_in_schema,
        responses=error_responses(500),
    )
    started = time.monotonic()

    @router.get("/live", summary="Liveness: the process answers (no dependency is touched)")
    async def live() -> JSONResponse:
        data = {"service": checker.service, "status": "alive", "uptime_s": round(time.monotonic() - started, 3)}
        return JSONResponse(APIResponse.success(data=data).to_dict(), headers=_NO_STORE)

    @router.get("/ready", summary="Readiness: every critical check passes", responses=error_responses(503))
    async def ready() -> JSONResponse:
        report = await checker.run_all_checks(critical_only=True)
        return _answer(report, report.to_dict(details=False), "ready", "not ready")

    @router.get("", summary="Health report of every check", responses=error_responses(503))
    async def health(request: Request) -> JSONResponse:
        report = await checker.run_all_checks()
        show = details(request) if callable(details) else details
        if inspect.isawaitable(show):
            show = await show
        return _answer(report, report.to_dict(details=bool(show)), report.status.value, "unhealthy")

    return router


def _answer(report: HealthReport, body: dict[str, Any], ok_message: str, bad_message: str) -> JSONResponse:
    if report.status is not HealthStatus.UNHEALTHY:
        return JSONResponse(APIResponse.success(data=body, message=ok_message).to_dict(), headers=_NO_STORE)
    failed = [r.name for r in report.checks if r.critical and r.status is HealthStatus.UNHEALTHY]
    error = ServiceUnavailableError(
        f"{report.service} is {bad_message}: critical checks failed: {', '.join(failed)}.", {"health": body}
    )
    envelope = ErrorResponse.from_exception(error)
    return JSONResponse(envelope.to_dict(), status_code=503, headers={**envelope.headers, **_NO_STORE})
