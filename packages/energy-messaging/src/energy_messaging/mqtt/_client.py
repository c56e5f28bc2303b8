"""A thin aiomqtt client subclass: manual QoS 1 acks, direct delivery, pausable reads, batched writes.

aiomqtt 2.x has no manual acknowledgement and its incoming queue drops messages when
full, so the manager drives the underlying paho client more directly, here only:

* paho's ``manual_ack`` is switched on, so a QoS 1 PUBACK is sent only when the
  manager calls :meth:`ack` after the handler finished;
* incoming messages go straight to the manager's callback (no aiomqtt ``Message``
  copy, no per-message task); QoS 0/1 PUBLISH packets are decoded here
  (:mod:`energy_messaging.mqtt._wire`) unless they carry properties other than subscription
  identifiers and user properties (paho would build a ``Properties`` object and an
  ``MQTTMessage`` with a lock, and take two callback mutexes, per message);
* the socket reader can be paused, which applies TCP back-pressure to the broker when
  the bounded incoming queue is full instead of dropping;
* QoS 0 and 1 PUBLISH packets are built here and queued on paho's output queue, and
  PUBACKs are matched here by message id and reported to a callback: no paho
  ``MQTTMessage``/``MQTTMessageInfo``/lock per publish, no reason-code and properties
  objects per PUBACK, no scan of paho's outgoing messages per PUBACK (the manager keeps
  the in-flight window itself). QoS 2 goes through ``paho.publish``;
* packets are written at the end of the current event-loop iteration, all of them with
  one ``send`` (paho writes one packet per ``send`` after an ``add_writer`` round trip),
  so a burst of publishes costs one system call.

This is the only module that touches aiomqtt or paho internals; :data:`RELIED_ON` names
each of them and ``tests/messaging/test_mqtt_contract.py`` checks them against the
installed versions, so an upgrade that moves one fails loudly instead of silently. The
supported ranges are declared in the pyproject (aiomqtt 2.x, paho-mqtt 2.x). Reading
falls back to ``loop_read`` without ``_packet_read``/``_loop_rc_handle``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import aiomqtt
import paho.mqtt.client as paho
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from energy_messaging.mqtt._wire import Incoming, decode_publish, encode_publish

if TYPE_CHECKING:
    from energy_messaging.mqtt._outbound import Outgoing

__all__ = ["RELIED_ON", "Client", "missing_internals", "reason_value", "refusal_code"]

#: Every private name of aiomqtt and paho this module uses, by the class that must have it.
RELIED_ON: dict[str, tuple[str, ...]] = {
    "aiomqtt.Client": (
        "_client", "_loop", "_misc_loop", "_misc_task", "_connected", "_disconnected", "_on_connect", "_on_disconnect",
        "_on_message", "_on_publish", "_on_socket_open", "_on_socket_close", "_on_socket_register_write",
        "_on_socket_unregister_write",
    ),
    "paho.mqtt.client.Client": (
        "_packet_read", "_loop_rc_handle", "_sock_close", "_sock_send", "_packet_write", "_packet_handle",
        "_mid_generate", "_registered_write", "_last_msg_out", "_out_packet", "_in_packet", "_sock", "_protocol",
        "manual_ack_set", "ack",
    ),
    "paho.mqtt.client.MQTTMessageInfo": ("_set_as_published",),
    "paho.mqtt.client": ("time_func",),
}  # fmt: skip

_READ_BATCH = 64  # packets read per readiness event at most (fairness with other tasks)
_WRITE_BATCH = 256  # packets joined into one send at most
_PUBLISH = paho.PUBLISH
_PUBACK = paho.PUBACK
_DISCONNECT = paho.DISCONNECT
_NO_PROPERTIES = b"\x00"


def missing_internals() -> list[str]:
    """Return the names of :data:`RELIED_ON` that the installed aiomqtt/paho lack (empty: all there).

    Call it inside a running event loop: it builds an unconnected aiomqtt client, since
    the instance attributes are set in ``__init__``.
    """
    probe = aiomqtt.Client("127.0.0.1")
    holders: dict[str, object] = {
        "aiomqtt.Client": probe,
        "paho.mqtt.client.Client": probe._client,
        "paho.mqtt.client.MQTTMessageInfo": paho.MQTTMessageInfo(0),
        "paho.mqtt.client": paho,
    }
    return [
        f"{owner}.{name}" for owner, names in RELIED_ON.items() for name in names if not hasattr(holders[owner], name)
    ]


def reason_value(code: object) -> int:
    """Numeric value of a paho ReasonCode or int."""
    value = getattr(code, "value", code)
    return int(value) if isinstance(value, int) else 0


def refusal_code(exc: BaseException) -> int | None:
    """The CONNACK reason code if ``exc`` is the broker refusing the connection, else None."""
    return reason_value(exc.rc) if isinstance(exc, MqttConnectError) else None


class Client(aiomqtt.Client):
    """aiomqtt client with manual acks, direct delivery and pausable reads (internal)."""

    def __init__(
        self,
        *args: Any,
        deliver: Callable[[paho.MQTTMessage | Incoming], None],
        lost: Callable[[], None],
        acked: Callable[[int, int], None],
        connack: Callable[[bool], None],
        task_prefix: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._connack = connack
        self._task_prefix = task_prefix
        self._deliver = deliver
        self._lost = lost
        self._client.manual_ack_set(True)
        self._reader: tuple[int, Callable[[], None]] | None = None
        self._paused = False
        self._acked = acked
        self._loop_thread = threading.get_ident()
        self._paho_packet_handle = self._client._packet_handle
        self._client._packet_handle = self._packet_handle  # type: ignore[method-assign]
        self._write_scheduled = False
        self._writer: int | None = None  # fd watched for writability while the socket buffer is full
        #: The broker's limits from its MQTT 5 CONNACK (None when it advertised none).
        self.receive_maximum: int | None = None
        self.maximum_packet_size: int | None = None
        #: Whether the broker resumed a stored session (CONNACK flag).
        self.session_present = False

    # ------------------------------------------------------------------ paho callbacks
    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any = None
    ) -> None:
        self.session_present = bool(getattr(flags, "session_present", False))
        if reason_value(reason_code) == 0:
            # Before any PUBLISH read behind this CONNACK is delivered (the same read batch).
            self._connack(self.session_present)
        if properties is not None:
            self.receive_maximum = getattr(properties, "ReceiveMaximum", None)
            self.maximum_packet_size = getattr(properties, "MaximumPacketSize", None)
        super()._on_connect(client, userdata, flags, reason_code, properties)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._deliver(message)

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        code = getattr(reason_code, "value", 0)
        self._acked(mid, code if isinstance(code, int) else 0)

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any = None
    ) -> None:
        super()._on_disconnect(client, userdata, flags, reason_code, properties)
        self._connection_ended()

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        packet_read = getattr(client, "_packet_read", None)
        rc_handle = getattr(client, "_loop_rc_handle", None)

        def on_readable() -> None:
            try:
                if packet_read is None or rc_handle is None:  # pragma: no cover - other paho versions
                    client.loop_read()
                else:
                    # Read every packet that is already here (paho's loop_read takes one), so a
                    # busy subscriber pays the event-loop round trip once per batch.
                    for _ in range(_READ_BATCH):
                        rc = packet_read()
                        if rc == paho.MQTT_ERR_AGAIN:
                            break
                        if rc:
                            rc_handle(rc)
                            break
                        if self._paused:
                            break
                # TLS sockets may hold decoded bytes the selector cannot see.
                while getattr(client.socket(), "pending", lambda: 0)() > 0:
                    client.loop_read()
            except Exception as exc:  # noqa: BLE001 - any read error means the connection is gone
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)
                self._connection_ended()

        def register() -> None:
            self._reader = (sock.fileno(), on_readable)
            if not self._paused:
                self._loop.add_reader(sock.fileno(), on_readable)
            self._misc_task = self._loop.create_task(self._misc_loop(), name=f"{self._task_prefix}-misc")

        # paho calls this from the executor thread that runs connect().
        self._loop.call_soon_threadsafe(register)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._reader = None
        self._stop_writer()
        super()._on_socket_close(client, userdata, sock)
        self._connection_ended()

    def _connection_ended(self) -> None:
        if threading.get_ident() != self._loop_thread:  # paho's connect() runs in an executor thread
            self._loop.call_soon_threadsafe(self._connection_ended)
            return
        # Closed before the CONNACK: fail the connect now (aiomqtt would wait for its timeout).
        if not self._connected.done():
            self._connected.set_exception(aiomqtt.MqttError("the connection closed before the broker's CONNACK"))
            self._connected.exception()  # retrieved here: open() reports it through __aenter__
        self._lost()

    # ------------------------------------------------------------------ writing
    def _on_socket_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # paho queued a packet: write it once the current callbacks ran, with the others
        # queued meanwhile. paho calls this from connect()'s executor thread too.
        if threading.get_ident() == self._loop_thread:
            self._schedule_write()
        else:
            self._loop.call_soon_threadsafe(self._schedule_write)

    def _on_socket_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._stop_writer()

    def _schedule_write(self) -> None:
        if not self._write_scheduled and self._writer is None:
            self._write_scheduled = True
            self._loop.call_soon(self._write)

    def _stop_writer(self) -> None:
        if self._writer is not None:
            self._loop.remove_writer(self._writer)
            self._writer = None

    def _write(self) -> None:
        self._write_scheduled = False
        client = self._client
        if client.socket() is None:  # closed meanwhile; the loss is already being handled
            self._stop_writer()
            return
        try:
            rc = _write_packets(client)
            if rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_AGAIN):
                client._loop_rc_handle(rc)
        except Exception as exc:  # noqa: BLE001 - any write error means the connection is gone
            if not self._disconnected.done():
                self._disconnected.set_exception(exc)
            self._lost()
            return
        sock = client.socket()
        if client._out_packet and sock is not None:
            # The socket buffer is full: go on when it is writable again.
            if self._writer is None:
                self._writer = sock.fileno()
                self._loop.add_writer(self._writer, self._write)
        else:
            self._stop_writer()
            client._registered_write = False  # lets paho announce its next packet

    # ------------------------------------------------------------------ used by the manager
    @property
    def paused(self) -> bool:
        """Whether reading is paused (back-pressure)."""
        return self._paused

    @property
    def v5(self) -> bool:
        """Whether the connection speaks MQTT 5."""
        return bool(self._client._protocol == paho.MQTTv5)

    async def open(self) -> None:
        """Connect (CONNECT, wait for CONNACK); on any failure close the socket and raise.

        Raises:
            aiomqtt.MqttError: If the broker refused (see :func:`refusal_code`) or did not answer.
        """
        try:
            await self.__aenter__()
        except BaseException:
            self.abandon()
            raise

    async def close(self, *, lost: bool, drop_session: bool) -> None:
        """End the connection: after a loss just release it; else DISCONNECT (expiring the session if asked).

        Raises:
            Exception: What a DISCONNECT that did not go cleanly raised (``lost=False`` only).
        """
        if lost:
            with contextlib.suppress(Exception):
                await self.__aexit__(None, None, None)
            self.forget_disconnect_error()
            return
        if drop_session and self.v5:
            props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 0
            self._client.disconnect(properties=props)
        await self.__aexit__(None, None, None)

    def shutdown_socket(self) -> None:
        """Cut the TCP connection without DISCONNECT, as a crash would (the broker sends the Last Will)."""
        sock = self._client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    async def subscribe_filter(self, mqtt_filter: str, qos: int, identifier: int) -> list[int]:
        """SUBSCRIBE one filter (MQTT 5: with its subscription identifier); return the granted reason codes."""
        if self.v5:
            props = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
            props.SubscriptionIdentifier = identifier
            options = SubscribeOptions(qos=qos, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
            granted = await self.subscribe(mqtt_filter, options=options, properties=props)
        else:
            granted = await self.subscribe(mqtt_filter, qos)
        return [reason_value(code) for code in granted]

    def pause_reading(self) -> None:
        """Stop reading from the socket (back-pressure) until :meth:`resume_reading`."""
        if not self._paused:
            self._paused = True
            if self._reader is not None:
                self._loop.remove_reader(self._reader[0])

    def resume_reading(self) -> None:
        """Read from the socket again."""
        if self._paused:
            self._paused = False
            if self._reader is not None:
                self._loop.add_reader(*self._reader)

    def ack(self, mid: int, qos: int) -> None:
        """Send the PUBACK/PUBCOMP for a message handled under manual ack."""
        with contextlib.suppress(Exception):  # the connection may be gone: the broker will redeliver
            self._client.ack(mid, qos)

    def send(self, item: Outgoing) -> int | None:
        """Queue a PUBLISH; return its message id if an acknowledgement will follow (QoS > 0), else None.

        Raises:
            aiomqtt.MqttCodeError: If the connection is gone.
            ValueError: If the packet is larger than MQTT or the broker's Maximum Packet Size allows.
        """
        client = self._client
        qos, properties = item.qos, item.properties
        if qos == 2:
            info = client.publish(item.topic, item.payload, qos, item.retain, properties)  # type: ignore[arg-type]  # QoS 2: paho Properties (make_properties(packed=False))
            if info.rc != paho.MQTT_ERR_SUCCESS:
                raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
            return None if info.is_published() else info.mid
        if client._sock is None:
            raise aiomqtt.MqttCodeError(paho.MQTT_ERR_NO_CONN, "Could not publish message")
        if client._protocol == paho.MQTTv5:
            props = properties.pack() if properties is not None else _NO_PROPERTIES
        else:
            props = b""
        mid = client._mid_generate() if qos else 0
        packet = encode_publish(item.wire_topic, item.payload, qos, item.retain, mid=mid, properties=props)
        if self.maximum_packet_size is not None and len(packet) > self.maximum_packet_size:
            raise ValueError(f"The broker accepts packets of at most {self.maximum_packet_size} bytes.")
        client._out_packet.append(
            {
                "command": _PUBLISH,
                "mid": mid,
                "qos": qos,
                "pos": 0,
                "to_process": len(packet),
                "packet": packet,
                "info": None,
            }
        )
        self._schedule_write()
        return mid if qos else None

    def _packet_handle(self) -> MQTTErrorCode:
        # A PUBACK answers a QoS 1 publish sent by send(): report its reason code (0 when
        # absent) by message id; its properties are not needed. A QoS 0/1 PUBLISH is decoded
        # here when its properties allow (see _wire) and delivered with manual ack, as paho
        # would. Everything else, and anything malformed, is paho's.
        packet = self._client._in_packet
        body = packet["packet"]
        kind = packet["command"] & 0xF0
        if kind == _PUBACK and len(body) >= 2:
            self._acked(body[0] << 8 | body[1], body[2] if len(body) > 2 else 0)
            return paho.MQTT_ERR_SUCCESS
        if kind == _PUBLISH and packet["command"] >> 1 & 3 < 2:
            try:
                message = decode_publish(packet["command"], body, self._client._protocol == paho.MQTTv5)
            except (ValueError, IndexError):  # malformed: paho's decoder reports it
                message = None
            if message is not None:
                self._deliver(message)
                return paho.MQTT_ERR_SUCCESS
        return self._paho_packet_handle()

    def abandon(self) -> None:
        """Close the socket of a connect attempt that failed (aiomqtt leaves it open)."""
        with contextlib.suppress(Exception):
            self._client._sock_close()  # paho-private: also unregisters our reader and misc task

    def forget_disconnect_error(self) -> None:
        """Mark aiomqtt's disconnect error as seen (the supervisor already handled the loss)."""
        fut = self._disconnected
        if fut.done() and not fut.cancelled():
            fut.exception()


