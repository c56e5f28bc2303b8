"""energy-auth: JWT tokens, argon2id passwords, permissions and (extra ``web``) FastAPI security.

``import energy_auth`` needs only PyJWT, cryptography and argon2-cffi. The FastAPI
dependencies live in :mod:`energy_auth.fastapi` (extra ``web``), the Redis revocation
store in :mod:`energy_auth.redis` (extra ``redis``). Device credentials are in
:mod:`energy_auth.devices`, broker authentication in :mod:`energy_auth.broker`; the
access policy (:class:`AccessPolicy`) drives both the broker's ACLs and the HTTP guards.

Example:
    >>> import secrets
    >>> from energy_auth import PermissionChecker, TokenManager
    >>> token_manager = TokenManager(secrets.token_urlsafe(32))
    >>> token = token_manager.create_access_token({"user_id": "123", "role": "admin"})
    >>> token_manager.verify_token(token)["user_id"]
    '123'
    >>> PermissionChecker.has_permission(["users:*"], "users:read")
    True
"""

from energy_auth.__about__ import __version__
from energy_auth._api_keys import (
    APIKeyAuthenticator,
    APIKeyRecord,
    APIKeyStore,
    InMemoryAPIKeyStore,
    MutableAPIKeyStore,
    NewAPIKey,
    generate_api_key,
    hash_api_key,
    rotate_api_key,
)
from energy_auth._claims import TokenType
from energy_auth._errors import (
    InvalidAlgorithmError,
    InvalidAPIKeyError,
    InvalidAudienceError,
    InvalidCredentialsError,
    InvalidIssuerError,
    InvalidSignatureError,
    InvalidTokenError,
    JWKSUnavailableError,
    MalformedTokenError,
    MissingClaimError,
    MissingCredentialsError,
    PasswordPolicyError,
    PermissionDeniedError,
    RoleRequiredError,
    TokenExpiredError,
    TokenNotYetValidError,
    TokenRevokedError,
    TokenTooLargeError,
    UnknownKeyError,
    WeakKeyError,
    WrongTokenTypeError,
)
from energy_auth._jwks import JWKSFetcher, JWKSVerifier, jwks_url_fetcher
from energy_auth._keys import SUPPORTED_ALGORITHMS, JWTKey
from energy_auth._keyset import KeySet
from energy_auth._legacy_hashes import LEGACY_SCHEMES, LegacyScheme
from energy_auth._passwords import PasswordHasher
from energy_auth._permissions import DEFAULT_ROLE_HIERARCHY, PermissionChecker, RoleHierarchy
from energy_auth._policy import (
    DEFAULT_ACCESS_POLICY,
    AccessPolicy,
    PolicyError,
    RolePolicy,
    topic_allowed,
)
from energy_auth._principal import Principal
from energy_auth._revocation import InMemoryRevocationStore, RevocationStore
from energy_auth._throttle import LoginThrottle, ThrottleStore
from energy_auth._tokens import TokenManager, TokenPair
from energy_auth._topics import filter_covers, topic_matches

__all__ = [
    "DEFAULT_ACCESS_POLICY",
    "DEFAULT_ROLE_HIERARCHY",
    "LEGACY_SCHEMES",
    "SUPPORTED_ALGORITHMS",
    "APIKeyAuthenticator",
    "APIKeyRecord",
    "APIKeyStore",
    "AccessPolicy",
    "InMemoryAPIKeyStore",
    "InMemoryRevocationStore",
    "InvalidAPIKeyError",
    "InvalidAlgorithmError",
    "InvalidAudienceError",
    "InvalidCredentialsError",
    "InvalidIssuerError",
    "InvalidSignatureError",
    "InvalidTokenError",
    "JWKSFetcher",
    "JWKSUnavailableError",
    "JWKSVerifier",
    "JWTKey",
    "KeySet",
    "LegacyScheme",
    "LoginThrottle",
    "MalformedTokenError",
    "MissingClaimError",
    "MissingCredentialsError",
    "MutableAPIKeyStore",
    "NewAPIKey",
    "PasswordHasher",
    "PasswordPolicyError",
    "PermissionChecker",
    "PermissionDeniedError",
    "PolicyError",
    "Principal",
    "RevocationStore",
    "RoleHierarchy",
    "RolePolicy",
    "RoleRequiredError",
    "ThrottleStore",
    "TokenExpiredError",
    "TokenManager",
    "TokenNotYetValidError",
    "TokenPair",
    "TokenRevokedError",
    "TokenTooLargeError",
    "TokenType",
    "UnknownKeyError",
    "WeakKeyError",
    "WrongTokenTypeError",
    "__version__",
    "filter_covers",
    "generate_api_key",
    "hash_api_key",
    "jwks_url_fetcher",
    "rotate_api_key",
    "topic_allowed",
    "topic_matches",
]
