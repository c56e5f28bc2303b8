"""Settings of the meter service: the shared ``Settings`` plus ingestion, auth and demo options.

With no environment at all the service runs on its embedded defaults: a SQLite file in
``DATA_DIR`` (a temp directory by default), the in-memory cache, rate limiter, event bus
and device registry, and an amqtt broker started in-process. ``DATABASE_URL``,
``REDIS_URL`` and ``MQTT_URL`` switch to PostgreSQL, Redis and an external broker.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from energy_common.config import Settings
from pydantic import Field, SecretStr, model_validator

__all__ = ["MQTTAddress", "MeterSettings", "TracingExporter"]

TracingExporter = Literal["off", "none", "console", "otlp"]


class MQTTAddress:
    """Host, port and credentials of an external broker, parsed from ``MQTT_URL``.

    Args:
        url: ``mqtt://[user[:password]@]host[:port]`` (``mqtts://`` for TLS, port 8883).
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp") or not parts.hostname:
            raise ValueError("MQTT_URL must look like mqtt://host:1883")
        self.tls = parts.scheme == "mqtts"
        self.host = parts.hostname
        self.port = parts.port or (8883 if self.tls else 1883)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None

    def __repr__(self) -> str:
        return f"MQTTAddress({self.host!r}, {self.port})"


