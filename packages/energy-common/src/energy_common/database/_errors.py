"""The one boundary where SQLAlchemy and driver errors become energy errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm.exc import StaleDataError

from energy_common.exceptions import (
    ConflictError,
    DatabaseConnectionError,
    DatabaseError,
    EnergyError,
)

__all__ = [
    "finish_cleanup",
    "is_database_error",
    "is_driver_error",
    "translate_error",
    "translating_errors",
    "translating_errors_async",
]

T = TypeVar("T")

_CONNECTION_WORDS = ("connection", "connect", "terminat", "closed", "broken pipe", "timeout")


def _is_connection_failure(exc: BaseException) -> bool:
    if isinstance(exc, (sa_exc.DisconnectionError, sa_exc.TimeoutError, OSError, ConnectionError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        if isinstance(orig, (OSError, ConnectionError)):
            return True
        name = type(orig).__name__.lower() if orig is not None else ""
        # asyncpg: ConnectionDoesNotExistError, AdminShutdownError, CannotConnectNowError, ...
        if "connection" in name or "shutdown" in name or "cannotconnect" in name:
            return True
        if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)) and not isinstance(
            exc, sa_exc.IntegrityError
        ):
            text = str(orig).lower()
            return any(word in text for word in _CONNECTION_WORDS)
    return False


def _is_integrity_violation(exc: BaseException) -> bool:
    """SQLAlchemy's IntegrityError, or a driver's own (asyncpg during COPY, sqlite3)."""
    if isinstance(exc, sa_exc.IntegrityError):
        return True
    # SQLSTATE class 23 is "integrity constraint violation" (asyncpg exposes it as .sqlstate).
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith("23"):
        return True
    return type(exc).__name__ == "IntegrityError" and type(exc).__module__.partition(".")[0] in {"sqlite3", "aiosqlite"}


def translate_error(exc: BaseException) -> EnergyError:
    """Map a SQLAlchemy or driver exception to the energy exception tree.

    Integrity violations and stale optimistic-lock versions become ConflictError,
    connection failures DatabaseConnectionError, everything else DatabaseError. The
    message never contains SQL or parameters (they may hold personal data).

    Args:
        exc: The exception raised by SQLAlchemy or the driver.

    Returns:
        The energy error to raise ``from exc``.
    """
    if isinstance(exc, EnergyError):
        return exc
    if isinstance(exc, StaleDataError):
        return ConflictError(
            "The row was changed by someone else since it was read; reload it and apply the change again.",
            {"reason": "stale_version"},
        )
    if _is_integrity_violation(exc):
        details: dict[str, str] = {"reason": "integrity"}
        driver_error = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
        constraint = getattr(driver_error, "constraint_name", None)
        if isinstance(constraint, str):
            details["constraint"] = constraint
        return ConflictError(
            "The change conflicts with existing data (duplicate key or broken reference); "
            "check unique fields and references.",
            details,
        )
    if _is_connection_failure(exc):
        return DatabaseConnectionError(
            f"The database connection failed ({type(exc).__name__}); retry the request shortly."
        )
    return DatabaseError(f"The database rejected the operation ({type(exc).__name__}); see the service logs.")


_DRIVER_MODULES = frozenset({"asyncpg", "aiosqlite", "sqlite3"})
_RAISING_MODULES = _DRIVER_MODULES | {"sqlalchemy"}


def _raised_inside_driver(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if isinstance(module, str) and module.partition(".")[0] in _RAISING_MODULES:
            return True
        tb = tb.tb_next
    return False


def is_driver_error(exc: BaseException) -> bool:
    """Tell whether ``exc`` comes from SQLAlchemy or a database driver.

    Socket errors count only when raised inside SQLAlchemy or the driver (a refused
    connection surfaces from asyncpg as a plain ``ConnectionRefusedError``).
    """
    if isinstance(exc, sa_exc.SQLAlchemyError):
        return True
    if type(exc).__module__.partition(".")[0] in _DRIVER_MODULES:
        return True
    return isinstance(exc, OSError) and _raised_inside_driver(exc)


def is_database_error(exc: BaseException) -> bool:
    """Like :func:`is_driver_error`, plus socket errors (raised inside a database call only)."""
    return isinstance(exc, OSError) or is_driver_error(exc)


@contextmanager
def translating_errors() -> Iterator[None]:
    """Run a block, re-raising SQLAlchemy/driver errors as energy errors ``from`` the original."""
    try:
        yield
    except Exception as exc:
        if is_database_error(exc):
            raise translate_error(exc) from exc
        raise


@asynccontextmanager
async def translating_errors_async() -> AsyncIterator[None]:
    """Async form of :func:`translating_errors`."""
    try:
        yield
    except Exception as exc:
        if is_database_error(exc):
            raise translate_error(exc) from exc
        raise


async def finish_cleanup(awaitable: Awaitable[T]) -> T:
    """Run a cleanup step to its end even if the calling task is cancelled meanwhile.

    Cancelling a request while its session rolls back or closes would otherwise leave a
    connection checked out (or idle in transaction) until garbage collection. The
    cancellation is re-raised once the cleanup has finished.
    """
    task = asyncio.ensure_future(awaitable)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
            continue
        break
    if cancelled:
        raise asyncio.CancelledError
    return result
