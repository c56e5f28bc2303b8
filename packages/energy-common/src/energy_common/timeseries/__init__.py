"""Time-series store on plain PostgreSQL (range partitions) or SQLite: ``TimeSeriesStore``.

Needs the ``db`` extra (``postgres`` for PostgreSQL). Declare a series once, create it,
ingest at COPY speed, query buckets from rollups and the raw tail::

    from energy_common.timeseries import SeriesSpec, TimeSeriesStore

    READINGS = SeriesSpec("readings", ("power_w", "energy_kwh"), key="device_id", raw_retention="90d")
    store = TimeSeriesStore(db, READINGS)
    await store.create()  # tables, rollups, partitions ahead
    new = await store.ingest(rows)  # duplicates (key, time) stored once
    days = await store.aggregate(
        ["m1"], start, end, bucket="1d", tz="Europe/Paris", aggregates={"energy_kwh": ("first", "last")}
    )
    await store.maintain()  # on a schedule: partitions, refresh, retention

Time is epoch milliseconds. Errors: ``ValidationError`` for bad names, buckets, zones
and batches; ``OutOfRangeError`` (422) for times outside years 1000..9000; database
failures as ``DatabaseError``/``DatabaseConnectionError``. Alembic: ``series_ddl(spec,
"postgresql")`` returns the statements ``create()`` runs.
"""

from energy_common._extras import missing_extra

try:
    import sqlalchemy.ext.asyncio  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise missing_extra("energy-common", "db", exc) from exc

from energy_common.timeseries._ddl import drop_ddl, partition_ddl, series_ddl
from energy_common.timeseries._grid import MAX_TS, MIN_TS, parse_duration
from energy_common.timeseries._maintenance import RetentionReport
from energy_common.timeseries._spec import AGGREGATES, SeriesSpec
from energy_common.timeseries._store import RangePage, TimeSeriesStore

__all__ = [
    "AGGREGATES",
    "MAX_TS",
    "MIN_TS",
    "RangePage",
    "RetentionReport",
    "SeriesSpec",
    "TimeSeriesStore",
    "drop_ddl",
    "parse_duration",
    "partition_ddl",
    "series_ddl",
]