class MeterSettings(Settings):
    """Every option of the meter service (environment variable = upper-case field name).

    Example:
        >>> settings = MeterSettings(simulator_meters=3)
        >>> settings.embedded_broker, settings.simulator_meters
        (True, 3)
    """

    service_name: str = Field(default="meter-service", pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
    database_url: str | None = None  # type: ignore[assignment]  # None: SQLite file in data_dir
    data_dir: Path | None = None

    # HTTP
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)

    # Namespaces shared by Redis keys, event streams and MQTT topics (tests give their own).
    redis_key_prefix: str = "meter:"
    mqtt_topic_root: str = "devices"
    mqtt_share_group: str | None = "meter-ingest"
    mqtt_client_id: str | None = None
    embedded_broker_port: int = Field(default=0, ge=0, le=65535)
    # The broker's dropped-messages counter ($SYS; None: not watched). Mosquitto's by default;
    # growth makes /health/ready degraded for 5 minutes and counts in meter_mqtt_broker_dropped_total.
    mqtt_drops_topic: str | None = "$SYS/broker/publish/messages/dropped"

    # Ingestion
    ingest_batch_size: int = Field(default=1000, ge=1, le=50_000)
    ingest_max_delay: float = Field(default=0.05, gt=0, le=5)
    ingest_concurrency: int = Field(default=2000, ge=1, le=20_000)
    ingest_copy: bool = True
    ingest_flushers: int = Field(default=4, ge=1, le=32)
    # After start: gc.freeze() (objects made while starting leave the collector's view) and a
    # first-generation threshold of 10,000 (700 by default): about 15 % of the ingestion CPU.
    gc_tuning: bool = True
    events_enabled: bool = True
    # reading.recorded through the transactional outbox (a relay publishes it) instead of
    # publishing after the commit: no event lost when the service dies in between.
    events_outbox: bool = False
    # One reading.recorded event per committed batch ({"readings": [...]}) or per reading.
    events_per: Literal["batch", "reading"] = "batch"
    dead_letter_topic: str | None = None  # default: <mqtt_topic_root>/dead-letters

    # Auth and limits
    admin_username: str = Field(default="admin", pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    admin_password: SecretStr | None = None
    access_token_ttl: float = Field(default=900, gt=0)
    write_rate_limit: int = Field(default=60, ge=1)
    command_rate_limit: int = Field(default=20, ge=1)
    token_rate_limit: int = Field(default=20, ge=1)
    # Failed sign-ins per (user, client address) before that pair is locked out (60 s,
    # doubling per repeat, at most 15 min); never a lock of the user as a whole.
    login_failure_limit: int = Field(default=5, ge=1)
    # Proxies whose X-Forwarded-For is believed ("10.0.0.0/8, 127.0.0.1"); none by default,
    # so every client address is the TCP peer. Otherwise the right-most untrusted hop.
    trusted_proxies: str = ""
    rate_limit_window: float = Field(default=60, gt=0)
    # At least 0.1 s: a meter cannot answer over MQTT faster (5e-324 was accepted).
    command_timeout: float = Field(default=10, ge=0.1, le=120)
    #: Unfinished commands allowed per meter (429 COMMAND_LIMIT_REACHED past it).
    command_max_in_flight: int = Field(default=10, ge=1, le=10_000)

    # Device identity (see _identity.py): where meter credentials live, how the service logs in
    device_credentials_store: Literal["auto", "sql", "redis", "memory"] = "auto"  # auto: Redis with REDIS_URL
    # Mosquitto 2 with dynamic security: an admin client the service syncs meters (and itself) through.
    mqtt_dynsec_admin_username: str | None = None
    mqtt_dynsec_admin_password: SecretStr | None = None
    # A broker authenticating through energy-auth's HTTP endpoint: sign the service's short-lived JWTs.
    mqtt_service_token_secret: SecretStr | None = None

    # Telemetry
    tracing_exporter: TracingExporter = "console"
    tracing_sample_ratio: float = Field(default=1.0, ge=0, le=1)

    # Built-in device simulator (the demo turns it on; off in production settings)
    simulator_enabled: bool = False
    simulator_meters: int = Field(default=10, ge=0, le=1000)
    simulator_interval: float = Field(default=1.0, ge=0.01, le=3600)
    simulator_id_prefix: str = Field(default="meter-", pattern=r"^[A-Za-z0-9_.:\-]{0,32}$")

    @model_validator(mode="after")
    def _meter_coherent(self) -> MeterSettings:
        if self.is_production and self.simulator_enabled:
            raise ValueError("SIMULATOR_ENABLED must be false when ENVIRONMENT=production")
        if self.is_production and self.jwt_secret_key is None:
            raise ValueError("JWT_SECRET_KEY is required when ENVIRONMENT=production")
        if self.mqtt_url is not None:
            MQTTAddress(self.mqtt_url)
        if (self.mqtt_dynsec_admin_username is None) != (self.mqtt_dynsec_admin_password is None):
            raise ValueError("MQTT_DYNSEC_ADMIN_USERNAME and MQTT_DYNSEC_ADMIN_PASSWORD go together")
        if self.mqtt_dynsec_enabled and self.mqtt_url is None:
            raise ValueError("MQTT_DYNSEC_ADMIN_* needs MQTT_URL (the embedded amqtt broker has no dynamic security)")
        if self.mqtt_dynsec_enabled and self.mqtt_service_token_secret is not None:
            raise ValueError("Use MQTT_DYNSEC_ADMIN_* or MQTT_SERVICE_TOKEN_SECRET, not both")
        return self

    @property
    def mqtt_dynsec_enabled(self) -> bool:
        """Whether the service syncs credentials into Mosquitto's dynamic security."""
        return self.mqtt_dynsec_admin_username is not None

    @property
    def embedded_broker(self) -> bool:
        """Whether the service starts its own amqtt broker (no ``MQTT_URL``)."""
        return self.mqtt_url is None

    @property
    def resolved_data_dir(self) -> Path:
        """Where the embedded SQLite file lives: ``DATA_DIR`` or ``<tmp>/meter-service``."""
        return self.data_dir if self.data_dir is not None else Path(tempfile.gettempdir()) / "meter-service"

    @property
    def resolved_database_url(self) -> str:
        """``DATABASE_URL``, or the embedded SQLite file."""
        if self.database_url is not None:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.resolved_data_dir / 'meter.db'}"

    @property
    def resolved_dead_letter_topic(self) -> str:
        """Where bad telemetry goes: ``DEAD_LETTER_TOPIC`` or ``<root>/dead-letters``."""
        return self.dead_letter_topic or f"{self.mqtt_topic_root}/dead-letters"
