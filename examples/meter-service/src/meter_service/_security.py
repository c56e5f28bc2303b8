"""Request dependencies: the runtime, permissions combined with per-user rate limits."""

# No ``from __future__ import annotations`` in the route modules: FastAPI must see the
# dependencies built inside factory functions (closures) when it reads the signatures.

from collections.abc import Awaitable, Callable
from typing import Annotated

from energy_auth import Principal
from energy_auth.fastapi import require_permission
from energy_common.cache.web import rate_limit
from energy_common.exceptions import ServiceUnavailableError
from fastapi import Depends, Request, Response

from meter_service._runtime import MeterRuntime

__all__ = ["get_runtime", "limited_permission"]


async def get_runtime(request: Request) -> MeterRuntime:
    """Return the service's runtime (set by the app's lifespan).

    ``async`` although it never awaits: FastAPI runs a plain ``def`` dependency in its
    thread pool, a thread hop on every request for an attribute read.

    Raises:
        ServiceUnavailableError: The service has not started or is stopping.
    """
    runtime: MeterRuntime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        raise ServiceUnavailableError("The meter service is starting or stopping; retry shortly.")
    return runtime


def _subject(request: Request) -> tuple[str, str]:
    principal: Principal = request.state.principal
    return ("user", principal.subject)


def limited_permission(permission: str, *, limit: int, window: float, name: str) -> Callable[..., Awaitable[Principal]]:
    """Require ``permission``, then count the request against the caller's own limit.

    Unauthenticated (401) and forbidden (403) requests are refused before they use up
    anyone's limit; a caller over the limit gets 429 with ``Retry-After``. The limit
    fails closed (503) when Redis is down: these are write and command endpoints.
    """
    guard = require_permission(permission)
    limiter = rate_limit(limit, window, key=_subject, name=name, failure_policy="closed")

    async def dependency(
        request: Request, response: Response, principal: Annotated[Principal, Depends(guard)]
    ) -> Principal:
        request.state.principal = principal
        await limiter(request, response)
        return principal

    return dependency
