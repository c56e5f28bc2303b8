"""Broker authentication and authorization from device credentials, service tokens and one policy.

``energy_auth.broker`` needs only the core dependencies; the HTTP endpoints for EMQX and
mosquitto-go-auth live in :mod:`energy_auth.broker.fastapi` (extra ``web``)::

    from energy_auth.broker import BrokerAuthenticator, service_username, issue_service_token

    authenticator = BrokerAuthenticator(
        DEFAULT_ACCESS_POLICY, credentials, tokens=mqtt_tokens, rate_limiter=RateLimitCache(redis)
    )
    decision = await authenticator.authenticate("meter-17", secret, "meter-17")
    await authenticator.authorize("meter-17", "meter-17", "publish", "devices/meter-17/telemetry")
"""

from energy_auth.broker._authenticator import (
    AuthnDecision,
    BrokerAuthenticator,
    BrokerTokenVerifier,
    RateLimiter,
    client_id_is_device_id,
    issue_service_token,
)
from energy_auth.broker._contracts import GO_AUTH_ACCESS, parse_fields
from energy_auth.broker._identity import (
    MAX_USERNAME_LENGTH,
    SERVICE_PREFIX,
    BrokerIdentity,
    parse_username,
    service_username,
)

__all__ = [
    "GO_AUTH_ACCESS",
    "MAX_USERNAME_LENGTH",
    "SERVICE_PREFIX",
    "AuthnDecision",
    "BrokerAuthenticator",
    "BrokerIdentity",
    "BrokerTokenVerifier",
    "RateLimiter",
    "client_id_is_device_id",
    "issue_service_token",
    "parse_fields",
    "parse_username",
    "service_username",
]
