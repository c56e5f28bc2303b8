"""UTC time helpers: aware datetimes only."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["ensure_utc", "format_utc", "utc_now"]


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` converted to UTC; a naive datetime is taken to be UTC already.

    Example:
        >>> from datetime import datetime, timedelta, timezone
        >>> ensure_utc(datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))).hour
        10
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_utc(value: datetime) -> str:
    """Format a datetime as ISO 8601 in UTC with a ``Z`` suffix.

    Example:
        >>> from datetime import datetime
        >>> format_utc(datetime(2026, 1, 1, 12, 30))
        '2026-01-01T12:30:00Z'
    """
    return ensure_utc(value).isoformat().replace("+00:00", "Z")
