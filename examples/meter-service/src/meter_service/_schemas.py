"""Pydantic models: the telemetry payload meters send and the API's request/response bodies."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "COMMAND_EXPIRY_MAX",
    "COMMAND_TIMEOUT_MAX",
    "COMMAND_TIMEOUT_MIN",
    "CommandOut",
    "CommandRequest",
    "CommandTransition",
    "DaySummary",
    "DeviceCredentialsOut",
    "DeviceIn",
    "DeviceOut",
    "DeviceRegistered",
    "ReadingOut",
    "SeriesPoint",
    "TelemetryPayload",
    "TokenRequest",
    "TokenResponse",
    "finite_json",
]

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$"
#: Shortest and longest wait for a meter's reply: below 0.1 s no meter can answer over
#: MQTT (a "timeout" of 5e-324 was accepted and then reported as a meter that did not
#: answer within 4.94e-324 s), above 60 s the HTTP request would outlive most proxies.
COMMAND_TIMEOUT_MIN, COMMAND_TIMEOUT_MAX = 0.1, 60.0
#: Longest a queued command (``deliver_when_online``) may wait for its meter: 7 days.
COMMAND_EXPIRY_MAX = 7 * 86_400.0
_MAX_DEPTH = 16
# 2000-01-01 .. 2100-01-01 in epoch milliseconds: anything else is a broken clock.
_TS_MIN, _TS_MAX = 946_684_800_000, 4_102_444_800_000


def finite_json(value: Any, depth: int = 0) -> Any:
    """Return ``value`` if it is JSON without NaN or infinity (nested at most 16 deep).

    Python's JSON parser accepts ``NaN`` and ``Infinity``, which are not JSON: stored as
    metadata they came back as ``null``. Refusing them keeps what the client reads back
    equal to what it sent.

    Raises:
        ValueError: A float is not finite, or the value nests deeper than 16 levels.
    """
    if depth > _MAX_DEPTH:
        raise ValueError(f"must nest at most {_MAX_DEPTH} levels deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must not contain NaN or infinity (not JSON numbers)")
    if isinstance(value, dict):
        for item in value.values():
            finite_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            finite_json(item, depth + 1)
    return value


class TelemetryPayload(BaseModel):
    """What a meter publishes on ``<root>/<device_id>/telemetry`` (QoS 1).

    ``ts`` (epoch milliseconds) identifies the reading: a redelivered message carries
    the same one. Unknown fields (and the ``_ctx`` context field) are ignored.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    ts: int = Field(ge=_TS_MIN, le=_TS_MAX)
    power_w: float = Field(ge=0, le=10_000_000)
    voltage_v: float | None = Field(default=None, ge=0, le=100_000)
    energy_kwh: float | None = Field(default=None, ge=0)

    @field_validator("power_w", "voltage_v", "energy_kwh")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class ReadingOut(BaseModel):
    """A stored reading."""

    device_id: str
    ts: int = Field(description="Epoch milliseconds (UTC).")
    power_w: float
    voltage_v: float | None = None
    energy_kwh: float | None = None


class DeviceIn(BaseModel):
    """Registration of a meter."""

    model_config = ConfigDict(extra="forbid")

    device_id: str = Field(pattern=_ID_PATTERN)
    device_type: str = Field(default="meter", pattern=_ID_PATTERN)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metadata")
    @classmethod
    def _json_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        return finite_json(value)  # type: ignore[no-any-return]


class DeviceOut(BaseModel):
    """A registered meter with its status and latest reading (from the cache)."""

    device_id: str
    device_type: str
    metadata: dict[str, Any]
    status: Literal["online", "offline", "unknown"]
    last_seen: float | None = None
    registered_at: float
    latest: ReadingOut | None = None


class DeviceCredentialsOut(BaseModel):
    """A meter's MQTT login, returned once at registration (only a hash is stored)."""

    username: str
    password: str
    client_id: str


class DeviceRegistered(DeviceOut):
    """A newly registered meter; ``credentials`` only the first time (None on a re-registration)."""

    credentials: DeviceCredentialsOut | None = None


class DaySummary(BaseModel):
    """Energy of one meter over one UTC day."""

    day: date
    kwh: float = Field(description="Energy used: last minus first meter reading of the day.")
    peak_w: float
    avg_w: float
    readings: int


class SeriesPoint(BaseModel):
    """Power and energy of one meter over one bucket (15 minutes, an hour or a day)."""

    start: datetime = Field(description="Start of the bucket (UTC; a local midnight for day buckets).")
    readings: int
    avg_w: float | None
    min_w: float | None
    max_w: float | None
    kwh: float | None = Field(description="Energy used: last minus first meter reading of the bucket.")


class CommandRequest(BaseModel):
    """A command for a meter."""

    model_config = ConfigDict(extra="forbid")

    command: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
    params: dict[str, Any] = Field(default_factory=dict)
    timeout: float | None = Field(
        default=None,
        ge=COMMAND_TIMEOUT_MIN,
        le=COMMAND_TIMEOUT_MAX,
        allow_inf_nan=False,
        description="Seconds to wait for the meter's reply (0.1 to 60; default: the service's COMMAND_TIMEOUT).",
    )
    wait: bool = Field(
        default=True,
        description="True: answer with the meter's reply (200). False: answer at once with the command id (202).",
    )
    deliver_when_online: bool = Field(
        default=False,
        description="For an offline meter: keep the command and send it once the meter is online again.",
    )
    expires_in: float | None = Field(
        default=None,
        ge=COMMAND_TIMEOUT_MIN,
        le=COMMAND_EXPIRY_MAX,
        allow_inf_nan=False,
        description="Seconds a queued command may wait for its meter (default: the timeout; at most 7 days).",
    )

    @field_validator("params")
    @classmethod
    def _json_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        return finite_json(value)  # type: ignore[no-any-return]


class CommandTransition(BaseModel):
    """One step of a command's lifecycle."""

    state: str
    at: datetime


class CommandOut(BaseModel):
    """A command as the command store knows it (the same from every replica).

    The synchronous answer (``wait``) is this too: ``result`` is the meter's reply.
    """

    command_id: str
    device_id: str
    command: str
    state: str = Field(description="queued, sent, delivered, succeeded, failed, timed_out, expired or cancelled.")
    result: Any = None
    error: dict[str, Any] | None = None
    late_reply: dict[str, Any] | None = Field(default=None, description="A reply that came after timed_out.")
    history: list[CommandTransition]


class TokenRequest(BaseModel):
    """Credentials for ``POST /api/v1/auth/token``."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(BaseModel):
    """An access token (OAuth 2 token response shape)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth 2 token type, not a secret
    expires_in: int
