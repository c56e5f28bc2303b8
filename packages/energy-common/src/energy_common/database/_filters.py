"""Checked filters and ordering: user-supplied names are looked up, never spliced into SQL.

Filters are keyword arguments ``<column>__<operator>=value`` (``find_by(ts__gte=a,
ts__lt=b)``); a bare ``<column>=value`` is equality (``None`` → ``IS NULL``, a list →
``IN``). Keywords rather than filter objects: they read like the query, need no import,
and pass through ``find_by``/``count``/``paginate``/``paginate_after`` unchanged; the
column and the operator are both checked before any SQL is built, and every value is
range-checked against its column's type (see :func:`check_value`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Integer, SmallInteger, UnaryExpression
from sqlalchemy.orm import InstrumentedAttribute, Mapper

from energy_common.exceptions import OutOfRangeError, ValidationError

__all__ = [
    "OPERATORS",
    "build_filters",
    "build_order_by",
    "check_value",
    "column_attribute",
    "column_names",
    "split_filter",
]

_INT_BOUNDS = {SmallInteger: 2**15, Integer: 2**31, BigInteger: 2**63}
_SEQUENCES = (list, tuple, set, frozenset)


def _sequence(name: str, value: object) -> list[Any]:
    if not isinstance(value, _SEQUENCES):
        raise ValidationError(f"{name} needs a list of values.", {"field": name})
    return list(value)


def _between(attribute: InstrumentedAttribute[Any], name: str, value: object) -> ColumnElement[bool]:
    bounds = _sequence(name, value)
    if len(bounds) != 2:
        raise ValidationError(f"{name} needs exactly two values (low, high), both included.", {"field": name})
    return attribute.between(bounds[0], bounds[1])


def _is_null(attribute: InstrumentedAttribute[Any], name: str, value: object) -> ColumnElement[bool]:
    if not isinstance(value, bool):
        raise ValidationError(f"{name} needs true or false.", {"field": name})
    return attribute.is_(None) if value else attribute.is_not(None)


def _like(attribute: InstrumentedAttribute[Any], name: str, value: object) -> ColumnElement[bool]:
    if not isinstance(value, str):
        raise ValidationError(f"{name} needs a string pattern (% and _ are wildcards).", {"field": name})
    return attribute.like(value)


_Builder = Callable[[InstrumentedAttribute[Any], str, Any], ColumnElement[bool]]

#: Operator suffix → clause builder. ``in``/``not_in`` take lists, ``between`` a (low, high) pair.
OPERATORS: Mapping[str, _Builder] = {
    "eq": lambda a, _n, v: a.is_(None) if v is None else a == v,
    "ne": lambda a, _n, v: a.is_not(None) if v is None else a != v,
    "gt": lambda a, _n, v: a > v,
    "gte": lambda a, _n, v: a >= v,
    "lt": lambda a, _n, v: a < v,
    "lte": lambda a, _n, v: a <= v,
    "in": lambda a, n, v: a.in_(_sequence(n, v)),
    "not_in": lambda a, n, v: a.not_in(_sequence(n, v)),
    "between": _between,
    "like": _like,
    "is_null": _is_null,
}


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


def split_filter(mapper: Mapper[Any], key: str) -> tuple[str, str]:
    """Split ``"ts__gte"`` into ``("ts", "gte")``; a bare column name is ``"eq"``.

    Raises:
        ValidationError: The operator is unknown.
    """
    if key in mapper.columns or "__" not in key:
        return key, "eq"
    name, _, operator = key.rpartition("__")
    if operator not in OPERATORS:
        raise ValidationError(
            f"Unknown filter operator {operator[:32]!r} in {key[:64]!r}; use one of {sorted(OPERATORS)}.",
            {"field": key[:64], "allowed": sorted(OPERATORS)},
        )
    return name, operator


def check_value(attribute: InstrumentedAttribute[Any], name: str, value: object) -> None:
    """Refuse a value its column could not hold, before the driver overflows on it.

    Integers beyond the column's width (int16/int32/int64) and dates the database cannot
    compare would otherwise surface as a driver ``OverflowError`` (a 500).

    Raises:
        OutOfRangeError: The value (or an item of a list) is out of the column's range.
    """
    if isinstance(value, _SEQUENCES):
        for item in value:
            check_value(attribute, name, item)
        return
    if isinstance(value, bool) or not isinstance(value, (int, date)):
        return
    if isinstance(value, int):
        column_type = type(attribute.property.columns[0].type)
        bound = next((limit for kind, limit in _INT_BOUNDS.items() if issubclass(column_type, kind)), 2**63)
        if not -bound <= value < bound:
            raise OutOfRangeError(
                f"{name} is out of range: use a value between {-bound} and {bound - 1}.", {"field": name}
            )
    elif isinstance(value, datetime) and value.tzinfo is not None:
        try:
            value.astimezone(UTC)  # 9999-12-31T23:59-12:00 is past datetime.max in UTC
        except (OverflowError, ValueError) as exc:
            raise OutOfRangeError(f"{name} is out of the supported date range.", {"field": name}) from exc


def build_filters(model: type[Any], mapper: Mapper[Any], filters: Mapping[str, Any]) -> list[ColumnElement[bool]]:
    """Turn ``{"ts__gte": a, "device_id": "m1"}`` into WHERE clauses (see the module doc).

    Raises:
        ValidationError: An unknown column or operator, or a value of the wrong shape.
        OutOfRangeError: A value out of its column's range.
    """
    clauses: list[ColumnElement[bool]] = []
    for key, value in filters.items():
        name, operator = split_filter(mapper, key)
        attribute = column_attribute(model, mapper, name)
        if operator == "eq" and isinstance(value, _SEQUENCES):
            operator = "in"
        check_value(attribute, key, value)
        clauses.append(OPERATORS[operator](attribute, key, value))
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
