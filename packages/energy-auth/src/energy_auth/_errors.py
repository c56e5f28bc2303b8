"""The errors of energy-auth, all below the energy_common exception tree.

Every failure to authenticate is a 401 :class:`~energy_common.exceptions.AuthenticationError`,
every failure to authorise a 403 :class:`~energy_common.exceptions.AuthorizationError`,
each with a stable ``error_code`` a client can branch on::

    AuthenticationError                 401  AUTHENTICATION_ERROR
    ├── MissingCredentialsError         401  CREDENTIALS_MISSING
    ├── InvalidCredentialsError         401  INVALID_CREDENTIALS
    ├── InvalidAPIKeyError              401  API_KEY_INVALID
    └── InvalidTokenError               401  TOKEN_INVALID
        ├── MalformedTokenError         401  TOKEN_MALFORMED
        │   └── TokenTooLargeError      401  TOKEN_TOO_LARGE
        ├── InvalidSignatureError       401  TOKEN_SIGNATURE_INVALID
        │   ├── InvalidAlgorithmError   401  TOKEN_ALGORITHM_NOT_ALLOWED
        │   └── UnknownKeyError         401  TOKEN_KEY_UNKNOWN
        ├── MissingClaimError           401  TOKEN_CLAIM_MISSING
        ├── TokenExpiredError           401  TOKEN_EXPIRED
        ├── TokenNotYetValidError       401  TOKEN_NOT_YET_VALID
        ├── InvalidAudienceError        401  TOKEN_AUDIENCE_INVALID
        ├── InvalidIssuerError          401  TOKEN_ISSUER_INVALID
        ├── WrongTokenTypeError         401  TOKEN_TYPE_INVALID
        └── TokenRevokedError           401  TOKEN_REVOKED
    AuthorizationError                  403  AUTHORIZATION_ERROR
    ├── PermissionDeniedError           403  PERMISSION_DENIED
    └── RoleRequiredError               403  ROLE_REQUIRED
    ConfigurationError                  500  CONFIGURATION_ERROR
    └── WeakKeyError                    500  WEAK_KEY
    ValidationError                     400  VALIDATION_ERROR
    └── PasswordPolicyError             400  PASSWORD_INVALID
    ServiceUnavailableError             503  SERVICE_UNAVAILABLE
    └── JWKSUnavailableError            503  JWKS_UNAVAILABLE

Token errors never echo the token or its claims: the message says what was wrong and
what the client should do (usually: sign in again).
"""

from __future__ import annotations

from energy_common.exceptions import (
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    ServiceUnavailableError,
    ValidationError,
)

__all__ = [
    "InvalidAPIKeyError",
    "InvalidAlgorithmError",
    "InvalidAudienceError",
    "InvalidCredentialsError",
    "InvalidIssuerError",
    "InvalidSignatureError",
    "InvalidTokenError",
    "JWKSUnavailableError",
    "MalformedTokenError",
    "MissingClaimError",
    "MissingCredentialsError",
    "PasswordPolicyError",
    "PermissionDeniedError",
    "RoleRequiredError",
    "TokenExpiredError",
    "TokenNotYetValidError",
    "TokenRevokedError",
    "TokenTooLargeError",
    "UnknownKeyError",
    "WeakKeyError",
    "WrongTokenTypeError",
]


class MissingCredentialsError(AuthenticationError):
    """No credentials came with the request: send a Bearer token or an API key."""

    error_code = "CREDENTIALS_MISSING"
    default_message = "Authentication is required: send an 'Authorization: Bearer <token>' header."


class InvalidCredentialsError(AuthenticationError):
    """The user name or password is wrong (the message never says which)."""

    error_code = "INVALID_CREDENTIALS"
    default_message = "The user name or password is incorrect."


class InvalidAPIKeyError(AuthenticationError):
    """The API key is unknown, expired or does not match: use a valid key."""

    error_code = "API_KEY_INVALID"
    default_message = "The API key is invalid; check the key or ask for a new one."


