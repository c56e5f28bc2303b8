"""The service's resources, built from settings and owned by one async context manager.

Start order: embedded broker → database → cache and rate limiter → event bus → device
identity (credential store; dynsec admin and the service's own broker client) → MQTT
(ingestion subscription guarded by the device registry, device manager) → admin user →
simulated meters (each with its own credentials). Stop runs in
reverse: the meters go offline, MQTT drains its handlers (each waits for its batch to
be committed, so nothing is acknowledged unstored), the last batch is flushed, and the
rest is closed.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from energy_auth import PasswordHasher, TokenManager
from energy_common.cache import CacheManager, RateLimitCache, create_cache
from energy_common.database import Base, Database, Outbox
from energy_common.health import CallableHealthCheck, DatabaseHealthCheck, HealthChecker
from energy_messaging import DeadLetter, DeviceManager, MQTTHealthCheck, MQTTManager, MQTTMessage
from energy_messaging.devices import Command, CommandOptions, DeviceRegistry, InMemoryDeviceRegistry
from energy_messaging.errors import MessagingError
from energy_messaging.events import Event, EventBus, create_event_bus
from energy_messaging.mqtt import BrokerDrops
from energy_messaging.sql_commands import SQLCommandStore
from energy_monitoring import MetricsRegistry
from energy_monitoring.tracing import instrument_engine, setup_tracing

if TYPE_CHECKING:
    from energy_messaging.events.outbox import OutboxRelay

import meter_service._models  # noqa: F401 - registers the tables on Base.metadata
from meter_service._broker import EmbeddedBroker
from meter_service._identity import DeviceIdentity
from meter_service._ingest import READING_EVENT, TelemetryIngestor, readings_of
from meter_service._repositories import ReadingStore, UserRepository
from meter_service._schemas import TelemetryPayload
from meter_service._settings import MeterSettings, MQTTAddress
from meter_service._simulation import MeterFleet

__all__ = ["ADMIN_PERMISSIONS", "MeterRuntime", "private_data_file", "tune_gc"]

logger = logging.getLogger("meter_service")

#: What the seeded admin may do.
ADMIN_PERMISSIONS = ["devices:read", "devices:write", "commands:send"]


def private_data_file(path: Path) -> Path:
    """Create ``path``'s directory (mode 0700) and the file itself (0600) if missing; return it.

    The embedded database holds the admin's password hash: nobody else on the machine
    may read it, even in a shared ``/tmp``. SQLite creates its ``-wal``/``-journal``
    files with the database file's mode. A directory or file of ours with wider modes
    (from an older version) is narrowed; one of another user is left as it is.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for target, mode in ((path.parent, 0o700), (path, 0o600)):
        if target.is_file() or target.is_dir():
            info = target.stat()
            if info.st_uid == os.getuid() and info.st_mode & 0o777 != mode:
                target.chmod(mode)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    return path


def tune_gc() -> None:
    """Make the garbage collector cheap for the ingestion path (``GC_TUNING``, on by default).

    Every reading in a batch (its row, future, message, handler frame) lives until the batch
    is committed, so with the default first-generation threshold (700 allocations) the
    collector ran every ~100 readings and kept traversing the same survivors and the
    long-lived startup objects (SQLAlchemy, pydantic, the app). ``gc.freeze()`` moves what
    exists after the start out of its view; a threshold of 10,000 collects ~14x less often.
    """
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(10_000, middle, oldest)


