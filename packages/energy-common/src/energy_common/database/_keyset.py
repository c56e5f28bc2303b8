"""Keyset pagination clauses: the sort key of a page and the rows strictly after a cursor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, tuple_
from sqlalchemy.orm import Mapper

from energy_common.database._filters import column_attribute
from energy_common.exceptions import ValidationError

__all__ = ["after_clause", "keyset_columns"]


def keyset_columns(
    model: type[Any], mapper: Mapper[Any], pk_name: str, order_by: str | Sequence[str] | None
) -> list[tuple[str, bool]]:
    """``(column, descending)`` pairs of the order, the primary key appended as tie-breaker.

    Raises:
        ValidationError: An unknown or nullable column (NULLs have no place in a row comparison).
    """
    names = [] if order_by is None else [order_by] if isinstance(order_by, str) else list(order_by)
    keys: list[tuple[str, bool]] = []
    for raw in names:
        desc = isinstance(raw, str) and raw.startswith("-")
        name = raw[1:] if desc else raw
        column = column_attribute(model, mapper, name).property.columns[0]
        if column.nullable:
            raise ValidationError(f"paginate_after cannot order by nullable column {name!r}.", {"field": name})
        keys.append((name, desc))
    if pk_name not in {name for name, _ in keys}:
        keys.append((pk_name, keys[-1][1] if keys else False))
    return keys


def after_clause(model: type[Any], keys: list[tuple[str, bool]], values: list[Any]) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in the keyset order (a row comparison when all go one way)."""
    columns = [getattr(model, name) for name, _ in keys]
    if all(desc == keys[0][1] for _, desc in keys):
        left, right = tuple_(*columns), tuple_(*values)
        return left < right if keys[0][1] else left > right
    alternatives: list[ColumnElement[bool]] = []
    for i, ((_, desc), column) in enumerate(zip(keys, columns, strict=True)):
        step = column < values[i] if desc else column > values[i]
        alternatives.append(and_(*(c == v for c, v in zip(columns[:i], values[:i], strict=True)), step))
    return or_(false(), *alternatives)
