"""The reference meter service of the Energy Tracking IoT Platform.

Meter telemetry arrives over MQTT (a shared subscription, so replicas split the load),
is validated, stored in batches exactly once, cached and announced on the event bus;
a REST API under ``/api/v1`` serves devices, readings, daily energy summaries and
commands that round-trip to the meter over MQTT.

Example:
    >>> from meter_service import MeterSettings, create_app
    >>> app = create_app(MeterSettings(tracing_exporter="off"))
"""

from meter_service.__about__ import __version__
from meter_service._app import API_PREFIX, create_app
from meter_service._broker import EmbeddedBroker
from meter_service._errors import CommandRejectedError
from meter_service._ingest import READING_EVENT, IngestStats, TelemetryIngestor, readings_of
from meter_service._models import Reading, User
from meter_service._runtime import ADMIN_PERMISSIONS, MeterRuntime
from meter_service._schemas import TelemetryPayload
from meter_service._settings import MeterSettings, MQTTAddress

__all__ = [
    "ADMIN_PERMISSIONS",
    "API_PREFIX",
    "READING_EVENT",
    "CommandRejectedError",
    "EmbeddedBroker",
    "IngestStats",
    "MQTTAddress",
    "MeterRuntime",
    "MeterSettings",
    "Reading",
    "TelemetryIngestor",
    "TelemetryPayload",
    "User",
    "__version__",
    "create_app",
    "readings_of",
]
