"""``BaseRepository[T]``: checked CRUD, filters and pagination over one mapped model."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Generic, Literal, TypeVar

from sqlalchemy import delete, exists, func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper

from energy_common.database._bulk import copy_rows, insert_rows, upsert_statement
from energy_common.database._cursor import CursorCodec
from energy_common.database._errors import translating_errors_async
from energy_common.database._filters import build_filters, build_order_by, check_value, column_attribute
from energy_common.database._keyset import after_clause, keyset_columns
from energy_common.database._page import CursorPage, Page
from energy_common.exceptions import (
    ConfigurationError,
    ConflictError,
    OutOfRangeError,
    ResourceNotFoundError,
    ValidationError,
)

__all__ = ["BaseRepository"]

ModelT = TypeVar("ModelT")


class BaseRepository(Generic[ModelT]):
    """Data access for one model: ``UserRepository(session, User)``.

    Filter, ordering and data field names are checked against the model's mapped
    columns; an unknown name raises :class:`ValidationError` and never reaches SQL.
    Filters are keywords, ``name=value`` or ``name__<op>=value`` with ``op`` one of
    ``eq ne gt gte lt lte in not_in between like is_null`` (``find_by(ts__gte=a,
    ts__lt=b)``); a value its column cannot hold (an int past int64, a date past year
    9999 in UTC) raises :class:`OutOfRangeError` (422) instead of a driver overflow.
    Database errors surface as ``ConflictError`` (integrity, stale version),
    ``DatabaseConnectionError`` or ``DatabaseError``.

    Args:
        session: The session of the current unit of work (see ``Database.session``).
        model: The mapped class.
        max_page_size: Largest ``limit`` accepted (class default ``max_page_size``).
        cursors: Signs the cursors of :meth:`paginate_after` (needed only for it).

    Example:
        >>> class UserRepository(BaseRepository[User]):  # doctest: +SKIP
        ...     async def find_by_email(self, email: str) -> User | None:
        ...         return await self.find_one_by(email=email)
        >>> user = await UserRepository(session, User).create(name="John")  # doctest: +SKIP
    """

    max_page_size: ClassVar[int] = 100
    default_page_size: ClassVar[int] = 20

    def __init__(
        self,
        session: AsyncSession,
        model: type[ModelT],
        *,
        max_page_size: int | None = None,
        cursors: CursorCodec | None = None,
    ) -> None:
        self.session = session
        self._cursors = cursors
        self.model = model
        self._mapper: Mapper[Any] = inspect(model)
        self._max_page_size = max_page_size if max_page_size is not None else self.max_page_size
        primary = self._mapper.primary_key
        if len(primary) != 1:
            raise ValidationError(f"{model.__name__} must have exactly one primary key column for BaseRepository.")
        self._pk_name: str = self._mapper.get_property_by_column(primary[0]).key
        version_col = self._mapper.version_id_col
        self._version_name: str | None = (
            self._mapper.get_property_by_column(version_col).key if version_col is not None else None
        )

    # ------------------------------------------------------------------ reads

    async def get(self, id: Any) -> ModelT | None:
        """Return the row with primary key ``id``, or None.

        Raises:
            OutOfRangeError: ``id`` is out of the key column's range.
        """
        check_value(self._pk(), "id", id)
        async with translating_errors_async():
            return await self.session.get(self.model, id)

    async def get_or_raise(self, id: Any) -> ModelT:
        """Return the row with primary key ``id``.

        Raises:
            ResourceNotFoundError: No such row.
        """
        found = await self.get(id)
        if found is None:
            raise ResourceNotFoundError(self.model.__name__, id)
        return found

    async def find_one_by(self, **filters: Any) -> ModelT | None:
        """Return the first row matching all ``filters`` (by primary key), or None."""
        rows = await self.find_by(limit=1, **filters)
        return rows[0] if rows else None

    async def find_by(
        self,
        *,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = None,
        offset: int = 0,
        **filters: Any,
    ) -> list[ModelT]:
        """Return rows matching all ``filters`` (``None`` → IS NULL, list → IN).

        Args:
            order_by: Column name(s); a leading ``-`` sorts descending. Default: primary key.
            limit: At most this many rows (1..max_page_size); None for all.
            offset: Rows to skip.
            **filters: Column name → value.

        Raises:
            ValidationError: Unknown column name, or limit/offset out of range.
        """
        if limit is not None:
            self._check_limit(limit)
        _check_offset(offset)
        stmt = select(self.model).where(*build_filters(self.model, self._mapper, filters))
        stmt = stmt.order_by(*(build_order_by(self.model, self._mapper, order_by) or [self._pk().asc()]))
        if limit is not None:
            stmt = stmt.limit(limit)
        if offset:
            stmt = stmt.offset(offset)
        async with translating_errors_async():
            return list((await self.session.scalars(stmt)).all())

    async def paginate(
        self,
        *,
        page: int = 1,
        limit: int | None = None,
        order_by: str | Sequence[str] | None = None,
        **filters: Any,
    ) -> Page[ModelT]:
        """Return one page of matching rows and the total count, in one round trip.

        The total comes with the rows (``count(*) OVER ()``); only a page past the end
        (no rows) needs a second ``COUNT``. Offsets get slower with every page and shift
        while rows are inserted: for large or growing tables use :meth:`paginate_after`.

        Raises:
            ValidationError: ``page`` < 1, ``limit`` outside 1..max_page_size or an unknown column.
            OutOfRangeError: ``page`` so large its offset passes int64.
        """
        if not isinstance(page, int) or isinstance(page, bool) or page < 1:
            raise ValidationError("page must be an integer >= 1.", {"field": "page"})
        size = self.default_page_size if limit is None else limit
        self._check_limit(size)
        offset = (page - 1) * size
        if offset >= _INT64:
            raise OutOfRangeError(
                f"page is out of range: at most {_INT64 // size} with limit={size}.", {"field": "page"}
            )
        clauses = build_filters(self.model, self._mapper, filters)
        total_col = func.count().over().label("_total")
        stmt = (
            select(self.model, total_col)
            .where(*clauses)
            .order_by(*(build_order_by(self.model, self._mapper, order_by) or [self._pk().asc()]))
            .limit(size)
            .offset(offset)
        )
        async with translating_errors_async():
            rows = (await self.session.execute(stmt)).all()
            if rows:
                total = int(rows[0][1])
            elif page == 1:
                total = 0
            else:
                count = select(func.count()).select_from(self.model).where(*clauses)
                total = int((await self.session.execute(count)).scalar_one())
        return Page(items=[row[0] for row in rows], total=total, page=page, limit=size)

    async def paginate_after(
        self,
        cursor: str | None,
        limit: int | None = None,
        *,
        order_by: str | Sequence[str] | None = None,
        **filters: Any,
    ) -> CursorPage[ModelT]:
        """Return the page of rows after ``cursor`` (keyset pagination) and the next cursor.

        Each page is one index range scan, as fast at page 10,000 as at page 1, and rows
        inserted meanwhile neither shift nor repeat what the client has not seen: the
        cursor holds the last row's sort-key values, not an offset. The primary key is
        appended to ``order_by`` as a tie-breaker; ordered columns must be NOT NULL.

        Args:
            cursor: ``next_cursor`` of the previous page; None for the first page.
            limit: Page size (1..max_page_size).
            order_by: Column name(s), ``-`` for descending (default: primary key).
            **filters: As for :meth:`find_by`.

        Raises:
            ValidationError: A forged, altered or foreign cursor, an unknown column, a
                nullable order column, or ``limit`` out of range.
            ConfigurationError: The repository was built without ``cursors=``.

        Example:
            >>> page = await repo.paginate_after(None, 100, order_by="-ts", device_id="m1")  # doctest: +SKIP
            >>> more = await repo.paginate_after(
            ...     page.next_cursor, 100, order_by="-ts", device_id="m1"
            ... )  # doctest: +SKIP
        """
        if self._cursors is None:
            raise ConfigurationError(f"{type(self).__name__} needs cursors=CursorCodec(key) for paginate_after.")
        size = self.default_page_size if limit is None else limit
        self._check_limit(size)
        keys = keyset_columns(self.model, self._mapper, self._pk_name, order_by)
        clauses = build_filters(self.model, self._mapper, filters)
        fingerprint = f"{self.model.__name__}|{keys}|{sorted((k, repr(v)) for k, v in filters.items())}"
        if cursor is not None:
            values = self._cursors.decode(cursor, fingerprint)
            if len(values) != len(keys):
                raise ValidationError("The cursor does not match this query; start again.", {"field": "cursor"})
            for (name, _), value in zip(keys, values, strict=True):
                check_value(getattr(self.model, name), "cursor", value)
            clauses.append(after_clause(self.model, keys, values))
        terms = [getattr(self.model, n).desc() if desc else getattr(self.model, n).asc() for n, desc in keys]
        stmt = select(self.model).where(*clauses).order_by(*terms).limit(size + 1)
        async with translating_errors_async():
            items = list((await self.session.scalars(stmt)).all())
        next_cursor = None
        if len(items) > size:
            items = items[:size]
            next_cursor = self._cursors.encode([getattr(items[-1], n) for n, _ in keys], fingerprint)
        return CursorPage(items=items, next_cursor=next_cursor, limit=size)

    async def count(self, **filters: Any) -> int:
        """Return the number of rows matching ``filters``."""
        stmt = select(func.count()).select_from(self.model).where(*build_filters(self.model, self._mapper, filters))
        async with translating_errors_async():
            return int((await self.session.execute(stmt)).scalar_one())

    async def exists(self, **filters: Any) -> bool:
        """Tell whether at least one row matches ``filters``."""
        stmt = select(exists().where(*build_filters(self.model, self._mapper, filters)))
        async with translating_errors_async():
            return bool((await self.session.execute(stmt)).scalar_one())

    # ------------------------------------------------------------------ writes

    async def create(self, **data: Any) -> ModelT:
        """Insert one row and return it with generated values (id, defaults) filled in.

        Raises:
            ValidationError: Unknown column name.
            ConflictError: A unique or foreign key constraint failed.
        """
        self._check_fields(data)
        instance = self.model(**data)
        async with translating_errors_async():
            self.session.add(instance)
            await self.session.flush()
        return instance

    async def create_many(
        self,
        rows: Iterable[Mapping[str, Any]],
        *,
        batch_size: int = 10_000,
        on_conflict: Literal["error", "ignore"] = "error",
        conflict_columns: Sequence[str] | None = None,
    ) -> int:
        """Insert many rows with Core ``executemany``: one round trip per batch, no ORM objects.

        Args:
            rows: Mappings with the same keys (column attribute names).
            batch_size: Rows sent per statement execution.
            on_conflict: ``"error"`` (default) raises on a unique violation; ``"ignore"``
                skips the conflicting rows (``ON CONFLICT DO NOTHING``), e.g. for
                redelivered telemetry.
            conflict_columns: With ``"ignore"``, the unique columns to match (default:
                any unique constraint).

        Returns:
            The number of rows stored (with ``"ignore"``, without the skipped ones).

        Raises:
            ValidationError: Unknown column, rows with differing keys, or a bad ``on_conflict``.
            ConflictError: A constraint failed (nothing of the batch is kept once the session rolls back).

        Example:
            >>> stored = await repo.create_many(
            ...     rows, on_conflict="ignore", conflict_columns=["device_id", "ts"]
            ... )  # doctest: +SKIP
        """
        if on_conflict not in ("error", "ignore"):
            raise ValidationError("on_conflict must be 'error' or 'ignore'.", {"field": "on_conflict"})
        return await insert_rows(
            self.session,
            self._mapper,
            rows,
            batch_size=batch_size,
            ignore_conflicts=on_conflict == "ignore",
            conflict_columns=conflict_columns,
        )

    async def copy_many(
        self, rows: Iterable[Mapping[str, Any]] | Iterable[Sequence[Any]], *, columns: Sequence[str] | None = None
    ) -> int:
        """Bulk-load rows with PostgreSQL ``COPY`` (falls back to :meth:`create_many` elsewhere).

        The fastest path for telemetry: tuples with ``columns`` avoid any per-row work.
        Python-side column defaults are not applied by COPY; server defaults are.

        Args:
            rows: Mappings, or sequences in the order of ``columns``.
            columns: Column attribute names; required for sequences.

        Returns:
            The number of rows loaded.
        """
        return await copy_rows(self.session, self._mapper, rows, columns=columns)

    async def update(self, id: Any, /, *, expected_version: int | None = None, **data: Any) -> ModelT:
        """Change fields of the row with primary key ``id`` and return it.

        Args:
            id: Primary key.
            expected_version: With a version column, the version the caller read (e.g.
                from ``If-Match``); a different current version is a conflict.
            **data: Column name → new value.

        Raises:
            ResourceNotFoundError: No such row.
            ValidationError: Unknown column, or an attempt to set the key or version.
            ConflictError: Stale version (optimistic locking) or a constraint failed.
        """
        self._check_fields(data)
        for protected in (self._pk_name, self._version_name):
            if protected is not None and protected in data:
                raise ValidationError(f"{protected!r} cannot be updated.", {"field": protected})
        instance = await self.get_or_raise(id)
        if expected_version is not None and self._version_name is not None:
            current = getattr(instance, self._version_name)
            if current != expected_version:
                raise ConflictError(
                    f"{self.model.__name__} '{id}' is at version {current}, not {expected_version}; reload and retry.",
                    {"reason": "stale_version", "current_version": current},
                )
        for name, value in data.items():
            setattr(instance, name, value)
        async with translating_errors_async():
            await self.session.flush()
        return instance

    async def delete(self, id: Any) -> bool:
        """Delete the row with primary key ``id``; return whether a row was deleted."""
        check_value(self._pk(), "id", id)
        stmt = delete(self.model).where(self._pk() == id)
        async with translating_errors_async():
            result = await self.session.execute(stmt)
        return bool(getattr(result, "rowcount", 0))

    async def upsert(
        self,
        *,
        conflict_columns: Sequence[str] | None = None,
        update_columns: Sequence[str] | None = None,
        **data: Any,
    ) -> ModelT:
        """Insert a row, or update it when it conflicts (``INSERT ... ON CONFLICT DO UPDATE``).

        Args:
            conflict_columns: Columns of the unique constraint to match (default: primary key).
            update_columns: Columns to overwrite on conflict (default: every given non-conflict column).
            **data: Column name → value.

        Returns:
            The inserted or updated row.

        Raises:
            ValidationError: Unknown column, or a dialect without ON CONFLICT.
        """
        self._check_fields(data)
        conflict = list(conflict_columns or [self._pk_name])
        for name in conflict:
            column_attribute(self.model, self._mapper, name)
            if name not in data:
                raise ValidationError(f"upsert needs a value for conflict column {name!r}.", {"field": name})
        stmt, fetch_after = upsert_statement(
            self.session,
            model=self.model,
            mapper=self._mapper,
            data=data,
            conflict=conflict,
            update_columns=update_columns,
            version_name=self._version_name,
        )
        async with translating_errors_async():
            if fetch_after:
                await self.session.execute(stmt)
                found = await self.find_one_by(**{name: data[name] for name in conflict})
                if found is None:  # pragma: no cover - the row was deleted between the two statements
                    raise ResourceNotFoundError(self.model.__name__)
                return found
            result = await self.session.scalars(stmt, execution_options={"populate_existing": True})
            row: ModelT = result.one()
            return row

    # ------------------------------------------------------------------ helpers

    def _pk(self) -> Any:
        return getattr(self.model, self._pk_name)

    def _check_limit(self, limit: object) -> None:
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= self._max_page_size:
            raise ValidationError(
                f"limit must be an integer between 1 and {self._max_page_size}.",
                {"field": "limit", "max": self._max_page_size},
            )

    def _check_fields(self, data: Mapping[str, Any]) -> None:
        for name, value in data.items():
            check_value(column_attribute(self.model, self._mapper, name), name, value)


_INT64 = 2**63


def _check_offset(offset: object) -> None:
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ValidationError("offset must be a non-negative integer.", {"field": "offset"})
    if offset >= _INT64:
        raise OutOfRangeError("offset is out of range: use a value below 2**63.", {"field": "offset"})
