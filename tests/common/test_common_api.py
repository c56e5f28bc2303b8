"""The top-level public API of energy_common is pinned and importing it stays light."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import energy_common
import pytest

EXPECTED_ALL = [
    "AuthenticationError",
    "AuthorizationError",
    "CacheConnectionError",
    "CacheError",
    "ConfigurationError",
    "ConflictError",
    "DatabaseConnectionError",
    "DatabaseError",
    "EnergyError",
    "ExternalServiceError",
    "MessagingConnectionError",
    "MessagingError",
    "OutOfRangeError",
    "PayloadTooLargeError",
    "RateLimitExceededError",
    "ResourceNotFoundError",
    "ServiceUnavailableError",
    "ValidationError",
    "__version__",
    "correlation_scope",
    "get_correlation_id",
    "new_correlation_id",
    "set_correlation_id",
]


def test_all_is_pinned_and_resolvable() -> None:
    """__all__ is exactly the documented list, sorted, and every name resolves."""
    assert energy_common.__all__ == EXPECTED_ALL
    for name in energy_common.__all__:
        assert hasattr(energy_common, name), name


def test_version_matches_distribution_metadata() -> None:
    """__version__ is the installed distribution's version (one static __about__.py)."""
    assert energy_common.__version__ == importlib.metadata.version("energy-common")


@pytest.mark.parametrize(
    "statement",
    [
        "import energy_common",
        "import energy_common.exceptions, energy_common.context, energy_common.propagation, energy_common.asgi",
    ],
)
def test_core_import_does_not_load_extras(statement: str) -> None:
    """The core modules import none of the libraries that the extras bring."""
    heavy = ("fastapi", "starlette", "sqlalchemy", "redis", "httpx", "psutil", "asyncpg", "aiosqlite")
    code = f"import sys; {statement}; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""
