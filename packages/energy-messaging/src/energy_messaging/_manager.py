"""MQTTManager: one supervised MQTT connection with routing, buffering and manual acks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiomqtt

from energy_messaging._connection import Connection, ProtocolChoice
from energy_messaging._errors import MessagingConnectionError, MessagingError, NotConnectedError
from energy_messaging._inbound import DeadLetterHook, Inbound
from energy_messaging._message import DeadLetter
from energy_messaging._outbound import Outbound, Outgoing, encode_payload, make_properties, topic_bytes
from energy_messaging._router import Handler, Router, Subscription
from energy_messaging._topics import TopicPattern, validate_topic

if TYPE_CHECKING:
    from pydantic import BaseModel

    from energy_messaging._state import LastWill, MQTTState

__all__ = ["MQTTManager"]

logger = logging.getLogger("energy_messaging.mqtt")


class MQTTManager(Connection):
    """An MQTT client for services: supervised connection, routing, buffering, manual acks.

    Args:
        host: Broker host name.
        port: Broker port (1883, or 8883 with TLS).
        username: Optional user name.
        password: Optional password (never logged).
        client_id: Client identifier. Give a stable one to keep the persistent session
            (and the QoS 1 messages queued for it) across process restarts; by default a
            random id is used and its session is dropped on a clean ``disconnect()``.
        protocol: ``"auto"`` (MQTT 5, falling back to 3.1.1 when the broker refuses 5),
            ``"5"`` or ``"3.1.1"``.
        tls: ``True`` for the system trust store, an ``ssl.SSLContext``, or None.
        keepalive: Keepalive interval in seconds.
        will: Last Will the broker publishes when the connection dies, or a function
            returning one, called for every connection (e.g. to carry a session number).
        on_connect: Called after every (re)connect, once subscriptions are restored.
        clean_start: Start with a fresh session on every connect (loses queued messages).
        session_expiry: Seconds the broker keeps the session after a disconnect (MQTT 5).
        max_buffered_publishes: Publishes held while disconnected before
            :class:`PublishBufferFullError` is raised.
        max_queued_messages: Incoming messages queued before reading pauses
            (back-pressure); also the MQTT 5 receive maximum.
        handler_concurrency: Handlers running at once (1 keeps the arrival order).
        max_inflight: Outgoing QoS > 0 publishes awaiting PUBACK at once; more wait in
            order (0: as many as MQTT packet ids allow, 65,535). Capped at the broker's
            Receive Maximum when its MQTT 5 CONNACK advertises one.
        max_payload_bytes: Largest payload :meth:`publish` accepts (default 1 MiB; None:
            only MQTT's and the broker's packet limits apply). Larger ones raise
            :class:`MessageTooLargeError` before anything is sent.
        reconnect_min_delay: First reconnect delay in seconds (doubles up to the max, with jitter).
        reconnect_max_delay: Longest reconnect delay in seconds.
        connect_timeout: Seconds ``connect()`` waits for the first connection.
        shutdown_timeout: Seconds ``disconnect()`` waits for handlers and buffered publishes.
        dead_letter_topic: Topic that receives undecodable/invalid messages, and those
            whose handler raised, as JSON.
        on_dead_letter: Hook called with each :class:`DeadLetter`.

    Example:
        >>> async def main() -> None:  # doctest: +SKIP
        ...     async with MQTTManager("localhost", 1883) as mqtt:
        ...
        ...         @mqtt.on("devices/{device_id}/telemetry")
        ...         async def telemetry(message: MQTTMessage) -> None:
        ...             print(message.params["device_id"], message.payload)
        ...
        ...         await mqtt.publish("devices/s1/telemetry", {"temperature": 21.5})
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 1883,
        *,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        protocol: ProtocolChoice = "auto",
        tls: ssl.SSLContext | bool | None = None,
        keepalive: int = 60,
        will: LastWill | Callable[[], LastWill] | None = None,
        on_connect: Callable[[], Awaitable[None] | None] | None = None,
        clean_start: bool = False,
        session_expiry: int = 3600,
        max_buffered_publishes: int = 10_000,
        max_queued_messages: int = 1_000,
        handler_concurrency: int = 8,
        max_inflight: int = 100,
        max_payload_bytes: int | None = 1_048_576,
        reconnect_min_delay: float = 0.2,
        reconnect_max_delay: float = 30.0,
        connect_timeout: float = 10.0,
        shutdown_timeout: float = 10.0,
        dead_letter_topic: str | None = None,
        on_dead_letter: DeadLetterHook | None = None,
    ) -> None:
        if protocol not in ("auto", "5", "3.1.1"):
            raise MessagingError(f"protocol must be 'auto', '5' or '3.1.1', not {protocol!r}.")
        if max_queued_messages < 1 or handler_concurrency < 1 or max_buffered_publishes < 0:
            raise MessagingError("max_queued_messages and handler_concurrency must be >= 1, buffers >= 0.")
        if max_payload_bytes is not None and max_payload_bytes < 1:
            raise MessagingError("max_payload_bytes must be >= 1 (or None for the protocol's limits only).")
        self.host = host
        self.port = port
        self._username = username
        self._password = password
        self._auto_id = client_id is None
        self.client_id = client_id or f"energy-{os.urandom(8).hex()}"
        self._protocol_choice = protocol
        self._tls = ssl.create_default_context() if tls is True else (tls or None)
        self._keepalive = keepalive
        self._will = will
        self._on_connect = on_connect
        self._aborting = False
        self._clean_start = clean_start
        self._session_expiry = session_expiry
        self._max_queued = max_queued_messages
        self._max_inflight = max_inflight
        self._delays = (reconnect_min_delay, reconnect_max_delay)
        self._connect_timeout = connect_timeout
        self._shutdown_timeout = shutdown_timeout
        if dead_letter_topic is not None:
            validate_topic(dead_letter_topic)
        self._dead_letter_topic = dead_letter_topic
        self._on_dead_letter = on_dead_letter
        self._router = Router()
        self._inbound = Inbound(
            self._router,
            concurrency=handler_concurrency,
            max_queued=max_queued_messages,
            dead_letter=self._dead_letter,
        )
        self._outbound = Outbound(max_buffered_publishes, max_inflight, max_payload_bytes)
        self._client = None
        self._protocol = None
        self._supervisor: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._stopping = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self._reconnects = 0
        self._connections = 0
        self._last_connected_at: float | None = None
        self._last_error: str | None = None

    # ------------------------------------------------------------------ state
    @property
    def is_connected(self) -> bool:
        """Whether the connection to the broker is up right now."""
        return self._client is not None

    @property
    def state(self) -> MQTTState:
        """A snapshot of connection state and counters for health checks and metrics."""
        from energy_messaging._state import MQTTState  # noqa: PLC0415 - on use: keeps the import path light

        stats = self._inbound.stats
        return MQTTState(
            connected=self.is_connected,
            protocol=self.protocol,
            client_id=self.client_id,
            reconnect_count=self._reconnects,
            last_connected_at=self._last_connected_at,
            last_message_at=stats.last_message_at,
            last_error=self._last_error,
            buffered_publishes=len(self._outbound.buffer),
            queued_messages=self._inbound.queued,
            messages_received=stats.received,
            messages_handled=stats.handled,
            handler_errors=stats.handler_errors,
            dead_letters=stats.dead_letters,
            subscriptions=len(self._router.filters),
            max_inflight=self._outbound.max_inflight,
            max_packet_size=self._outbound.max_packet,
        )

    # ------------------------------------------------------------------ lifecycle
    async def connect(self) -> None:
        """Start the supervised connection and wait for the first successful connect.

        Raises:
            MessagingConnectionError: If no connection is made within ``connect_timeout``.
        """
        if self._supervisor is not None:
            return
        self._stopping.clear()
        self._inbound.start()
        self._supervisor = asyncio.create_task(self._supervise(), name=f"energy-mqtt-supervisor-{self.client_id}")
        try:
            await asyncio.wait_for(self._connected.wait(), self._connect_timeout)
        except TimeoutError:
            error = self._last_error
            await self._shutdown(drain=False)
            raise MessagingConnectionError(
                f"Could not connect to the MQTT broker at {self.host}:{self.port} within "
                f"{self._connect_timeout:g} s ({error}); check the address, credentials and that the broker runs.",
                {"host": self.host, "port": self.port},
            ) from None

    async def disconnect(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - shutdown budget
        """Stop gracefully: drain handlers and buffered publishes within ``timeout``, then disconnect."""
        if self._supervisor is None:
            return
        await self._shutdown(drain=True, timeout=self._shutdown_timeout if timeout is None else timeout)

    async def abort(self) -> None:
        """Drop the connection without DISCONNECT, as a crash would (the broker sends the Last Will), and stop.

        Unfinished messages stay unacknowledged, so a persistent session gets them again.
        """
        if self._supervisor is None:
            return
        self._aborting = True
        client = self._client
        if client is not None:
            sock = client.paho.socket()
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        await self._shutdown(drain=False)
        self._aborting = False

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.disconnect()

    async def _shutdown(self, *, drain: bool, timeout: float = 0.0) -> None:  # noqa: ASYNC109 - shutdown budget
        deadline = time.monotonic() + timeout
        if drain:
            if not await self._inbound.drain(timeout):
                logger.warning(
                    "MQTT shutdown: handlers still busy after %.1f s; unacked messages are redelivered", timeout
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbound.wait_idle(), max(deadline - time.monotonic(), 0.0))
        self._stopping.set()
        if self._supervisor is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._inbound.stop()
        dropped = self._outbound.fail_all(NotConnectedError("The MQTT manager stopped before the message was sent."))
        if dropped:
            logger.warning("MQTT shutdown: %d buffered publishes were not sent", dropped)

    async def subscribe(
        self,
        topic_filter: str,
        handler: Handler,
        *,
        qos: int = 1,
        decode: bool = True,
        model: type[BaseModel] | None = None,
    ) -> Subscription:
        """Route messages matching ``topic_filter`` to ``handler``.

        Args:
            topic_filter: A filter with ``+``/``#`` wildcards, named levels
                (``devices/{device_id}/telemetry``) or a ``$share/<group>/`` prefix.
            handler: Async function called with each :class:`MQTTMessage`.
            qos: Maximum QoS to receive with.
            decode: Decode the payload as JSON (failures go to the dead letter).
            model: Pydantic model the decoded payload must validate against.

        Returns:
            The subscription, for :meth:`unsubscribe`.

        Raises:
            TopicValidationError: If the filter or QoS is invalid.
            MessagingError: If the broker refused the subscription.
        """
        sub = Subscription(TopicPattern(topic_filter), handler, qos, decode, model)
        entry, changed = self._router.add(sub)
        client = self._client
        if changed and client is not None:
            try:
                await self._broker_subscribe(client, entry.mqtt_filter, entry.qos, entry.identifier)
            except BaseException:
                self._router.remove(sub)
                raise
        return sub

    def on(
        self, topic_filter: str, *, qos: int = 1, decode: bool = True, model: type[BaseModel] | None = None
    ) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`subscribe`; the broker subscription is made now or on connect."""

        def register(handler: Handler) -> Handler:
            sub = Subscription(TopicPattern(topic_filter), handler, qos, decode, model)
            entry, changed = self._router.add(sub)
            if changed and self._client is not None:
                self._spawn(self._broker_subscribe(self._client, entry.mqtt_filter, entry.qos, entry.identifier))
            return handler

        return register

    async def unsubscribe(self, subscription: Subscription) -> None:
        """Remove a handler; the broker subscription ends when its last handler is gone."""
        entry = self._router.remove(subscription)
        if entry is not None and self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._client.unsubscribe(entry.mqtt_filter)

    # ------------------------------------------------------------------ publish
    async def publish(
        self,
        topic: str,
        payload: object = None,
        *,
        qos: int = 1,
        retain: bool = False,
        properties: Mapping[str, Any] | None = None,
        wait: bool = True,
    ) -> None:
        """Publish a message; dicts, lists and pydantic models are sent as JSON.

        While disconnected the message waits in a bounded buffer and is sent after the
        reconnect. With ``wait`` the call returns once the broker acknowledged it (QoS
        1/2) or it was written (QoS 0); wrap it in ``asyncio.timeout`` to bound the wait.
        The correlation id and trace context go in MQTT 5 user properties, or in the
        ``_ctx`` field of a JSON object on 3.1.1.

        Raises:
            TopicValidationError: If the topic contains wildcards or NUL, or QoS is invalid.
            PayloadEncodeError: If the payload is not JSON-serialisable.
            MessageTooLargeError: If the payload is above ``max_payload_bytes`` or the packet
                above the broker's Maximum Packet Size or MQTT's limit (nothing is sent).
            PublishBufferFullError: If disconnected and the buffer is full.
            PublishError: If the broker refused the message (MQTT 5 reason code >= 0x80).
            NotConnectedError: If the manager is not started.
        """
        if self._supervisor is None:
            raise NotConnectedError()
        wire_topic = topic_bytes(topic)
        if qos not in (0, 1, 2):
            raise MessagingError("qos must be 0, 1 or 2.", {"qos": qos})
        v5 = self._protocol != aiomqtt.ProtocolVersion.V311
        context, user_properties = self._outbound.context(v5)
        data = encode_payload(payload, context)
        props = make_properties(properties, user_properties) if v5 else None
        self._outbound.check_size(topic, wire_topic, data, qos=qos, properties=props, v5=v5)
        done = asyncio.get_running_loop().create_future() if wait else None
        self._outbound.submit(Outgoing(topic, wire_topic, data, qos=qos, retain=retain, properties=props, done=done))
        if done is not None:
            await done  # cancelling the wait does not withdraw the message

    async def flush(self) -> None:
        """Wait until every accepted publish was sent and, for QoS > 0, acknowledged.

        Use it after ``publish(..., wait=False)`` bursts; bound it with ``asyncio.timeout``.
        """
        await self._outbound.wait_idle()

    # ------------------------------------------------------------------ dead letters
    def dead_letter(self, letter: DeadLetter) -> None:
        """Record a message a handler could not use (counted, logged, sent to the hook and topic)."""
        self._dead_letter(letter)

    def _dead_letter(self, letter: DeadLetter) -> None:
        self._inbound.stats.dead_letters += 1
        logger.warning("MQTT dead letter on %s: %s (%s)", letter.topic, letter.reason, letter.detail)
        # A message that failed on the dead-letter topic itself is not published there again (no loop).
        topic = None if letter.topic == self._dead_letter_topic else self._dead_letter_topic
        if self._on_dead_letter is not None or topic is not None:
            from energy_messaging._state import dead_letter_task  # noqa: PLC0415 - on use, see state

            self._spawn(dead_letter_task(self, letter, self._on_dead_letter, topic))
