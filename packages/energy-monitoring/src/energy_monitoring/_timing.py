"""``time_it``: a duration histogram as decorator (sync and async) or context manager."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast, overload

from energy_monitoring._errors import MetricsError

if TYPE_CHECKING:
    from energy_monitoring._registry import MetricsRegistry

__all__ = ["Timer"]

logger = logging.getLogger("energy_monitoring.metrics")

P = ParamSpec("P")
R = TypeVar("R")


class Timer:
    """Times a block or each call of a function into ``<name>_duration_seconds``.

    Returned by :func:`energy_monitoring.metrics.time_it`. As a context manager an
    instance times one block at a time: create one per ``with`` (``with time_it(...)``).
    The duration is recorded also when the block or function raises.

    Args:
        name: Dotted metric name, e.g. ``"database.query"``.
        tags: Label values of the histogram.
        registry: The registry to record into; the default registry (at call time) if None.
        resolve: Returns the default registry; used when ``registry`` is None.
    """

    __slots__ = ("_resolve", "_start", "name", "registry", "tags")

    def __init__(
        self,
        name: str,
        tags: Mapping[str, object] | None,
        registry: MetricsRegistry | None,
        resolve: Callable[[], MetricsRegistry],
    ) -> None:
        self.name = name
        self.tags = dict(tags) if tags else None
        self.registry = registry
        self._resolve = resolve
        self._start = 0.0

    def record(self, seconds: float) -> None:
        """Record one duration (seconds)."""
        registry = self.registry if self.registry is not None else self._resolve()
        try:
            registry.observe_duration(self.name, seconds, self.tags)
        except MetricsError:
            raise
        except Exception:  # telemetry never raises into business code
            logger.exception("time_it(%r) could not record a duration", self.name)

    @overload
    def __call__(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, func: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, func: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate ``func`` (sync or async) so that each call is timed."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                start = time.perf_counter()
                try:
                    return await func(*args, **kwargs)
                finally:
                    self.record(time.perf_counter() - start)

            return cast("Callable[P, Any]", async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.record(time.perf_counter() - start)

        return wrapper

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.record(time.perf_counter() - self._start)

    async def __aenter__(self) -> Timer:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)
