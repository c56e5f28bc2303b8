"""The SQL credential store (extra ``sql``): PostgreSQL or SQLite through energy_common.database.

One row per device in ``energy_auth_device_credentials``: the device id (primary key),
its role, a version and the JSON record (argon2id hashes, never a secret). A replace is
``UPDATE ... WHERE version = :read_version``, so concurrent rotations cannot both win.
Create the table with :meth:`SQLDeviceCredentialStore.create_table` (tests, the embedded
SQLite default) or with Alembic from :data:`device_credentials_table`. PostgreSQL needs
``energy-common[postgres]`` (asyncpg) as well.
"""

from __future__ import annotations

import json

from energy_common._extras import missing_extra
from energy_common.exceptions import ConflictError, DatabaseError

try:
    import sqlalchemy as sa
    from energy_common.database import Database, translating_errors_async
except ImportError as exc:  # pragma: no cover - exercised by the packaging tests
    raise missing_extra("energy-auth", "sql", exc) from exc

from energy_auth.devices._records import DeviceCredential, DeviceCredentialInfo
from energy_auth.devices._store import check_list_args

__all__ = ["SQLDeviceCredentialStore", "device_credentials_metadata", "device_credentials_table"]

device_credentials_metadata = sa.MetaData()
device_credentials_table = sa.Table(
    "energy_auth_device_credentials",
    device_credentials_metadata,
    # Byte order ("C") on PostgreSQL, as SQLite and Redis sort, so pages agree across stores.
    sa.Column("device_id", sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql"), primary_key=True),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("revoked", sa.Boolean, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
)
_t = device_credentials_table


class SQLDeviceCredentialStore:
    """A :class:`~energy_auth.devices.DeviceCredentialStore` in a SQL table.

    Args:
        database: An ``energy_common.database.Database`` (the caller owns and disposes it).

    Example:
        >>> store = SQLDeviceCredentialStore(Database("postgresql+asyncpg://app@db/app"))  # doctest: +SKIP
        >>> await store.create_table()  # doctest: +SKIP
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    async def create_table(self) -> None:
        """Create the table if it does not exist (services migrate with Alembic instead)."""
        await self.database.create_all(device_credentials_metadata)

    @staticmethod
    def _decode(data: str) -> DeviceCredential:
        try:
            return DeviceCredential.from_dict(json.loads(data))
        except (ValueError, KeyError, TypeError) as exc:
            raise DatabaseError(
                "A stored device credential is corrupt; delete it and provision the device again."
            ) from exc

    @staticmethod
    def _row(credential: DeviceCredential) -> dict[str, object]:
        return {
            "role": credential.role,
            "version": credential.version,
            "revoked": credential.revoked,
            "data": json.dumps(credential.to_dict(), separators=(",", ":")),
        }

    async def get(self, device_id: str) -> DeviceCredential | None:
        """Return the credential of ``device_id``, or ``None``."""
        async with translating_errors_async(), self.database.engine.connect() as conn:
            data = await conn.scalar(sa.select(_t.c.data).where(_t.c.device_id == device_id))
        return None if data is None else self._decode(data)

    async def create(self, credential: DeviceCredential) -> bool:
        """Store a new credential; ``False`` if the device already has one."""
        try:
            async with translating_errors_async(), self.database.engine.begin() as conn:
                await conn.execute(sa.insert(_t).values(device_id=credential.device_id, **self._row(credential)))
        except ConflictError:
            return False
        return True

    async def replace(self, credential: DeviceCredential, expected_version: int) -> bool:
        """Overwrite the credential if its stored version is ``expected_version``."""
        statement = (
            sa.update(_t)
            .where(_t.c.device_id == credential.device_id, _t.c.version == expected_version)
            .values(**self._row(credential))
        )
        async with translating_errors_async(), self.database.engine.begin() as conn:
            result = await conn.execute(statement)
        return bool(result.rowcount)

    async def delete(self, device_id: str) -> bool:
        """Remove the credential; ``False`` if there was none."""
        async with translating_errors_async(), self.database.engine.begin() as conn:
            result = await conn.execute(sa.delete(_t).where(_t.c.device_id == device_id))
        return bool(result.rowcount)

    async def list(self, *, after: str | None = None, limit: int = 100) -> list[DeviceCredentialInfo]:
        """Return up to ``limit`` credentials (no hashes) ordered by device id, after ``after``."""
        check_list_args(after, limit)
        statement = sa.select(_t.c.data).order_by(_t.c.device_id).limit(limit)
        if after is not None:
            statement = statement.where(_t.c.device_id > after)
        async with translating_errors_async(), self.database.engine.connect() as conn:
            rows = (await conn.scalars(statement)).all()
        return [self._decode(data).info() for data in rows]

    def __repr__(self) -> str:
        return f"SQLDeviceCredentialStore({self.database!r})"