class InvalidTokenError(AuthenticationError):
    """Umbrella for every reason a token is refused."""

    error_code = "TOKEN_INVALID"
    default_message = "The token is invalid; sign in again to get a new one."


class MalformedTokenError(InvalidTokenError):
    """The token is not a well-formed JWS compact JWT (segments, base64, JSON, claim types)."""

    error_code = "TOKEN_MALFORMED"
    default_message = "The token is malformed; send the token exactly as it was issued."


class TokenTooLargeError(MalformedTokenError):
    """The token is longer than the verifier accepts."""

    error_code = "TOKEN_TOO_LARGE"
    default_message = "The token is too large."


class InvalidSignatureError(InvalidTokenError):
    """The signature does not verify with the key the token names."""

    error_code = "TOKEN_SIGNATURE_INVALID"
    default_message = "The token signature is invalid; sign in again to get a new token."


class InvalidAlgorithmError(InvalidSignatureError):
    """The token header names an algorithm the verifier does not allow for its key."""

    error_code = "TOKEN_ALGORITHM_NOT_ALLOWED"
    default_message = "The token's signing algorithm is not allowed."


class UnknownKeyError(InvalidSignatureError):
    """The token names a key id (``kid``) the verifier does not hold."""

    error_code = "TOKEN_KEY_UNKNOWN"
    default_message = "The token was signed with an unknown key; sign in again to get a new token."


class MissingClaimError(InvalidTokenError):
    """A claim the verifier requires (exp, iat, nbf, jti, type, iss, aud) is absent."""

    error_code = "TOKEN_CLAIM_MISSING"
    default_message = "The token lacks a required claim."


class TokenExpiredError(InvalidTokenError):
    """The token's ``exp`` has passed: refresh it or sign in again."""

    error_code = "TOKEN_EXPIRED"
    default_message = "The token has expired; refresh it or sign in again."


class TokenNotYetValidError(InvalidTokenError):
    """The token's ``nbf`` (or ``iat``) lies in the future: check the clocks."""

    error_code = "TOKEN_NOT_YET_VALID"
    default_message = "The token is not valid yet; check that the clocks of issuer and server agree."


class InvalidAudienceError(InvalidTokenError):
    """The token was issued for another audience (service)."""

    error_code = "TOKEN_AUDIENCE_INVALID"
    default_message = "The token was issued for another audience."


class InvalidIssuerError(InvalidTokenError):
    """The token was issued by an issuer this service does not trust."""

    error_code = "TOKEN_ISSUER_INVALID"
    default_message = "The token was issued by an untrusted issuer."


class WrongTokenTypeError(InvalidTokenError):
    """An access token was used where a refresh token is needed, or the reverse."""

    error_code = "TOKEN_TYPE_INVALID"
    default_message = "The token has the wrong type for this operation."


class TokenRevokedError(InvalidTokenError):
    """The token (its ``jti``) was revoked: sign in again."""

    error_code = "TOKEN_REVOKED"
    default_message = "The token has been revoked; sign in again."


class PermissionDeniedError(AuthorizationError):
    """The caller lacks a permission the action needs."""

    error_code = "PERMISSION_DENIED"
    default_message = "You do not have the permission this action needs."


class RoleRequiredError(AuthorizationError):
    """The caller lacks the role the action needs."""

    error_code = "ROLE_REQUIRED"
    default_message = "You do not have the role this action needs."


class WeakKeyError(ConfigurationError):
    """A signing key is too short or too weak to be used; the message says how to make one."""

    error_code = "WEAK_KEY"
    default_message = "The signing key is too weak."


class PasswordPolicyError(ValidationError):
    """A password cannot be hashed: it is empty, too long or not text."""

    error_code = "PASSWORD_INVALID"
    default_message = "The password is not acceptable."


class JWKSUnavailableError(ServiceUnavailableError):
    """No key set could be fetched from the JWKS endpoint yet: retry later."""

    error_code = "JWKS_UNAVAILABLE"
    default_message = "The signing keys of the token issuer are unavailable; retry later."
