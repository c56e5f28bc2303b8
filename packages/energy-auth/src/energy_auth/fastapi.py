"""FastAPI security dependencies (extra ``web``): Bearer tokens, API keys, permissions, roles.

Call :func:`install_auth` once, then use the dependencies on routes::

    app = FastAPI()
    install_exception_handlers(app)  # energy_common.middleware: errors -> envelope
    install_auth(app, TokenManager(secret), api_keys=APIKeyAuthenticator(key_store))


    @app.get("/users", dependencies=[Depends(require_permission("users:read"))])
    async def list_users() -> list[User]: ...


    @app.get("/me")
    async def me(user: Annotated[Principal, Depends(get_current_user)]) -> dict: ...

Failures are raised as energy errors: 401s carry a ``WWW-Authenticate`` challenge in
``exc.headers`` (RFC 6750), 403s name the missing permission or role; the exception
handlers of ``energy_common.middleware`` render both as the standard error envelope.
"""

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from energy_common._extras import missing_extra
from energy_common.exceptions import AuthenticationError, ConfigurationError

try:
    from fastapi import Depends, FastAPI, Request
    from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
except ImportError as exc:  # pragma: no cover - exercised by the packaging tests
    raise missing_extra("energy-auth", "web", exc) from exc

from energy_auth._api_keys import APIKeyAuthenticator
from energy_auth._claims import TokenType
from energy_auth._errors import MissingCredentialsError, PermissionDeniedError, RoleRequiredError
from energy_auth._permissions import DEFAULT_ROLE_HIERARCHY, PermissionChecker, RoleHierarchy
from energy_auth._policy import AccessPolicy
from energy_auth._principal import Principal

__all__ = [
    "API_KEY_HEADER",
    "AuthConfig",
    "TokenVerifier",
    "get_api_key_principal",
    "get_current_user",
    "get_principal",
    "install_auth",
    "require_permission",
    "require_role",
]

API_KEY_HEADER = "X-API-Key"


class TokenVerifier(Protocol):
    """What the dependencies verify tokens with: a TokenManager or a JWKSVerifier."""

    async def verify_token_async(self, token: str, token_type: TokenType = "access") -> dict[str, Any]:  # noqa: S107 - a token type
        """Verify ``token`` and return its payload, or raise an AuthenticationError."""
        ...


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """The authentication setup of one app (stored on ``app.state.energy_auth``).

    Attributes:
        verifier: Verifies Bearer tokens.
        api_keys: Authenticates ``X-API-Key`` headers; ``None`` disables API keys.
        hierarchy: Role inclusion used by :func:`require_role`.
        realm: The realm named in ``WWW-Authenticate``.
        permissions_claim: Token claim listing permissions.
        roles_claim: Token claim listing roles (the seed's single ``role`` is read too).
        policy: An access policy whose role permissions are added to every caller's.
    """

    verifier: TokenVerifier
    api_keys: APIKeyAuthenticator | None = None
    hierarchy: RoleHierarchy = DEFAULT_ROLE_HIERARCHY
    realm: str = "api"
    permissions_claim: str = "permissions"
    roles_claim: str = "roles"
    policy: AccessPolicy | None = None


def install_auth(
    app: FastAPI,
    verifier: TokenVerifier,
    *,
    api_keys: APIKeyAuthenticator | None = None,
    hierarchy: RoleHierarchy | None = None,
    realm: str = "api",
    permissions_claim: str = "permissions",
    roles_claim: str = "roles",
    policy: AccessPolicy | None = None,
) -> AuthConfig:
    """Configure the dependencies of this module for ``app``; return the configuration.

    With ``policy`` (an :class:`~energy_auth.AccessPolicy`), a caller holding a role also
    holds that role's permissions in the policy, so ``require_permission`` follows the
    same roles as the broker's ACLs; ``hierarchy`` then defaults to the policy's includes.
    """
    if hierarchy is None:
        hierarchy = policy.hierarchy if policy is not None else DEFAULT_ROLE_HIERARCHY
    config = AuthConfig(verifier, api_keys, hierarchy, realm, permissions_claim, roles_claim, policy)
    app.state.energy_auth = config
    return config


def _config(request: Request) -> AuthConfig:
    config = getattr(request.app.state, "energy_auth", None)
    if not isinstance(config, AuthConfig):
        raise ConfigurationError("energy_auth is not set up: call install_auth(app, verifier) at startup.")
    return config


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")


