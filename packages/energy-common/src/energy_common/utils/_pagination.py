"""Pagination parameters (page/limit) shared by the repository and the web layer."""

from __future__ import annotations

from dataclasses import dataclass

from energy_common.exceptions import ValidationError

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "PaginationParams"]

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


@dataclass(frozen=True, slots=True)
class PaginationParams:
    """A validated page request: 1-based ``page`` and ``limit`` items per page.

    Args:
        page: Page number, from 1.
        limit: Items per page, from 1 to ``max_limit``.
        max_limit: Largest ``limit`` accepted.

    Raises:
        ValidationError: ``page`` or ``limit`` out of range (``details.field`` names it).

    Example:
        >>> params = PaginationParams(page=3, limit=10)
        >>> params.offset
        20
    """

    page: int = 1
    limit: int = DEFAULT_LIMIT
    max_limit: int = MAX_LIMIT

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("page", self.page, 1, None),
            ("limit", self.limit, 1, self.max_limit),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
                bounds = f">= {low}" if high is None else f"between {low} and {high}"
                raise ValidationError(
                    f"'{name}' must be an integer {bounds}, got {value!r}.",
                    {"field": name, "minimum": low, "maximum": high},
                )

    @property
    def offset(self) -> int:
        """Number of items before this page (for ``OFFSET``)."""
        return (self.page - 1) * self.limit
