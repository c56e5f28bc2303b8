"""``BrokerAuthenticator``: authentication and ACL decisions for an MQTT broker, from one policy."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Protocol

from energy_common.exceptions import AuthenticationError, EnergyError

from energy_auth._policy import AccessPolicy
from energy_auth._principal import Principal
from energy_auth._tokens import TokenManager
from energy_auth.broker._identity import BrokerIdentity, parse_username
from energy_auth.devices._manager import DeviceCredentials

__all__ = [
    "AuthnDecision",
    "BrokerAuthenticator",
    "BrokerTokenVerifier",
    "RateLimiter",
    "client_id_is_device_id",
    "issue_service_token",
]

logger = logging.getLogger("energy_auth.broker")

MAX_PASSWORD_LENGTH = 8192


class BrokerTokenVerifier(Protocol):
    """Verifies service tokens: a :class:`~energy_auth.TokenManager` or :class:`~energy_auth.JWKSVerifier`."""

    async def verify_token_async(self, token: str, token_type: Any = "access") -> dict[str, Any]:  # noqa: S107 - a token type
        """Verify ``token`` and return its claims, or raise an AuthenticationError."""
        ...


class _Outcome(Protocol):
    @property
    def allowed(self) -> bool: ...


class RateLimiter(Protocol):
    """What rate limits attempts: ``energy_common.cache.RateLimitCache`` (memory or Redis)."""

    async def check_rate_limit(self, key: tuple[object, ...], *, limit: int, window_seconds: float) -> _Outcome:
        """Count one attempt for ``key``; the result's ``allowed`` says whether it may proceed."""
        ...


@dataclass(frozen=True, slots=True)
class AuthnDecision:
    """The outcome of one broker authentication.

    Attributes:
        allowed: Whether the client may connect.
        reason: ``"ok"``, ``"malformed"``, ``"unknown"``, ``"invalid_credentials"``,
            ``"client_id_mismatch"``, ``"rate_limited"`` or ``"unavailable"`` (for logs and metrics; never sent
            to the client).
        identity: Who connected (role and token expiry filled), when allowed.
    """

    allowed: bool
    reason: str
    identity: BrokerIdentity | None = None


