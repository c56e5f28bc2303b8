"""MQTTManager: the front door; it owns a session, an inbound and an outbound part.

::

    MQTTManager ── Session (supervisor task, Client per connection) ── Router (subscriptions)
                ├─ Inbound (queue, handler workers, in-order acks, resume hold) ── DeadLetters
                ├─ Outbound (publish pipeline, in-flight window, buffer)
                └─ Tasks / Status (named owned tasks, last error)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, Unpack

import aiomqtt

from energy_messaging._errors import MessagingConnectionError, NotConnectedError
from energy_messaging._topics import TopicPattern
from energy_messaging.mqtt._dead_letters import DeadLetters
from energy_messaging.mqtt._inbound import Inbound
from energy_messaging.mqtt._observe import Observer
from energy_messaging.mqtt._outbound import Outbound
from energy_messaging.mqtt._router import Handler, Router, Subscription
from energy_messaging.mqtt._session import Session
from energy_messaging.mqtt._tasks import Status, Tasks

if TYPE_CHECKING:
    from pydantic import BaseModel

    from energy_messaging.mqtt._message import DeadLetter
    from energy_messaging.mqtt._options import MQTTOptions, MQTTSettings
    from energy_messaging.mqtt._state import MQTTState

__all__ = ["MQTTManager"]

logger = logging.getLogger("energy_messaging.mqtt")


class MQTTManager:
    """An MQTT client for services: supervised connection, routing, buffering, manual acks.

    Args:
        host: Broker host name.
        port: Broker port (1883, or 8883 with TLS).
        options: All of the settings below as one :class:`MQTTOptions` (keyword arguments
            given as well replace its fields).

    Keyword Args:
        username: Optional user name.
        password: Optional password (never logged).
        password_provider: ``async () -> str`` called before every connection attempt
            (the first and each reconnect) for the password, instead of ``password``: a
            service's short-lived JWT is then fresh on every reconnect. If it raises, the
            attempt counts as a failed connect (logged, retried with backoff).
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
        resume_grace: Seconds after the first CONNACK with a resumed session during which
            a message without a handler waits, unacknowledged, for one to be registered
            (so ``connect()`` then ``subscribe()`` loses nothing); then it becomes a
            ``no_handler`` dead letter. 0 dead-letters it at once.
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
        dead_letter_topic: Topic that receives the dead letters (no handler, undecodable,
            invalid, handler raised) as JSON.
        on_dead_letter: Hook called with each :class:`DeadLetter`.

    Observability: ``metrics=`` takes where the built-in MQTT metrics go (a
    :class:`MetricsSink`, such as energy-monitoring's ``MetricsRegistry``; None records
    none); ``topic_templates=`` takes filters that name published topics in spans and
    metric labels (``"sites/{site}/meters/{meter}/commands"``); topics matching none have
    their id-like levels (holding a digit) replaced by ``+`` (see :func:`topic_template`).
    Spans are recorded when an OpenTelemetry SDK is configured.

    The manager owns its parts: a :class:`Session` (supervised connection), an
    :class:`Inbound` (queue, handlers, acks), an :class:`Outbound` (publish pipeline,
    window, buffer), the :class:`Router` and the named tasks.

    Raises:
        MQTTOptionsError: If an option is out of range.

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
        host: str | None = None,
        port: int | None = None,
        *,
        options: MQTTOptions | None = None,
        **settings: Unpack[MQTTSettings],
    ) -> None:
        # On first construction, like _state and _client: keeps the seed's import path light.
        from energy_messaging.mqtt._options import MQTTOptions  # noqa: PLC0415

        base = options if options is not None else MQTTOptions()
        changes: dict[str, Any] = dict(settings)
        if host is not None:
            changes["host"] = host
        if port is not None:
            changes["port"] = port
        self.options = opts = dataclasses.replace(base, **changes) if changes else base
        self.client_id = opts.client_id or f"energy-{os.urandom(8).hex()}"
        self._status = Status()
        self._tasks = Tasks(self._status, f"energy-mqtt-{self.client_id}")
        self._router = Router()
        self._outbound = Outbound(
            opts.max_buffered_publishes, opts.max_inflight, opts.max_payload_bytes, v5=opts.protocol != "3.1.1"
        )
        self._dead_letters = DeadLetters(opts.on_dead_letter, opts.dead_letter_topic, self._publish_letter, self._tasks)
        self._inbound = Inbound(
            self._router,
            self._dead_letters,
            self._tasks,
            concurrency=opts.handler_concurrency,
            max_queued=opts.max_queued_messages,
        )
        self._observer = self._observe(opts)
        # Back-pressure must never hold up the acknowledgements our own publishes wait for.
        self._inbound.awaiting_acks = self._outbound.awaiting_acks
        self._outbound.on_inflight = self._inbound.allow_reading
        self._session = Session(
            opts,
            self.client_id,
            router=self._router,
            inbound=self._inbound,
            outbound=self._outbound,
            status=self._status,
            tasks=self._tasks,
        )

    def _observe(self, opts: MQTTOptions) -> Observer:
        """Give every part the manager's spans and metrics (see ``_observe``)."""
        templates = [TopicPattern(item) for item in opts.topic_templates]
        observer = Observer(
            opts.metrics, templates, lambda: [entry.subscriptions[0].pattern for entry in self._router.filters.values()]
        )
        self._outbound.observer = self._inbound.observer = self._dead_letters.observer = observer
        return observer

    async def _sample_metrics(self, interval: float = 1.0) -> None:
        while True:
            self._sample()
            await asyncio.sleep(interval)

    def _sample(self) -> None:
        outbound, inbound = self._outbound, self._inbound
        self._observer.sample(
            connected=self.is_connected,
            reconnects=self._status.reconnects,
            queued=inbound.queued,
            held=inbound.stats.held,
            inflight=outbound.inflight,
            window=outbound.max_inflight,
            buffered=len(outbound.buffer),
        )

    @property
    def host(self) -> str:
        """Broker host name."""
        return self.options.host

    @property
    def port(self) -> int:
        """Broker port."""
        return self.options.port

    @property
    def protocol(self) -> str | None:
        """The negotiated protocol, ``"5"`` or ``"3.1.1"``, once connected."""
        return self._session.protocol

    # ------------------------------------------------------------------ state
    @property
    def is_connected(self) -> bool:
        """Whether the connection to the broker is up right now."""
        return self._session.client is not None

    @property
    def state(self) -> MQTTState:
        """A snapshot of connection state and counters for health checks and metrics."""
        from energy_messaging.mqtt._state import MQTTState  # noqa: PLC0415 - on use: keeps the import path light

        stats, status, letters = self._inbound.stats, self._status, self._dead_letters
        return MQTTState(
            connected=self.is_connected,
            protocol=self.protocol,
            client_id=self.client_id,
            reconnect_count=status.reconnects,
            last_connected_at=status.last_connected_at,
            last_message_at=stats.last_message_at,
            last_error=status.last_error,
            buffered_publishes=len(self._outbound.buffer),
            queued_messages=self._inbound.queued,
            messages_received=stats.received,
            messages_handled=stats.handled,
            handler_errors=stats.handler_errors,
            dead_letters=letters.count,
            subscriptions=len(self._router.filters),
            max_inflight=self._outbound.max_inflight,
            max_packet_size=self._outbound.max_packet,
            session_present=status.session_present,
            held_messages=stats.held,
            dead_letter_reasons=dict(letters.by_reason),
            tasks=tuple(self._tasks.names),
        )

    # ------------------------------------------------------------------ lifecycle
    async def connect(self) -> None:
        """Start the supervised connection and wait for the first successful connect.

        Raises:
            MessagingConnectionError: If no connection is made within ``connect_timeout``.
        """
        session = self._session
        if session.running:
            return
        self._outbound.accepting = True
        self._inbound.start()
        session.start()
        if self.options.metrics is not None:
            self._tasks.spawn(self._sample_metrics(), "metrics")
        try:
            await asyncio.wait_for(session.connected.wait(), self.options.connect_timeout)
        except TimeoutError:
            error = self._status.last_error
            await self._shutdown(drain=False)
            raise MessagingConnectionError(
                f"Could not connect to the MQTT broker at {self.host}:{self.port} as {self.client_id} within "
                f"{self.options.connect_timeout:g} s ({error}); check the address, credentials and that the "
                "broker runs.",
                {"host": self.host, "port": self.port, "client_id": self.client_id},
            ) from None

    async def disconnect(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - shutdown budget
        """Stop gracefully: drain handlers and buffered publishes within ``timeout``, then disconnect."""
        if not self._session.running:
            return
        await self._shutdown(drain=True, timeout=self.options.shutdown_timeout if timeout is None else timeout)

    async def abort(self) -> None:
        """Drop the connection without DISCONNECT, as a crash would (the broker sends the Last Will), and stop.

        Unfinished messages stay unacknowledged, so a persistent session gets them again.
        """
        if not self._session.running:
            return
        await self._shutdown(drain=False, abort=True)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.disconnect()

    async def _shutdown(self, *, drain: bool, timeout: float = 0.0, abort: bool = False) -> None:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        if drain:
            if not await self._inbound.drain(timeout):
                logger.warning(
                    "MQTT shutdown: handlers still busy after %.1f s; unacked messages are redelivered", timeout
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbound.wait_idle(), max(deadline - time.monotonic(), 0.0))
        self._outbound.accepting = False
        await self._session.stop(abort=abort)
        await self._inbound.stop()
        await self._tasks.cancel_all()
        if self.options.metrics is not None:
            self._sample()  # the last word: disconnected, nothing queued
        dropped = self._outbound.fail_all(NotConnectedError("The MQTT manager stopped before the message was sent."))
        if dropped:
            logger.warning("MQTT shutdown: %d buffered publishes were not sent", dropped)

    # ------------------------------------------------------------------ subscriptions
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
            The subscription, for :meth:`unsubscribe`. If the connection fails during the
            SUBSCRIBE, the subscription stays and is made right after the reconnect.

        Raises:
            TopicValidationError: If the filter or QoS is invalid.
            MessagingError: If the broker refused the subscription (it is removed again).
        """
        sub = Subscription(TopicPattern(topic_filter), handler, qos, decode, model)
        entry, changed = self._router.add(sub)
        self._observer.subscribed(sub)
        client = self._session.client
        if changed and client is not None:
            try:
                granted = await client.subscribe_filter(entry.mqtt_filter, entry.qos, entry.identifier)
                Session.check_granted(entry, granted)
            except aiomqtt.MqttError as exc:
                # The connection failed meanwhile: keep the route; the session subscribes every
                # filter again right after the reconnect.
                logger.warning(
                    "MQTT subscribe to %s cut by a lost connection (%s); done again on reconnect",
                    entry.mqtt_filter,
                    exc,
                )
            except BaseException:
                self._router.remove(sub)
                raise
        return sub

    def on(
        self, topic_filter: str, *, qos: int = 1, decode: bool = True, model: type[BaseModel] | None = None
    ) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`subscribe`; the broker subscription is made now or on connect.

        While connected the SUBSCRIBE runs in an owned task; a refusal is logged and
        reported in ``state.last_error`` (the handler stays registered and is subscribed
        again on every reconnect).
        """

        def register(handler: Handler) -> Handler:
            sub = Subscription(TopicPattern(topic_filter), handler, qos, decode, model)
            entry, changed = self._router.add(sub)
            self._observer.subscribed(sub)
            client = self._session.client
            if changed and client is not None:
                self._tasks.spawn(self._session.subscribe(client, entry), f"subscribe-{entry.identifier}")
            return handler

        return register

    async def unsubscribe(self, subscription: Subscription) -> None:
        """Remove a handler; the broker subscription ends when its last handler is gone."""
        entry = self._router.remove(subscription)
        client = self._session.client
        if entry is not None and client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.unsubscribe(entry.mqtt_filter)

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
        await self._outbound.publish(topic, payload, qos=qos, retain=retain, properties=properties, wait=wait)

    async def flush(self) -> None:
        """Wait until every accepted publish was sent and, for QoS > 0, acknowledged.

        Use it after ``publish(..., wait=False)`` bursts; bound it with ``asyncio.timeout``.
        """
        await self._outbound.wait_idle()

    # ------------------------------------------------------------------ dead letters
    def dead_letter(self, letter: DeadLetter) -> None:
        """Record a message a handler could not use (counted, logged, sent to the hook and topic)."""
        self._dead_letters.record(letter)

    async def _publish_letter(self, topic: str, payload: dict[str, Any]) -> None:
        await self._outbound.publish(topic, payload, qos=1, wait=True)
