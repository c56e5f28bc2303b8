"""Async database layer: ``Database``, declarative ``Base`` and mixins, ``BaseRepository``.

Needs the ``db`` extra (SQLAlchemy, aiosqlite); PostgreSQL needs ``postgres`` (asyncpg)::

    from energy_common.database import Base, BaseRepository, Database, IdMixin, TimestampMixin

    db = Database("postgresql+asyncpg://app@db/app")
    async with db.session() as session:  # commits on success, rolls back on error
        user = await BaseRepository(session, User).create(name="John", email="john@example.com")

Filters are keywords, ``find_by(ts__gte=a, ts__lt=b, device_id="m1")`` (operators in
``OPERATORS``); ``paginate`` gives offset pages with the total, ``paginate_after`` keyset
pages with signed cursors (``CursorCodec``).

Errors: integrity and stale versions raise ``ConflictError``, unreachable databases
``DatabaseConnectionError``, other failures ``DatabaseError``; unknown field names,
operators and forged cursors ``ValidationError``; values out of a column's range
``OutOfRangeError`` (422).

The transactional outbox: ``Outbox().add(session, OutboxMessage(...))`` writes a message
in the caller's transaction; ``energy_messaging.events.outbox.OutboxRelay`` publishes it.
"""

from energy_common._extras import missing_extra

try:
    import sqlalchemy
    import sqlalchemy.ext.asyncio  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise missing_extra("energy-common", "db", exc) from exc

from energy_common.database._cursor import CursorCodec
from energy_common.database._engine import Database
from energy_common.database._errors import translate_error, translating_errors, translating_errors_async
from energy_common.database._filters import OPERATORS
from energy_common.database._models import (
    NAMING_CONVENTION,
    Base,
    IdMixin,
    TimestampMixin,
    UTCDateTime,
    VersionMixin,
    utcnow,
)
from energy_common.database._outbox import DESTINATIONS, Outbox, OutboxMessage, key_hash
from energy_common.database._page import CursorPage, Page
from energy_common.database._repository import BaseRepository

__all__ = [
    "DESTINATIONS",
    "NAMING_CONVENTION",
    "OPERATORS",
    "Base",
    "BaseRepository",
    "CursorCodec",
    "CursorPage",
    "Database",
    "IdMixin",
    "Outbox",
    "OutboxMessage",
    "Page",
    "TimestampMixin",
    "UTCDateTime",
    "VersionMixin",
    "key_hash",
    "translate_error",
    "translating_errors",
    "translating_errors_async",
    "utcnow",
]
