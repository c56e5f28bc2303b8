"""``Page`` (offset pages with the total) and ``CursorPage`` (keyset pages with the next cursor)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["CursorPage", "Page"]

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


@dataclass(frozen=True, slots=True)
class CursorPage(Generic[T]):
    """A keyset page: ``items`` and the opaque cursor of the next page.

    Attributes:
        items: The rows of this page, in the requested order.
        next_cursor: Pass to ``paginate_after`` for the next page; None on the last one.
        limit: Page size asked for.
    """

    items: list[T]
    next_cursor: str | None
    limit: int

    @property
    def has_next(self) -> bool:
        """Whether a later page exists."""
        return self.next_cursor is not None
