"""Settings of an :class:`MQTTManager`: one frozen, validated :class:`MQTTOptions` (and the Last Will).

The manager's keyword arguments are the front door (:class:`MQTTSettings` types them);
they build an :class:`MQTTOptions`, which is what travels to the session, the inbound
and the outbound parts. Validation happens once, here, with a clear error.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from energy_messaging._errors import MQTTOptionsError
from energy_messaging._metrics import MetricsSink, is_metrics_sink
from energy_messaging._topics import validate_topic
from energy_messaging.mqtt._message import DeadLetter

__all__ = ["DeadLetterHook", "LastWill", "MQTTOptions", "MQTTSettings", "PasswordProvider", "ProtocolChoice"]

#: ``"auto"`` (MQTT 5, falling back to 3.1.1), ``"5"`` or ``"3.1.1"``.
ProtocolChoice = Literal["auto", "5", "3.1.1"]

#: ``async () -> str``: the password for the next connection attempt (e.g. a fresh short-lived JWT).
PasswordProvider = Callable[[], Awaitable[str]]

#: Called with every dead letter; may be sync or async; its errors are logged, never raised.
DeadLetterHook = Callable[[DeadLetter], Awaitable[None] | None]

_MAX_SESSION_EXPIRY = 4_294_967_295  # MQTT 5: a four-byte integer
_MAX_KEEPALIVE = 65_535  # MQTT: a two-byte integer


@dataclass(frozen=True, slots=True)
class LastWill:
    """The message the broker publishes for a client whose connection dies.

    Args:
        topic: Where to publish it.
        payload: bytes, str, or a JSON value / pydantic model.
        qos: QoS of the will.
        retain: Whether the broker retains it (usual for status topics).
    """

    topic: str
    payload: Any = None
    qos: int = 1
    retain: bool = True


def _fail(name: str, rule: str, value: object) -> MQTTOptionsError:
    return MQTTOptionsError(
        f"The MQTT option {name}={value!r} is invalid: it must be {rule}.", {"option": name, "rule": rule}
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class MQTTOptions:
    """Every setting of an :class:`MQTTManager`, validated when built.

    See :class:`MQTTManager` for the meaning of each field; ``resume_grace`` is the
    number of seconds after the first CONNACK with a resumed session during which a
    message without a handler is held, unacknowledged, waiting for the application to
    register one (0 turns holding off).

    Raises:
        MQTTOptionsError: If a value is out of range (the message names the option).
    """

    host: str = "localhost"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_provider: PasswordProvider | None = field(default=None, repr=False)
    client_id: str | None = None
    protocol: ProtocolChoice = "auto"
    tls: ssl.SSLContext | bool | None = None
    keepalive: int = 60
    will: LastWill | Callable[[], LastWill] | None = None
    on_connect: Callable[[], Awaitable[None] | None] | None = None
    clean_start: bool = False
    session_expiry: int = 3600
    resume_grace: float = 5.0
    max_buffered_publishes: int = 10_000
    max_queued_messages: int = 1_000
    handler_concurrency: int = 8
    max_inflight: int = 100
    max_payload_bytes: int | None = 1_048_576
    reconnect_min_delay: float = 0.2
    reconnect_max_delay: float = 30.0
    connect_timeout: float = 10.0
    shutdown_timeout: float = 10.0
    dead_letter_topic: str | None = None
    on_dead_letter: DeadLetterHook | None = None
    metrics: MetricsSink | None = None
    topic_templates: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host:
            raise _fail("host", "a non-empty host name", self.host)
        _int_in("port", self.port, 1, 65_535)
        if self.protocol not in ("auto", "5", "3.1.1"):
            raise _fail("protocol", "'auto', '5' or '3.1.1'", self.protocol)
        if self.client_id is not None and (not isinstance(self.client_id, str) or not self.client_id):
            raise _fail("client_id", "a non-empty string (or None for a generated one)", self.client_id)
        if self.tls is not None and not isinstance(self.tls, bool | ssl.SSLContext):
            raise _fail("tls", "True, False, None or an ssl.SSLContext", self.tls)
        _int_in("keepalive", self.keepalive, 0, _MAX_KEEPALIVE)
        _int_in("session_expiry", self.session_expiry, 0, _MAX_SESSION_EXPIRY)
        _int_in("max_buffered_publishes", self.max_buffered_publishes, 0, None)
        _int_in("max_queued_messages", self.max_queued_messages, 1, None)
        _int_in("handler_concurrency", self.handler_concurrency, 1, None)
        _int_in("max_inflight", self.max_inflight, 0, None)
        if self.max_payload_bytes is not None:
            _int_in("max_payload_bytes", self.max_payload_bytes, 1, None)
        _seconds("resume_grace", self.resume_grace, zero=True)
        _seconds("reconnect_min_delay", self.reconnect_min_delay, zero=False)
        _seconds("reconnect_max_delay", self.reconnect_max_delay, zero=False)
        if self.reconnect_max_delay < self.reconnect_min_delay:
            raise _fail(
                "reconnect_max_delay", f">= reconnect_min_delay ({self.reconnect_min_delay})", self.reconnect_max_delay
            )
        _seconds("connect_timeout", self.connect_timeout, zero=False)
        _seconds("shutdown_timeout", self.shutdown_timeout, zero=True)
        if isinstance(self.will, LastWill):
            validate_topic(self.will.topic)
            _int_in("will.qos", self.will.qos, 0, 2)
        elif self.will is not None and not callable(self.will):
            raise _fail("will", "a LastWill, a function returning one, or None", self.will)
        if self.dead_letter_topic is not None:
            validate_topic(self.dead_letter_topic)
        if self.password_provider is not None and self.password is not None:
            raise _fail("password_provider", "None when a fixed password is given (pass one of the two)", "<set>")
        for name in ("on_connect", "on_dead_letter", "password_provider"):
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise _fail(name, "a function (sync or async) or None", hook)

        _check_observability(self.metrics, self.topic_templates)

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context to use: a default one for ``tls=True``, None for no TLS."""
        if self.tls is True:
            return ssl.create_default_context()
        return self.tls or None