def _write_packets(client: paho.Client) -> MQTTErrorCode:
    """Write paho's queued packets, joined into one ``send`` per batch; return a paho rc."""
    out = client._out_packet
    while out:
        batch = []
        for packet in out:
            if packet["command"] & 0xF0 == _DISCONNECT:
                break  # paho's writer closes the socket after it
            batch.append(packet)
            if len(batch) == _WRITE_BATCH:
                break
        if not batch:
            return client._packet_write()
        if len(batch) == 1:
            data = batch[0]["packet"][batch[0]["pos"] :]
        else:
            data = b"".join([packet["packet"][packet["pos"] :] for packet in batch])
        try:
            sent = client._sock_send(data)
        except BlockingIOError:
            return paho.MQTT_ERR_AGAIN
        except OSError:
            return paho.MQTT_ERR_CONN_LOST
        client._last_msg_out = paho.time_func()  # for keepalive, as paho does
        for packet in batch:
            left = packet["to_process"]
            if sent < left:
                packet["pos"] += sent
                packet["to_process"] = left - sent
                return paho.MQTT_ERR_AGAIN
            sent -= left
            packet["pos"] += left
            packet["to_process"] = 0
            out.popleft()
            info = packet["info"]
            if info is not None and packet["qos"] == 0 and packet["command"] & 0xF0 == _PUBLISH:
                # What paho does for a written QoS 0 PUBLISH of paho.publish (not used by
                # the manager); its on_publish (ours) ignores QoS 0.
                info._set_as_published()
    return paho.MQTT_ERR_SUCCESS
