"""JSON (never pickle) encoding of cached values; pydantic models and datetimes included."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pydantic_core
from pydantic import TypeAdapter

from energy_common.exceptions import CacheError

__all__ = ["decode", "dumps"]


def dumps(value: object) -> bytes:
    """Encode ``value`` as JSON bytes (pydantic models, dataclasses, datetimes, UUIDs, enums).

    Raises:
        CacheError: The value has no JSON form.
    """
    try:
        return pydantic_core.to_json(value)
    except pydantic_core.PydanticSerializationError as exc:
        raise CacheError(
            f"A {type(value).__name__} cannot be cached: only JSON-serialisable values are (no pickle)."
        ) from exc


@lru_cache(maxsize=256)
def _adapter(type_: Any) -> TypeAdapter[Any]:
    return TypeAdapter(type_)


def decode(raw: bytes | str, model: Any = None) -> Any:
    """Decode JSON bytes; with ``model``, validate into that type (e.g. a pydantic model).

    Raises:
        CacheError: The stored bytes are not valid JSON or do not fit ``model``.
    """
    try:
        if model is None:
            return pydantic_core.from_json(raw)
        return _adapter(model).validate_json(raw)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError too
        raise CacheError("A cached value could not be decoded; delete the key or check the type asked for.") from exc
