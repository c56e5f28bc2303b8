"""Helpers for modules that need an optional extra."""

from __future__ import annotations

__all__ = ["missing_extra"]


def missing_extra(distribution: str, extra: str, exc: ImportError) -> ImportError:
    """Build the ImportError raised when a module's extra is not installed.

    Args:
        distribution: The distribution that declares the extra, e.g. ``"energy-common"``.
        extra: The extra's name, e.g. ``"cache"``.
        exc: The original ImportError (its missing module is named in the message).

    Example:
        >>> try:
        ...     import redis.asyncio  # noqa: F401
        ... except ImportError as exc:  # doctest: +SKIP
        ...     raise missing_extra("energy-common", "cache", exc) from exc
    """
    missing = getattr(exc, "name", None) or str(exc)
    return ImportError(
        f"This feature needs the '{extra}' extra of {distribution} (missing module: {missing}). "
        f"Install it with: pip install '{distribution}[{extra}]'"
    )
