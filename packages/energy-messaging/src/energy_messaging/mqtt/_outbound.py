"""Outgoing path: :meth:`Outbound.publish` runs the whole pipeline, then the window and the buffer.

A publish is validated and encoded (topic, payload, context, properties, size) up front,
so a bad one raises before anything is sent or buffered; then it is sent now (at most
the in-flight window unacknowledged) or held in the bounded buffer while disconnected,
and sent again after a reconnect until the broker acknowledged it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from energy_messaging._errors import (
    MessageTooLargeError,
    NotConnectedError,
    PublishBufferFullError,
    PublishError,
    TopicValidationError,
)
from energy_messaging.mqtt import _context
from energy_messaging.mqtt._observe import tracer
from energy_messaging.mqtt._payload import (
    MAX_REMAINING_LENGTH,
    encode_payload,
    make_properties,
    publish_size,
    too_large,
    topic_bytes,
)

if TYPE_CHECKING:
    from paho.mqtt.properties import Properties

    from energy_messaging.mqtt._client import Client
    from energy_messaging.mqtt._observe import Observer
    from energy_messaging.mqtt._payload import UserProperties

__all__ = ["Outbound", "Outgoing"]

logger = logging.getLogger("energy_messaging.mqtt")

_MAX_INFLIGHT = 65_535  # MQTT packet ids: no more can await an acknowledgement at once
_ROUGH_OVERHEAD = 16  # fixed header, topic length, packet id, empty properties: at most this many bytes


class Outgoing:
    """A publish accepted by the manager and not yet confirmed."""

    __slots__ = ("done", "payload", "properties", "qos", "retain", "topic", "wire_topic")

    def __init__(
        self,
        topic: str,
        wire_topic: bytes,
        payload: bytes,
        *,
        qos: int,
        retain: bool,
        properties: Properties | UserProperties | None,
        done: asyncio.Future[None] | None,
    ) -> None:
        self.topic = topic
        self.wire_topic = wire_topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
        self.done = done


class Outbound:
    """Send publishes now (at most ``max_inflight`` unacknowledged), or buffer them while disconnected."""

    def __init__(
        self, max_buffered: int, max_inflight: int = 100, max_payload: int | None = None, *, v5: bool = True
    ) -> None:
        self.max_buffered = max_buffered
        #: Whether publishes are built for MQTT 5 (the protocol of the last connection, or the one asked for).
        self.v5 = v5
        #: Whether publishes are accepted (between the manager's start and stop).
        self.accepting = False
        self._max_inflight = max_inflight if 0 < max_inflight < _MAX_INFLIGHT else _MAX_INFLIGHT
        #: The window in use: ``max_inflight``, capped by the broker's Receive Maximum.
        self.max_inflight = self._max_inflight
        self.max_payload = max_payload
        #: The broker's Maximum Packet Size (MQTT 5 CONNACK of the last connection), if any.
        self.max_packet: int | None = None
        self.buffer: deque[Outgoing] = deque()
        self.client: Client | None = None
        self._inflight: dict[int, Outgoing] = {}  # by message id, in send order
        self._window: deque[Outgoing] = deque()  # QoS > 0, connected, waiting for room in the window
        self._idle: list[asyncio.Future[None]] = []
        #: Called when the window goes from empty to not empty: an acknowledgement must be
        #: read now, so the inbound side must not keep the socket paused (see ``awaiting_acks``).
        self.on_inflight: Callable[[], None] | None = None
        #: Spans and metrics of each publish (the manager's), if any.
        self.observer: Observer | None = None

    def awaiting_acks(self) -> bool:
        """Whether a sent publish awaits the broker's acknowledgement (the socket must be read)."""
        return bool(self._inflight)

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
        """Validate, encode and send (or buffer) one publish; see ``MQTTManager.publish``.

        Raises:
            NotConnectedError: If the manager is not started.
            TopicValidationError: If the topic, QoS or a property is invalid.
            PayloadEncodeError: If the payload is not JSON-serialisable.
            MessageTooLargeError: If it is too large (nothing is sent).
            PublishBufferFullError: If it must be buffered and the buffer is full.
            PublishError: If the broker refused it.
        """
        observer = self.observer
        if observer is not None:
            found = tracer()
            if found is not None or observer.metrics is not None:
                name = topic if type(topic) is str else "?"  # a bad topic is refused by _publish
                send = lambda: self._publish(topic, payload, qos, retain, properties, wait)  # noqa: E731
                await observer.publish(send, name, qos, found)
                return
        await self._publish(topic, payload, qos, retain, properties, wait)

    async def _publish(  # noqa: PLR0917 - the private half of publish()
        self, topic: str, payload: object, qos: int, retain: bool, properties: Mapping[str, Any] | None, wait: bool
    ) -> int:
        if not self.accepting:
            raise NotConnectedError()
        wire_topic = topic_bytes(topic)
        if qos not in (0, 1, 2):
            raise TopicValidationError("qos must be 0, 1 or 2.", {"qos": qos})
        v5 = self.v5
        context, user_properties = self.context(v5)
        data = encode_payload(payload, context)
        props = make_properties(properties, user_properties, packed=qos < 2) if v5 else None
        self.check_size(topic, wire_topic, data, qos=qos, properties=props, v5=v5)
        done = asyncio.get_running_loop().create_future() if wait else None
        self.submit(Outgoing(topic, wire_topic, data, qos=qos, retain=retain, properties=props, done=done))
        if done is not None:
            await done  # cancelling the wait does not withdraw the message
        return len(data)

    @property
    def pending(self) -> int:
        """Publishes buffered, waiting for the in-flight window or awaiting their acknowledgement."""
        return len(self.buffer) + len(self._window) + len(self._inflight)

    @property
    def inflight(self) -> int:
        """Publishes sent and awaiting the broker's acknowledgement."""
        return len(self._inflight)

    async def wait_idle(self) -> None:
        """Return once nothing is buffered or awaiting a PUBACK."""
        if self.pending:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            await waiter

    def _check_idle(self) -> None:
        if self._idle and not self.pending:
            waiters, self._idle = self._idle, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    @staticmethod
    def context(v5: bool) -> tuple[dict[str, str] | None, list[tuple[str, str]]]:
        """Return the context for the payload (3.1.1) and for user properties (MQTT 5)."""
        carrier = _context.current_carrier()
        if not carrier:
            return None, []
        if v5:
            return None, _context.to_user_properties(carrier)
        return carrier, []

    def check_size(
        self,
        topic: str,
        wire_topic: bytes,
        payload: bytes,
        *,
        qos: int,
        properties: Properties | UserProperties | None,
        v5: bool,
    ) -> None:
        """Refuse a publish larger than ``max_payload``, the broker's or MQTT's packet limit.

        Raises:
            MessageTooLargeError: If it is too large.
        """
        size = len(payload)
        if self.max_payload is not None and size > self.max_payload:
            raise too_large(topic, size, self.max_payload, "max_payload_bytes")
        rough = size + len(wire_topic) + _ROUGH_OVERHEAD
        broker = self.max_packet
        if rough <= MAX_REMAINING_LENGTH and (broker is None or (properties is None and rough <= broker)):
            return  # far from every limit (large properties without a broker limit: see _send)
        packed = 0
        if v5:
            packed = len(properties.pack()) if properties is not None else 1
        remaining, total = publish_size(len(wire_topic), size, qos, packed)
        if remaining > MAX_REMAINING_LENGTH:
            raise too_large(topic, remaining, MAX_REMAINING_LENGTH, "mqtt_maximum_remaining_length")
        if broker is not None and total > broker:
            raise too_large(topic, total, broker, "broker_maximum_packet_size")

    def submit(self, item: Outgoing) -> None:
        """Send ``item`` now if connected (and nothing older waits), else buffer it.

        Raises:
            PublishBufferFullError: If it must be buffered and the buffer is full.
        """
        if self.client is not None and not self.buffer:
            if item.qos and (self._window or len(self._inflight) >= self.max_inflight):
                self._window.append(item)
            else:
                self._send(self.client, item)
            return
        if len(self.buffer) >= self.max_buffered:
            raise PublishBufferFullError(
                f"The broker is unreachable and {self.max_buffered} publishes are already buffered; "
                "retry once connected or raise max_buffered_publishes.",
                {"max_buffered_publishes": self.max_buffered, "topic": item.topic},
            )
        self.buffer.append(item)

    def _send(self, client: Client, item: Outgoing) -> bool:
        try:
            mid = client.send(item)
        except ValueError as exc:
            # Too large for this connection (a new broker may allow less than the last one):
            # refuse this message alone; put back in the buffer it would block all behind it.
            self._refuse(item, exc)
            return True
        except Exception:  # noqa: BLE001 - paho refused: the connection just went away
            self.buffer.appendleft(item)
            return False
        if mid is None:
            if item.done is not None and not item.done.done():
                item.done.set_result(None)
            self._check_idle()
        else:
            if not self._inflight and self.on_inflight is not None:
                self.on_inflight()
            self._inflight[mid] = item
        return True

    def _refuse(self, item: Outgoing, exc: ValueError) -> None:
        broker = self.max_packet
        error = MessageTooLargeError(
            f"The message to {item.topic!r} ({len(item.payload)} bytes of payload) is larger than the "
            f"connection allows ({exc}); send less per message.",
            {
                "topic": item.topic,
                "size": len(item.payload),
                "limit": broker or MAX_REMAINING_LENGTH,
                "limit_kind": "broker_maximum_packet_size" if broker else "mqtt_maximum_remaining_length",
            },
        )
        if item.done is not None and not item.done.done():
            item.done.set_exception(error)
        else:
            logger.warning("MQTT message to %s refused: %s", item.topic, error.message)
        self._check_idle()

    def acked(self, mid: int, reason: int = 0) -> None:
        """The broker acknowledged ``mid`` (called by the client); a reason >= 0x80 is a refusal."""
        item = self._inflight.pop(mid, None)
        if item is not None and item.done is not None and not item.done.done():
            if reason >= 0x80:
                item.done.set_exception(
                    PublishError(
                        f"The broker refused the message to {item.topic!r} (reason code {reason}); check its ACL and quotas.",
                        {"topic": item.topic, "reason_code": reason},
                    )
                )
            else:
                item.done.set_result(None)
        elif item is not None and reason >= 0x80:
            logger.warning("MQTT broker refused a message to %s (reason code %d)", item.topic, reason)
        window = self._window
        client = self.client
        while window and client is not None and len(self._inflight) < self.max_inflight:
            if not self._send(client, window.popleft()):
                break
        if not self._inflight:
            self._check_idle()

    def attach(self, client: Client) -> None:
        """Connected: send the buffer in order (QoS > 0 beyond the window waits for it), then send directly.

        The window and the packet limit follow the broker's MQTT 5 CONNACK (Receive Maximum,
        Maximum Packet Size) when it advertises them.
        """
        self.client = client
        self.v5 = client.v5
        receive = client.receive_maximum
        self.max_inflight = min(self._max_inflight, receive) if receive else self._max_inflight
        self.max_packet = client.maximum_packet_size
        buffer = self.buffer
        while buffer and self.client is client:
            item = buffer.popleft()
            if item.qos and (self._window or len(self._inflight) >= self.max_inflight):
                self._window.append(item)
            elif not self._send(client, item):
                break

    def detach(self) -> None:
        """Disconnected: publishes not yet acknowledged go back to the buffer, in order (at least once)."""
        self.client = None
        self.buffer.extendleft(reversed([*self._inflight.values(), *self._window]))
        self._inflight.clear()
        self._window.clear()

    def fail_all(self, exc: BaseException) -> int:
        """Fail every buffered publish (at shutdown); return how many there were."""
        count = len(self.buffer)
        while self.buffer:
            item = self.buffer.popleft()
            if item.done is not None and not item.done.done():
                item.done.set_exception(exc)
        return count