def _check_observability(metrics: object, templates: object) -> None:
    if metrics is not None and not is_metrics_sink(metrics):
        raise _fail("metrics", "None or a MetricsSink (e.g. energy_monitoring's MetricsRegistry)", metrics)
    if not isinstance(templates, tuple) or not all(isinstance(item, str) for item in templates):
        raise _fail("topic_templates", "a tuple of topic filters such as 'sites/{site}/meters/{meter}'", templates)
    from energy_messaging._errors import TopicValidationError  # noqa: PLC0415
    from energy_messaging._topics import TopicPattern  # noqa: PLC0415 - compiles (and checks) each template

    for item in templates:
        try:
            TopicPattern(item)
        except TopicValidationError as exc:
            raise _fail("topic_templates", f"valid topic filters ({exc.message})", item) from exc


def _int_in(name: str, value: object, low: int, high: int | None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        rule = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
        raise _fail(name, rule, value)


def _seconds(name: str, value: object, *, zero: bool) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value == value  # noqa: PLR0124 - NaN
    if not ok or value < 0 or (not zero and value == 0) or value == float("inf"):  # type: ignore[operator]
        raise _fail(name, "a finite number of seconds " + (">= 0" if zero else "> 0"), value)


class MQTTSettings(TypedDict, total=False):
    """The keyword arguments of :class:`MQTTManager` (every :class:`MQTTOptions` field but host and port)."""

    username: str | None
    password: str | None
    password_provider: PasswordProvider | None
    client_id: str | None
    protocol: ProtocolChoice
    tls: ssl.SSLContext | bool | None
    keepalive: int
    will: LastWill | Callable[[], LastWill] | None
    on_connect: Callable[[], Awaitable[None] | None] | None
    clean_start: bool
    session_expiry: int
    resume_grace: float
    max_buffered_publishes: int
    max_queued_messages: int
    handler_concurrency: int
    max_inflight: int
    max_payload_bytes: int | None
    reconnect_min_delay: float
    reconnect_max_delay: float
    connect_timeout: float
    shutdown_timeout: float
    dead_letter_topic: str | None
    on_dead_letter: DeadLetterHook | None
    metrics: MetricsSink | None
    topic_templates: tuple[str, ...]