class BrokerAuthenticator:
    """Decide broker authentication and topic access from device credentials, tokens and one policy.

    Devices connect with username = device id and password = their secret; services with
    username ``svc:<name>`` (or ``svc:<role>:<name>``) and password = a short-lived access
    token whose ``sub`` is ``<name>`` and whose roles include the service role.

    Args:
        policy: The access policy.
        credentials: Device credentials (``None``: no device may connect).
        tokens: Verifies service tokens (``None``: no service may connect). Give it its
            own audience (e.g. ``"mqtt"``) so broker tokens do not open the HTTP APIs.
        rate_limiter: Limits attempts per username, e.g.
            ``RateLimitCache(MemoryBackend())`` or ``RateLimitCache(redis)`` shared by
            the replicas; ``None`` disables the limit (pass it explicitly).
        attempts: Attempts allowed per username and ``window``.
        window: The rate-limit window.
        default_service_role: The role of a ``svc:<name>`` username without a role.
        client_id_rule: ``(device_id, client_id) -> bool``, checked at CONNECT for devices,
            e.g. :func:`client_id_is_device_id`. Without it a device may use any client id,
            so it can take over (and disconnect) another device's session; the read ACL
            still keeps that session's commands from it on brokers that check deliveries
            (Mosquitto, go-auth ``acc=1``).
    """

    def __init__(
        self,
        policy: AccessPolicy,
        credentials: DeviceCredentials | None,
        *,
        tokens: BrokerTokenVerifier | None = None,
        rate_limiter: RateLimiter | None,
        attempts: int = 30,
        window: timedelta = timedelta(minutes=1),
        default_service_role: str = "service",
        client_id_rule: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.policy = policy
        self.credentials = credentials
        self.tokens = tokens
        self.rate_limiter = rate_limiter
        self.attempts = attempts
        self.window = window.total_seconds()
        self.default_service_role = default_service_role
        self.client_id_rule = client_id_rule
        self.stats: Counter[str] = Counter()

    def _identity(self, username: object) -> BrokerIdentity | None:
        return parse_username(username, default_service_role=self.default_service_role)

    async def authenticate(self, username: object, password: object, client_id: object = None) -> AuthnDecision:
        """Decide a CONNECT. Never raises: every failure is a refusal with a reason.

        Args:
            username: The MQTT username, as the broker sent it.
            password: The MQTT password.
            client_id: The MQTT client id (not used for the decision; logged).
        """
        decision = await self._authenticate(username, password, client_id)
        self.stats[decision.reason] += 1
        if not decision.allowed:
            # The password is never logged; the username only shortened and escaped.
            logger.info("Broker authentication refused (%s) for username %s.", decision.reason, _shown(username))
        return decision

    async def _authenticate(self, username: object, password: object, client_id: object) -> AuthnDecision:
        identity = self._identity(username)
        if identity is None or not isinstance(password, str) or not password or len(password) > MAX_PASSWORD_LENGTH:
            return AuthnDecision(False, "malformed")
        rule = self.client_id_rule if identity.kind == "device" else None
        if rule is not None and (not isinstance(client_id, str) or not rule(identity.name, client_id)):
            return AuthnDecision(False, "client_id_mismatch")
        try:
            if self.rate_limiter is not None:
                outcome = await self.rate_limiter.check_rate_limit(
                    ("mqtt-auth", str(username)), limit=self.attempts, window_seconds=self.window
                )
                if not outcome.allowed:
                    return AuthnDecision(False, "rate_limited")
            if identity.kind == "device":
                return await self._device(identity, password)
            return await self._service(identity, password)
        except AuthenticationError:
            return AuthnDecision(False, "invalid_credentials")
        except EnergyError as exc:  # the store, the limiter or the JWKS is unreachable: fail closed
            logger.warning("Broker authentication unavailable: %s (%s).", type(exc).__name__, exc.error_code)
            return AuthnDecision(False, "unavailable")

    async def _device(self, identity: BrokerIdentity, password: str) -> AuthnDecision:
        if self.credentials is None:
            return AuthnDecision(False, "unknown")
        record = await self.credentials.authenticate(identity.name, password)
        if record.role not in self.policy.device_roles:
            return AuthnDecision(False, "unknown")
        return AuthnDecision(True, "ok", replace(identity, role=record.role))

    async def _service(self, identity: BrokerIdentity, password: str) -> AuthnDecision:
        if self.tokens is None or identity.role not in self.policy.service_roles:
            return AuthnDecision(False, "unknown")
        claims = await self.tokens.verify_token_async(password, "access")
        principal = Principal.from_claims(claims)
        if principal.subject != identity.name or identity.role not in self.policy.hierarchy.expand(principal.roles):
            return AuthnDecision(False, "invalid_credentials")
        exp = claims.get("exp")
        return AuthnDecision(
            True, "ok", replace(identity, expires_at=float(exp) if isinstance(exp, int | float) else None)
        )

    async def authorize(self, username: object, client_id: object, action: str, topic: object) -> bool:
        """Decide a PUBLISH (``"publish"``), SUBSCRIBE (``"subscribe"``) or delivery (``"read"``).

        A device's role is read from its stored credential on every call, so a revoked
        device is refused at once (as fast as the broker's own ACL cache allows). Never
        raises: an unknown client, a bad topic or an unavailable store is a refusal.
        """
        identity = self._identity(username)
        allowed = False
        try:
            if identity is not None and identity.kind == "service":
                allowed = identity.role in self.policy.service_roles and self.policy.allows(
                    identity.role or "",
                    action,
                    topic,
                    client_id=_text(client_id),
                )
            elif identity is not None and self.credentials is not None:
                record = await self.credentials.store.get(identity.name)
                allowed = (
                    record is not None
                    and not record.revoked
                    and record.role in self.policy.device_roles
                    and self.policy.allows(
                        record.role,
                        action,
                        topic,
                        device_id=identity.name,
                        client_id=_text(client_id),
                    )
                )
        except EnergyError as exc:
            logger.warning("Broker authorization unavailable: %s (%s).", type(exc).__name__, exc.error_code)
            allowed = False
        self.stats["acl_allow" if allowed else "acl_deny"] += 1
        return allowed

    def knows(self, username: object) -> bool:
        """Tell whether ``username`` is a well-formed device or service username."""
        return self._identity(username) is not None

    def __repr__(self) -> str:
        return f"BrokerAuthenticator(policy={self.policy!r}, credentials={self.credentials!r})"


def issue_service_token(
    tokens: TokenManager, name: str, *, role: str = "service", ttl: timedelta = timedelta(minutes=10)
) -> str:
    """Issue the short-lived MQTT password of service ``name`` with a TokenManager.

    Pair it with ``service_username(name)`` (or ``service_username(name, role)`` for a
    role other than the default). Issue a fresh one before each (re)connect.

    Example:
        >>> password = issue_service_token(mqtt_tokens, "device-manager")  # doctest: +SKIP
    """
    token: str = tokens.create_access_token({"sub": name, "roles": [role]}, expires_in=ttl)
    return token


def client_id_is_device_id(device_id: str, client_id: str) -> bool:
    """A ``client_id_rule``: the device must connect with its device id as client id."""
    return client_id == device_id


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _shown(username: object) -> str:
    if not isinstance(username, str):
        return f"<{type(username).__name__}>"
    return repr(username[:64]) + (f"... ({len(username)} chars)" if len(username) > 64 else "")
