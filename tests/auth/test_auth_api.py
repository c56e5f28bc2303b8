"""Tests for the public surface of energy_auth: __all__, __version__, import footprint, extras."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import energy_auth
import pytest

EXPECTED_ALL = [
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

ERROR_CODES = {
    "MissingCredentialsError": (401, "CREDENTIALS_MISSING"),
    "InvalidCredentialsError": (401, "INVALID_CREDENTIALS"),
    "InvalidAPIKeyError": (401, "API_KEY_INVALID"),
    "InvalidTokenError": (401, "TOKEN_INVALID"),
    "MalformedTokenError": (401, "TOKEN_MALFORMED"),
    "TokenTooLargeError": (401, "TOKEN_TOO_LARGE"),
    "InvalidSignatureError": (401, "TOKEN_SIGNATURE_INVALID"),
    "InvalidAlgorithmError": (401, "TOKEN_ALGORITHM_NOT_ALLOWED"),
    "UnknownKeyError": (401, "TOKEN_KEY_UNKNOWN"),
    "MissingClaimError": (401, "TOKEN_CLAIM_MISSING"),
    "TokenExpiredError": (401, "TOKEN_EXPIRED"),
    "TokenNotYetValidError": (401, "TOKEN_NOT_YET_VALID"),
    "InvalidAudienceError": (401, "TOKEN_AUDIENCE_INVALID"),
    "InvalidIssuerError": (401, "TOKEN_ISSUER_INVALID"),
    "WrongTokenTypeError": (401, "TOKEN_TYPE_INVALID"),
    "TokenRevokedError": (401, "TOKEN_REVOKED"),
    "PermissionDeniedError": (403, "PERMISSION_DENIED"),
    "RoleRequiredError": (403, "ROLE_REQUIRED"),
    "WeakKeyError": (500, "WEAK_KEY"),
    "PasswordPolicyError": (400, "PASSWORD_INVALID"),
    "JWKSUnavailableError": (503, "JWKS_UNAVAILABLE"),
    "PolicyError": (500, "POLICY_INVALID"),
}


def test_all_is_pinned_and_sorted() -> None:
    """__all__ is exactly the documented public API, sorted as ruff sorts it."""
    assert energy_auth.__all__ == EXPECTED_ALL
    assert all(hasattr(energy_auth, name) for name in energy_auth.__all__)


def test_version() -> None:
    """__version__ is the distribution's version."""
    assert energy_auth.__version__ == "0.1.0"


@pytest.mark.parametrize(("name", "expected"), sorted(ERROR_CODES.items()))
def test_error_codes_are_stable(name: str, expected: tuple[int, str]) -> None:
    """Each error class has its documented status and stable error_code, below the energy tree."""
    cls = getattr(energy_auth, name)
    assert (cls.status_code, cls.error_code) == expected
    assert cls().message


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60, check=False
    )


def test_import_footprint() -> None:
    """import energy_auth pulls in no web framework, Redis, HTTP client or database library."""
    result = _run(
        """
        import sys, energy_auth
        heavy = {"fastapi", "starlette", "redis", "httpx", "sqlalchemy", "asyncpg", "passlib"}
        print(sorted(heavy & {name.split(".")[0] for name in sys.modules}))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("energy_auth.fastapi", "fastapi", "web"),
        ("energy_auth.redis", "redis", "redis"),
        ("energy_auth.devices.redis", "redis", "redis"),
        ("energy_auth.devices.sql", "sqlalchemy", "sql"),
        ("energy_auth.broker.fastapi", "fastapi", "web"),
        ("energy_auth.api_keys_redis", "redis", "redis"),
        ("energy_auth.api_keys_sql", "sqlalchemy", "sql"),
    ],
)
def test_missing_extra_names_the_install_command(module: str, blocked: str, extra: str) -> None:
    """Without its extra, a module fails with an ImportError that says what to install."""
    result = _run(
        f"""
        import sys
        sys.modules[{blocked!r}] = None
        try:
            import {module}
        except ImportError as exc:
            print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    assert f"pip install 'energy-auth[{extra}]'" in result.stdout


def test_readme_seed_example_runs_as_written() -> None:
    """The seed example in the package README runs unchanged and gives the expected answers."""
    readme = Path(__file__).resolve().parents[2] / "packages" / "energy-auth" / "README.md"
    if not readme.exists():
        pytest.skip("the package README is not next to the tests (installed without the repository)")
    text = readme.read_text(encoding="utf-8")
    block = text.split("<!-- seed-example -->\n```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(compile(block, str(readme), "exec"), namespace)  # noqa: S102 - our own README, on purpose
    assert namespace["payload"]["user_id"] == "123"  # type: ignore[index]
    assert namespace["has_perm"] is True
    assert namespace["has_role"] is True
