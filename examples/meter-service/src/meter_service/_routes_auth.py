"""``POST /api/v1/auth/token``: a bearer token for a user of the service (argon2id passwords).

Two guards, both keyed on the client address of :func:`energy_common.proxies.client_address`
(the TCP peer unless ``TRUSTED_PROXIES`` says otherwise, so a made-up
``X-Forwarded-For`` buys nothing): a request limit per address, and a
:class:`~energy_auth.LoginThrottle` that locks a (user, address) pair after
``LOGIN_FAILURE_LIMIT`` wrong passwords, for 60 s doubling up to 15 min.
"""

from typing import Annotated

from energy_auth import LoginThrottle
from energy_common.cache.web import rate_limit
from energy_common.proxies import client_address
from energy_common.responses import APIResponse
from fastapi import APIRouter, Depends, Request

from meter_service._repositories import UserRepository
from meter_service._runtime import MeterRuntime
from meter_service._schemas import TokenRequest, TokenResponse
from meter_service._security import get_runtime
from meter_service._settings import MeterSettings

__all__ = ["auth_router"]


def auth_router(settings: MeterSettings) -> APIRouter:
    """Build the auth router (the token endpoint is limited per client address and throttled per user, failing closed)."""
    router = APIRouter(prefix="/auth", tags=["auth"])
    limit = rate_limit(settings.token_rate_limit, settings.rate_limit_window, name="token", failure_policy="closed")

    @router.post("/token", dependencies=[Depends(limit)])
    async def token(
        body: TokenRequest, request: Request, runtime: Annotated[MeterRuntime, Depends(get_runtime)]
    ) -> APIResponse[TokenResponse]:
        """Exchange a user name and password for an access token (``Authorization: Bearer ...``)."""
        throttle = LoginThrottle(
            runtime.cache.backend,
            address_limit=settings.token_rate_limit,
            account_limit=settings.login_failure_limit,
            key_prefix=f"{settings.redis_key_prefix}login:",
        )
        async with runtime.db.session() as session, throttle.attempt(body.username, client_address(request.scope)):
            users = UserRepository(session)
            user = await users.by_username(body.username)
            new_hash = await runtime.hasher.authenticate(body.password, user.password_hash if user else None)
            if user is not None and new_hash is not None:
                await users.update(user.id, password_hash=new_hash)
            assert user is not None  # noqa: S101 - authenticate() raised for an unknown user
            claims = {"sub": user.username, "roles": list(user.roles), "permissions": list(user.permissions)}
        access = runtime.tokens.create_access_token(claims)
        return APIResponse.success(
            TokenResponse(access_token=access, expires_in=int(runtime.settings.access_token_ttl)),
            message="Token issued",
        )

    return router
