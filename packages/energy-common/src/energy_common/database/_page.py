"""``Page``: one page of results plus the total, ready for ``APIResponse.paginated``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["Page"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """A page of ``items`` and the ``total`` number of matching rows.

    Attributes:
        items: The rows of this page.
        total: Rows matching the filters, over all pages.
        page: 1-based page number.
        limit: Page size asked for.

    Example:
        >>> page = Page(items=["a", "b"], total=5, page=1, limit=2)
        >>> page.pages, page.has_next
        (3, True)
    """

    items: list[T]
    total: int
    page: int
    limit: int

    @property
    def pages(self) -> int:
        """Number of pages (0 when nothing matches)."""
        return math.ceil(self.total / self.limit) if self.limit else 0

    @property
    def has_next(self) -> bool:
        """Whether a later page exists."""
        return self.page < self.pages
