"""``@cached``: memoise an async function in a ``CacheManager`` (single flight included)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from energy_common.cache._common import CacheKey, Expiry
from energy_common.cache._manager import CacheManager
from energy_common.cache._serde import dumps

__all__ = ["cached"]

P = ParamSpec("P")
R = TypeVar("R")


def _default_key(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> CacheKey:
    # The arguments' JSON is hashed: any JSON-able argument works and keys stay short.
    digest = hashlib.sha256(dumps([list(args), sorted(kwargs.items())])).hexdigest()[:32]
    return (f"{func.__module__}.{func.__qualname__}", digest)


def cached(
    cache: CacheManager | Callable[[], CacheManager],
    *,
    expire: Expiry | None = None,
    key: Callable[..., CacheKey] | None = None,
    model: Any = None,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Cache the results of an async function (through ``get_or_set``).

    Args:
        cache: The manager, or a zero-argument callable returning it (resolved per call,
            handy when the manager is created at startup).
        expire: Lifetime of a cached result (the manager's default otherwise).
        key: Builds the key from the call's arguments; by default the function's
            qualified name and a hash of the JSON of its arguments.
        model: Validate cached JSON into this type on hits (e.g. the pydantic return model).

    Example:
        >>> @cached(cache, expire=60)  # doctest: +SKIP
        ... async def get_device(device_id: str) -> dict[str, Any]: ...
    """

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            manager = cache if isinstance(cache, CacheManager) else cache()
            cache_key = key(*args, **kwargs) if key is not None else _default_key(func, args, kwargs)
            result: R = await manager.get_or_set(cache_key, lambda: func(*args, **kwargs), expire, model=model)
            return result

        return wrapper

    return decorate
