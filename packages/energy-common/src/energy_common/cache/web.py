"""FastAPI dependency ``rate_limit``: 429 with ``Retry-After`` and ``RateLimit-*`` headers.

Needs the ``web`` extra (FastAPI) besides ``cache``. Errors are raised as
``RateLimitExceededError`` (429) or ``ServiceUnavailableError`` (503, fail-closed);
``energy_common.middleware.install_exception_handlers`` renders them as the standard
envelope with their headers.

Example:
    >>> from fastapi import Depends, FastAPI
    >>> from energy_common.cache.web import rate_limit
    >>> app = FastAPI()
    >>> app.state.rate_limiter = RateLimitCache(redis_client)  # doctest: +SKIP
    >>> @app.post("/auth/login", dependencies=[Depends(rate_limit(5, 60))])  # doctest: +SKIP
    ... async def login() -> dict[str, str]: ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from energy_common._extras import missing_extra

try:
    from fastapi import Request, Response
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise missing_extra("energy-common", "web", exc) from exc

from energy_common.cache._common import CacheKey
from energy_common.cache._ratelimit import FailurePolicy, RateLimitCache, RateLimitResult
from energy_common.exceptions import ConfigurationError, RateLimitExceededError
from energy_common.proxies import client_address

__all__ = ["client_ip", "rate_limit"]

#: Attribute of ``app.state`` where ``rate_limit`` finds the limiter when none is passed.
STATE_ATTRIBUTE = "rate_limiter"


def client_ip(request: Request) -> CacheKey:
    """Default key: the client's address (:func:`energy_common.proxies.client_address`).

    The TCP peer, or behind proxies listed in ``app.state.trusted_proxies`` the right-most
    untrusted ``X-Forwarded-For`` hop; a header from anyone else is ignored.
    """
    return ("ip", client_address(request.scope))


def _limiter(request: Request, limiter: RateLimitCache | None) -> RateLimitCache:
    found = limiter if limiter is not None else getattr(request.app.state, STATE_ATTRIBUTE, None)
    if not isinstance(found, RateLimitCache):
        raise ConfigurationError(
            f"rate_limit needs a RateLimitCache: pass limiter= or set app.state.{STATE_ATTRIBUTE} at startup."
        )
    return found


def _route_name(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else request.url.path


def rate_limit(
    limit: int,
    window: float,
    *,
    key: Callable[[Request], CacheKey | Awaitable[CacheKey]] = client_ip,
    name: str | None = None,
    limiter: RateLimitCache | None = None,
    failure_policy: FailurePolicy | str | None = None,
) -> Callable[[Request, Response], Awaitable[RateLimitResult]]:
    """Build a FastAPI dependency that limits requests per key with a sliding window.

    On success it sets ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset``
    and ``RateLimit-Policy`` on the response and returns the :class:`RateLimitResult`.

    Args:
        limit: Requests allowed per window.
        window: Window length in seconds.
        key: Returns who is limited (sync or async); default: the client IP.
        name: Limit name (counters are per name and key); default: the route path.
        limiter: The ``RateLimitCache``; default: ``app.state.rate_limiter``.
        failure_policy: Behaviour when the backend is down (default: the limiter's,
            ``CLOSED`` unless configured; keep ``CLOSED`` for auth and command endpoints).

    Raises:
        RateLimitExceededError: 429, with ``retry_after`` and the headers set.
        ServiceUnavailableError: 503 when the backend is down and the policy is closed.
    """
    if not isinstance(limit, int) or limit < 1 or not window > 0:
        raise ConfigurationError("rate_limit needs limit >= 1 and window > 0.")

    async def dependency(request: Request, response: Response) -> RateLimitResult:
        raw: Any = key(request)
        who: CacheKey = await raw if isinstance(raw, Awaitable) else raw
        parts = who if isinstance(who, tuple) else (who,)
        result = await _limiter(request, limiter).check_rate_limit(
            (name or _route_name(request), *parts), limit=limit, window_seconds=window, failure_policy=failure_policy
        )
        headers = result.headers()
        if not result.allowed:
            error = RateLimitExceededError(retry_after=float(headers["Retry-After"]))
            error.headers = headers
            raise error
        response.headers.update(headers)
        return result

    return dependency