class MeterRuntime:
    """Every resource of one service instance.

    Args:
        settings: The service settings.

    Example:
        >>> async def main() -> None:  # doctest: +SKIP
        ...     async with MeterRuntime(MeterSettings()) as runtime:
        ...         print(runtime.mqtt.state.connected)
    """

    def __init__(self, settings: MeterSettings) -> None:
        self.settings = settings
        prefix = settings.redis_key_prefix
        self.metrics = MetricsRegistry("meter", const_labels={"service": settings.service_name})
        self.hasher = PasswordHasher()
        secret = settings.jwt_secret_key.get_secret_value() if settings.jwt_secret_key else None
        if secret is None:
            secret = secrets.token_urlsafe(32)
            logger.warning("JWT_SECRET_KEY is not set: using a random key (tokens end with this process)")
        self.tokens = TokenManager(
            secret,
            "HS256",
            issuer=settings.service_name,
            audience="meter-api",
            access_ttl=timedelta(seconds=settings.access_token_ttl),
        )
        self.generated_admin_password: str | None = None
        self.db = Database(settings.resolved_database_url, application_name=settings.service_name)
        self.readings = ReadingStore(self.db, secret)
        self._redis: Any = None
        registry: DeviceRegistry
        if settings.redis_url:
            import redis.asyncio as redis_asyncio  # noqa: PLC0415 - only with REDIS_URL
            from energy_messaging.redis_registry import RedisDeviceRegistry  # noqa: PLC0415

            self._redis = redis_asyncio.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
            self.cache: CacheManager = CacheManager(self._redis, key_prefix=f"{prefix}cache", default_ttl=86_400)
            registry = RedisDeviceRegistry(self._redis, prefix=f"{prefix}devices:")
            bus_url = settings.redis_url
        else:
            self.cache = create_cache("memory://?max_size=100000", key_prefix=f"{prefix}cache", default_ttl=86_400)
            registry = InMemoryDeviceRegistry()
            bus_url = "memory://"
        self.limiter = RateLimitCache(self.cache.backend, key_prefix=f"{prefix}ratelimit")
        self.bus: EventBus | None = None
        if settings.events_enabled:
            self.bus = create_event_bus(
                bus_url,
                group=settings.service_name,
                namespace=f"{prefix}events",
                source=f"urn:energy:{settings.service_name}",
                start_from="new",
                metrics=self.metrics,  # energy-messaging's built-in event-bus metrics (meter_events_*)
            )
        self.events_seen = 0
        self.broker: EmbeddedBroker | None = None
        if settings.embedded_broker:
            self.broker = EmbeddedBroker("127.0.0.1", settings.embedded_broker_port)
        host, port, user, password, tls, protocol = self._broker_address()
        self.mqtt_protocol = protocol
        self.dead_letters = 0
        root = settings.mqtt_topic_root
        self.identity = DeviceIdentity(settings, self.db, self._redis)
        self.mqtt = MQTTManager(
            host,
            port,
            **self.identity.mqtt_login(user, password),
            protocol=protocol,  # type: ignore[arg-type]
            tls=tls,
            handler_concurrency=settings.ingest_concurrency,
            max_queued_messages=settings.ingest_concurrency,
            dead_letter_topic=settings.resolved_dead_letter_topic,
            on_dead_letter=self._on_dead_letter,
            metrics=self.metrics,  # energy-messaging's built-in MQTT metrics (meter_mqtt_*)
            # Published topics named by template in spans and labels, whatever the device ids look like.
            topic_templates=(f"{root}/{{device_id}}/commands", f"{root}/{{device_id}}/replies/#"),
        )
        self.command_store = SQLCommandStore(self.db)
        self.devices = self._device_manager(registry)
        self.outbox, self.relay = self._outbox_relay()
        self.ingestor = TelemetryIngestor(
            self.db,
            self.cache,
            self.bus,
            self.metrics,
            batch_size=settings.ingest_batch_size,
            max_delay=settings.ingest_max_delay,
            copy=settings.ingest_copy,
            flushers=settings.ingest_flushers,
            readings=self.readings,
            outbox=self.outbox,
            event_source=f"urn:energy:{settings.service_name}",
            events_per=settings.events_per,
        )
        self.health = HealthChecker(settings.service_name, default_timeout=2.0)
        self.health.add_check(DatabaseHealthCheck(self.db))
        self.health.add_check(CallableHealthCheck("cache", self.cache.health_check))
        self.broker_drops = self._drops_counter()
        self.health.add_check(MQTTHealthCheck(self.mqtt, drops=self.broker_drops))
        self.fleet: MeterFleet | None = None
        self._stack = contextlib.AsyncExitStack()

    def _broker_address(self) -> tuple[str, int, str | None, str | None, bool, str]:
        """Host, port, user, password, TLS and protocol of the broker: the embedded one or ``MQTT_URL``'s."""
        if self.broker is not None:
            return self.broker.host, self.broker.port, None, None, False, "3.1.1"
        assert self.settings.mqtt_url is not None  # noqa: S101 - embedded_broker is False
        address = MQTTAddress(self.settings.mqtt_url)
        return address.host, address.port, address.username, address.password, address.tls, "auto"

    def _outbox_relay(self) -> tuple[Outbox | None, OutboxRelay | None]:
        """reading.recorded through the transactional outbox (``EVENTS_OUTBOX=true``), relayed to the bus."""
        settings = self.settings
        if self.bus is None or not settings.events_outbox:
            return None, None
        from energy_messaging.events.outbox import EventBusPublisher, OutboxRelay  # noqa: PLC0415

        outbox = Outbox(f"{settings.service_name.replace('-', '_')}_outbox")
        relay = OutboxRelay(
            self.db, outbox, EventBusPublisher(self.bus), name=settings.service_name, poll_interval=0.05
        )
        return outbox, relay

    def _device_manager(self, registry: DeviceRegistry) -> DeviceManager:
        """The device manager, its commands kept in the service's database.

        Commands are rows of ``energy_commands``: any replica answers for them, a restart
        keeps them. Every replica uses one reply topic level (the service name) and, on a
        real broker, a shared subscription to it, so whichever replica gets a reply records it.
        """
        settings = self.settings
        share = settings.mqtt_share_group if not settings.embedded_broker else None
        return DeviceManager(
            self.mqtt,
            registry=registry,
            topic_root=settings.mqtt_topic_root,
            instance_id=settings.service_name,
            command_timeout=settings.command_timeout,
            on_command=self._on_command,
            route_telemetry=False,  # telemetry comes through the ingestion's (shared) subscription
            commands=CommandOptions(
                store=self.command_store,
                max_in_flight=settings.command_max_in_flight,
                reply_share_group=f"{share}-replies" if share else None,
                metrics=self.metrics,
            ),
        )

    @property
    def telemetry_filter(self) -> str:
        """The ingestion subscription: shared on a real broker, plain on the embedded one."""
        plain = f"{self.settings.mqtt_topic_root}/{{device_id}}/telemetry"
        group = self.settings.mqtt_share_group
        if group and not self.settings.embedded_broker:
            return f"$share/{group}/{plain}"
        return plain

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start everything (see the module docstring for the order)."""
        settings = self.settings
        stack = self._stack
        try:
            if settings.tracing_exporter != "off":
                setup_tracing(
                    settings.service_name,
                    exporter=settings.tracing_exporter,
                    sample_ratio=settings.tracing_sample_ratio,
                )
                # The engine was built in __init__, before the SQLAlchemy instrumentation was on.
                instrument_engine(self.db)
            if self.broker is not None:
                await self.broker.start()
                stack.push_async_callback(self.broker.aclose)
            if settings.database_url is None:
                private_data_file(settings.resolved_data_dir / "meter.db")
            stack.push_async_callback(self.db.dispose)
            await self.db.create_all(Base.metadata)
            await self.command_store.create_table()
            await self.readings.start()
            stack.push_async_callback(self.readings.aclose)
            stack.push_async_callback(self._close_cache)
            if self.bus is not None:
                if settings.simulator_enabled:
                    self.bus.subscribe(READING_EVENT, self._count_event)
                await self.bus.start()
                stack.push_async_callback(self.bus.aclose)
            if self.outbox is not None and self.relay is not None:
                async with self.db.engine.begin() as conn:
                    await self.outbox.create(conn)
                await stack.enter_async_context(self.relay)
            await self.ingestor.start()
            stack.push_async_callback(self.ingestor.aclose)
            stack.push_async_callback(self.identity.aclose)
            await self.identity.start(self.mqtt.client_id)
            await self.mqtt.subscribe(self.telemetry_filter, self._ingest, qos=1, model=TelemetryPayload)
            await self.mqtt.connect()
            stack.push_async_callback(self.mqtt.disconnect)
            await self._watch_broker_drops()
            await self.devices.start()
            stack.push_async_callback(self.devices.aclose)
            await self._seed_admin()
            if settings.simulator_enabled and settings.simulator_meters:
                await self._start_fleet()
            if settings.gc_tuning:
                tune_gc()
        except BaseException:
            await stack.aclose()
            raise

    def _drops_counter(self) -> BrokerDrops | None:
        """The broker's dropped-messages counter (not on the embedded broker, which has none)."""
        topic = self.settings.mqtt_drops_topic
        if not topic or self.settings.embedded_broker:
            return None
        return BrokerDrops(self.mqtt, topic=topic, on_growth=self._on_broker_drops)

    async def _watch_broker_drops(self) -> None:
        if self.broker_drops is None:
            return
        try:
            await self.broker_drops.start()
        except MessagingError as exc:  # e.g. the broker's ACL keeps $SYS from this client
            logger.warning("the broker's dropped-messages counter is not watched: %s", exc.message)

    async def _start_fleet(self) -> None:
        settings = self.settings
        ids = [f"{settings.simulator_id_prefix}{index:03d}" for index in range(1, settings.simulator_meters + 1)]
        passwords = {}
        for device_id in ids:
            await self.devices.register_device(device_id, "meter", metadata={"simulated": True})
            passwords[device_id] = await self.identity.issue_or_rotate(device_id)
        self.fleet = MeterFleet(
            ids,
            self.mqtt.host,
            self.mqtt.port,
            topic_root=settings.mqtt_topic_root,
            interval=settings.simulator_interval,
            protocol=self.mqtt_protocol,
            # amqtt (the embedded broker) refuses any username it has no password file for, and
            # enforces nothing anyway: there the meters log in anonymously (the banner says so).
            passwords=None if self.broker is not None else passwords,
        )
        await self.fleet.start()
        self._stack.push_async_callback(self.fleet.stop)

    async def _seed_admin(self) -> None:
        """Create the admin user; outside production without ADMIN_PASSWORD, with a fresh random password."""
        settings = self.settings
        generated = settings.admin_password is None
        if not generated:
            assert settings.admin_password is not None  # noqa: S101 - narrowed above
            password = settings.admin_password.get_secret_value()
        elif settings.is_production:
            logger.info("ADMIN_PASSWORD is not set: no admin user seeded")
            return
        else:
            password = secrets.token_urlsafe(12)
        password_hash = await self.hasher.hash_async(password)
        async with self.db.session() as session:
            await UserRepository(session).ensure(
                settings.admin_username,
                password_hash,
                roles=["admin"],
                permissions=ADMIN_PERMISSIONS,
                reset=generated,
            )
        if generated:
            self.generated_admin_password = password
            logger.warning(
                "ADMIN_PASSWORD is not set: the %s user got a random password for this run", settings.admin_username
            )

    async def _close_cache(self) -> None:
        await self.cache.aclose()
        if self._redis is not None:
            await self._redis.aclose()

    async def aclose(self) -> None:
        """Stop everything, in reverse order."""
        await self._stack.aclose()
        self.hasher.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ hooks
    def _on_broker_drops(self, count: int) -> None:
        self.metrics.increment_counter("mqtt.broker_dropped", count)

    async def _ingest(self, message: MQTTMessage) -> None:
        # Only registered meters reach the store: the broker may not enforce (the embedded
        # one does not), and MQTT names no sender; unknown ones are `unknown_device` dead letters.
        if await self.devices.accept_telemetry(message):
            await self.ingestor.handle(message)

    def _on_dead_letter(self, letter: DeadLetter) -> None:
        self.dead_letters += 1  # the demo's summary line; the metric is energy-messaging's

    def _on_command(self, command: Command) -> None:
        logger.info(
            "command %s to %s: %s",
            command.command,
            command.device_id,
            command.state,
            extra={"command_id": command.command_id, "device_id": command.device_id},
        )  # counters and the round-trip histogram come from energy-messaging (CommandOptions.metrics)

    async def _count_event(self, event: Event) -> None:
        self.events_seen += len(readings_of(event.data))