def _challenge(exc: AuthenticationError, config: AuthConfig, error: str | None) -> AuthenticationError:
    value = f'Bearer realm="{_quote(config.realm)}"'
    if error is not None:
        value += f', error="{error}", error_description="{_quote(exc.message)}"'
    exc.headers["WWW-Authenticate"] = value
    return exc


_bearer_scheme = HTTPBearer(auto_error=False, scheme_name="BearerToken", description="An access token.")
_api_key_scheme = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, scheme_name="APIKey")
_Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)]
_APIKey = Annotated[str | None, Depends(_api_key_scheme)]


async def _from_bearer(config: AuthConfig, token: str) -> Principal:
    try:
        claims = await config.verifier.verify_token_async(token, "access")
        principal = Principal.from_claims(
            claims, permissions_claim=config.permissions_claim, roles_claim=config.roles_claim
        )
        return principal if config.policy is None else config.policy.grant(principal)
    except AuthenticationError as exc:
        raise _challenge(exc, config, "invalid_token") from None


def _missing(request: Request, config: AuthConfig) -> AuthenticationError:
    if request.headers.get("authorization"):
        exc = MissingCredentialsError("The Authorization header must use the Bearer scheme: 'Bearer <token>'.")
        return _challenge(exc, config, "invalid_request")
    return _challenge(MissingCredentialsError(), config, None)


async def get_current_user(request: Request, credentials: _Bearer) -> Principal:
    """Dependency: the user of a valid ``Authorization: Bearer <access token>``.

    Raises:
        MissingCredentialsError: No Bearer token (401 with a ``WWW-Authenticate`` challenge).
        InvalidTokenError: The token is refused (401, ``error="invalid_token"``).
    """
    config = _config(request)
    if credentials is None:
        raise _missing(request, config)
    return await _from_bearer(config, credentials.credentials)


async def get_api_key_principal(request: Request, api_key: _APIKey) -> Principal:
    """Dependency: the device or service of a valid ``X-API-Key`` header.

    Raises:
        MissingCredentialsError: No key sent, or API keys are not enabled (401).
        InvalidAPIKeyError: The key is refused (401).
    """
    config = _config(request)
    if config.api_keys is None or not api_key:
        raise _challenge(MissingCredentialsError(f"Send an API key in the {API_KEY_HEADER} header."), config, None)
    try:
        principal = await config.api_keys.authenticate(api_key)
    except AuthenticationError as exc:
        raise _challenge(exc, config, None) from None
    return principal if config.policy is None else config.policy.grant(principal)


async def get_principal(request: Request, credentials: _Bearer, api_key: _APIKey) -> Principal:
    """Dependency: a user (Bearer token) or, when enabled, a device/service (API key).

    Raises:
        MissingCredentialsError: Neither credential was sent (401).
        InvalidTokenError: The token is refused (401).
        InvalidAPIKeyError: The API key is refused (401).
    """
    config = _config(request)
    if credentials is not None:
        return await _from_bearer(config, credentials.credentials)
    if api_key and config.api_keys is not None:
        return await get_api_key_principal(request, api_key)
    raise _missing(request, config)


def require_permission(*permissions: str) -> Callable[..., Awaitable[Principal]]:
    """Build a dependency that needs every one of ``permissions``; it returns the principal.

    Raises:
        ValueError: At definition time, for a malformed or wildcard permission.

    The dependency raises :class:`PermissionDeniedError` (403) when one is missing and
    the 401 errors of :func:`get_principal` when the caller is not authenticated.
    """
    required = _checked(permissions)

    async def dependency(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        missing = [p for p in required if not PermissionChecker.has_permission(principal.permissions, p)]
        if missing:
            raise PermissionDeniedError(
                f"This action needs the permission {missing[0]!r}; ask an administrator to grant it.",
                {"required": missing},
            )
        return principal

    return dependency


def require_role(role: str) -> Callable[..., Awaitable[Principal]]:
    """Build a dependency that needs ``role`` (directly or through the hierarchy).

    The dependency raises :class:`RoleRequiredError` (403) without it.
    """
    if not isinstance(role, str) or not role:
        raise ValueError("require_role needs a non-empty role name.")

    async def dependency(request: Request, principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not PermissionChecker.has_role(principal.roles, role, _config(request).hierarchy):
            raise RoleRequiredError(f"This action needs the role {role!r}.", {"required": role})
        return principal

    return dependency


def _checked(permissions: Iterable[str]) -> tuple[str, ...]:
    required = tuple(permissions)
    if not required:
        raise ValueError("require_permission needs at least one permission.")
    for permission in required:
        PermissionChecker.has_permission((), permission)  # raises ValueError when malformed
    return required
