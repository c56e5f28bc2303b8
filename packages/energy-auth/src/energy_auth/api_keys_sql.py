"""The SQL API key store (extra ``db``): key records in one table, hashed at rest (PostgreSQL, SQLite).

The table ``energy_api_keys`` holds the key id (the key's public prefix, primary key),
the key's SHA-256/HMAC digest (never the key), subject, kind, grants (JSON text) and
times. Create it with :meth:`SQLAPIKeyStore.create_table` or from :data:`API_KEYS_TABLE`
in an Alembic migration. Database errors are energy errors (``DatabaseConnectionError``
503, ``DatabaseError``): authentication fails closed.
"""

from __future__ import annotations

from typing import Any

from energy_common._extras import missing_extra

try:
    import sqlalchemy as sa
    from energy_common.database import Database, translating_errors_async
except ImportError as exc:  # pragma: no cover - exercised by the packaging tests
    raise missing_extra("energy-auth", "sql", exc) from exc

from energy_auth._api_key_codec import record_fields, record_from_fields
from energy_auth._api_keys import APIKeyRecord

__all__ = ["API_KEYS_TABLE", "SQLAPIKeyStore"]

METADATA = sa.MetaData()
API_KEYS_TABLE = sa.Table(
    "energy_api_keys",
    METADATA,
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("key_hash", sa.String(128), nullable=False),
    sa.Column("subject", sa.String(256), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("permissions", sa.Text, nullable=False),
    sa.Column("roles", sa.Text, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=True),
    sa.Column("last_used_at", sa.Float, nullable=True),
)


class SQLAPIKeyStore:
    """A :class:`~energy_auth.MutableAPIKeyStore` on an ``energy_common.database.Database``.

    Args:
        database: The service's database (PostgreSQL or SQLite).

    Example:
        >>> store = SQLAPIKeyStore(Database("postgresql+asyncpg://app@db/app"))  # doctest: +SKIP
        >>> await store.create_table()  # doctest: +SKIP
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    async def create_table(self) -> None:
        """Create ``energy_api_keys`` if it does not exist."""
        await self.database.create_all(METADATA)

    async def _run(self, statement: Any) -> Any:
        async with translating_errors_async(), self.database.engine.begin() as connection:
            return await connection.execute(statement)

    async def add(self, record: APIKeyRecord) -> None:
        """Store ``record``, replacing one with the same key id (one transaction)."""
        async with translating_errors_async(), self.database.engine.begin() as connection:
            await connection.execute(sa.delete(API_KEYS_TABLE).where(API_KEYS_TABLE.c.key_id == record.key_id))
            await connection.execute(sa.insert(API_KEYS_TABLE).values(**record_fields(record)))

    async def get(self, key_id: str) -> APIKeyRecord | None:
        """Return the record for ``key_id``, or ``None``."""
        result = await self._run(sa.select(API_KEYS_TABLE).where(API_KEYS_TABLE.c.key_id == key_id))
        row = result.mappings().first()
        return None if row is None else record_from_fields(dict(row))

    async def remove(self, key_id: str) -> bool:
        """Delete ``key_id`` (revokes the key); ``False`` if it was not there."""
        result = await self._run(sa.delete(API_KEYS_TABLE).where(API_KEYS_TABLE.c.key_id == key_id))
        return bool(result.rowcount)

    async def touch(self, key_id: str, used_at: float) -> None:
        """Record the last use of ``key_id``."""
        await self._run(
            sa.update(API_KEYS_TABLE).where(API_KEYS_TABLE.c.key_id == key_id).values(last_used_at=float(used_at))
        )

    def __repr__(self) -> str:
        return f"SQLAPIKeyStore({self.database!r})"
