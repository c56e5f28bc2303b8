"""Checked filters and ordering: user-supplied names are looked up, never spliced into SQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, UnaryExpression
from sqlalchemy.orm import InstrumentedAttribute, Mapper

from energy_common.exceptions import ValidationError

__all__ = ["build_filters", "build_order_by", "column_attribute", "column_names"]


def column_names(mapper: Mapper[Any]) -> frozenset[str]:
    """Return the attribute names of the mapped columns of ``mapper``."""
    return frozenset(mapper.columns.keys())


def column_attribute(model: type[Any], mapper: Mapper[Any], name: object) -> InstrumentedAttribute[Any]:
    """Return the mapped column attribute called ``name``.

    Raises:
        ValidationError: ``name`` is not a mapped column of the model.
    """
    if not isinstance(name, str) or name not in mapper.columns:
        raise ValidationError(
            f"Unknown field {str(name)[:64]!r} for {model.__name__}; use one of its columns.",
            {"field": str(name)[:64], "allowed": sorted(column_names(mapper))},
        )
    attribute: InstrumentedAttribute[Any] = getattr(model, name)
    return attribute


def build_filters(model: type[Any], mapper: Mapper[Any], filters: Mapping[str, Any]) -> list[ColumnElement[bool]]:
    """Turn ``{name: value}`` into WHERE clauses: equality, ``IS NULL`` for None, ``IN`` for lists.

    Raises:
        ValidationError: A name is not a mapped column.
    """
    clauses: list[ColumnElement[bool]] = []
    for name, value in filters.items():
        attribute = column_attribute(model, mapper, name)
        if value is None:
            clauses.append(attribute.is_(None))
        elif isinstance(value, (list, tuple, set, frozenset)):
            clauses.append(attribute.in_(list(value)))
        else:
            clauses.append(attribute == value)
    return clauses


def build_order_by(
    model: type[Any], mapper: Mapper[Any], order_by: str | Sequence[str] | None
) -> list[UnaryExpression[Any] | InstrumentedAttribute[Any]]:
    """Turn ``"name"`` / ``"-created_at"`` (descending) or a list of them into ORDER BY terms.

    Raises:
        ValidationError: A name is not a mapped column.
    """
    if order_by is None:
        return []
    names = [order_by] if isinstance(order_by, str) else list(order_by)
    terms: list[UnaryExpression[Any] | InstrumentedAttribute[Any]] = []
    for raw in names:
        descending = isinstance(raw, str) and raw.startswith("-")
        attribute = column_attribute(model, mapper, raw[1:] if descending else raw)
        terms.append(attribute.desc() if descending else attribute.asc())
    return terms
