"""The supervised connection behind MQTTManager: connect, fall back, reconnect, resubscribe."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import aiomqtt
import paho.mqtt.client as paho
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from energy_messaging._errors import MessagingError
from energy_messaging._inbound import Inbound
from energy_messaging._outbound import Outbound, encode_payload
from energy_messaging._router import Router
from energy_messaging._topics import validate_topic

if TYPE_CHECKING:
    from energy_messaging._client import Client
    from energy_messaging._state import LastWill

__all__ = ["Connection", "ProtocolChoice"]

logger = logging.getLogger("energy_messaging.mqtt")

ProtocolChoice = Literal["auto", "5", "3.1.1"]
_PROBE_TIMEOUT = 3.0
_REFUSED_PROTOCOL = {1, 132}  # 3.1.1 "unacceptable protocol version", MQTT 5 "unsupported protocol version"


class Connection:
    """Connection supervision shared by :class:`MQTTManager` (its attributes are set there)."""

    host: str
    port: int
    client_id: str
    _username: str | None
    _password: str | None
    _auto_id: bool
    _protocol_choice: ProtocolChoice
    _tls: ssl.SSLContext | None
    _keepalive: int
    _will: LastWill | Callable[[], LastWill] | None
    _on_connect: Callable[[], Awaitable[None] | None] | None
    _aborting: bool
    _clean_start: bool
    _session_expiry: int
    _max_queued: int
    _max_inflight: int
    _delays: tuple[float, float]
    _connect_timeout: float
    _router: Router
    _inbound: Inbound
    _outbound: Outbound
    _client: Client | None
    _protocol: aiomqtt.ProtocolVersion | None
    _connected: asyncio.Event
    _lost: asyncio.Event
    _stopping: asyncio.Event
    _background: set[asyncio.Task[Any]]
    _reconnects: int
    _connections: int
    _last_connected_at: float | None
    _last_error: str | None

    @property
    def protocol(self) -> str | None:
        """The negotiated protocol, ``"5"`` or ``"3.1.1"``, once connected."""
        if self._protocol is None:
            return None
        return "5" if self._protocol == aiomqtt.ProtocolVersion.V5 else "3.1.1"

    # ------------------------------------------------------------------ supervisor
    async def _supervise(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                client = await self._open()
            except (aiomqtt.MqttError, OSError) as exc:
                self._last_error = str(exc) or type(exc).__name__
                low, high = self._delays
                jitter = int.from_bytes(os.urandom(2), "big") / 65_535  # no `random` import: keeps import cheap
                delay = min(high, low * 2**attempt) * (0.5 + jitter / 2)
                attempt += 1
                logger.warning(
                    "MQTT connect to %s:%s failed (%s); retrying in %.2f s", self.host, self.port, exc, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                continue
            attempt = 0
            try:
                await self._serve(client)
            finally:
                await self._close(client)

    async def _open(self) -> Client:
        choices = {
            "5": [aiomqtt.ProtocolVersion.V5],
            "3.1.1": [aiomqtt.ProtocolVersion.V311],
            "auto": [aiomqtt.ProtocolVersion.V5, aiomqtt.ProtocolVersion.V311],
        }[self._protocol_choice]
        if self._protocol is not None:
            choices = [self._protocol]
        for index, version in enumerate(choices):
            probing = index + 1 < len(choices)
            client = self._make_client(version)
            if probing:
                # Some 3.1.1-only brokers (amqtt) choke on MQTT 5 CONNECT properties and never answer.
                client.timeout = min(self._connect_timeout, _PROBE_TIMEOUT)
            try:
                try:
                    await client.__aenter__()
                except BaseException:
                    client.abandon()
                    raise
            except MqttConnectError as exc:
                if _reason_value(exc.rc) in _REFUSED_PROTOCOL and probing:
                    logger.info("MQTT broker %s:%s refused MQTT 5; falling back to 3.1.1", self.host, self.port)
                    continue
                raise
            except aiomqtt.MqttError as exc:
                if probing and "timed out" in str(exc):
                    logger.info("MQTT broker %s:%s did not answer MQTT 5; trying 3.1.1", self.host, self.port)
                    continue
                raise
            client.timeout = self._connect_timeout
            self._protocol = version
            return client
        raise aiomqtt.MqttError("no protocol version was accepted")  # pragma: no cover - loop always returns/raises

    def _make_client(self, version: aiomqtt.ProtocolVersion) -> Client:
        # The wire-level client (and its packet codec) loads with the first connection.
        from energy_messaging._client import Client  # noqa: PLC0415

        v5 = version == aiomqtt.ProtocolVersion.V5
        will = None
        last_will = self._will() if callable(self._will) else self._will
        if last_will is not None:
            will = aiomqtt.Will(
                validate_topic(last_will.topic),
                encode_payload(last_will.payload, None),
                last_will.qos,
                last_will.retain,
            )
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 0 if self._clean_start else self._session_expiry
            properties.ReceiveMaximum = min(self._max_queued, 65_535)
        self._lost = asyncio.Event()
        return Client(
            self.host,
            self.port,
            username=self._username,
            password=self._password,
            identifier=self.client_id,
            protocol=version,
            will=will,
            clean_session=None if v5 else (self._clean_start or self._auto_id),
            clean_start=self._clean_start if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
            keepalive=self._keepalive,
            timeout=self._connect_timeout,
            max_inflight_messages=0,  # unlimited in paho: the manager's Outbound keeps the window
            properties=properties,
            tls_context=self._tls,
            # Small PUBLISH/PUBACK packets must not wait for Nagle + delayed ACK (~40 ms).
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            deliver=self._inbound.deliver,
            lost=self._lost.set,
            acked=self._outbound.acked,
        )

    async def _serve(self, client: Client) -> None:
        self._connections += 1
        if self._connections > 1:
            self._reconnects += 1
        # Messages of a resumed session may arrive before the resubscribe finishes: ack them.
        self._inbound.attach(client)
        try:
            for entry in list(self._router.filters.values()):
                await self._broker_subscribe(client, entry.mqtt_filter, entry.qos, entry.identifier)
        except (aiomqtt.MqttError, MessagingError) as exc:
            self._last_error = f"resubscribe failed: {exc}"
            return
        self._client = client
        self._outbound.attach(client)
        self._last_connected_at = time.time()
        self._last_error = None
        self._connected.set()
        if self._on_connect is not None:
            self._spawn(_call_hook(self._on_connect))
        logger.info("MQTT connected to %s:%s (MQTT %s)", self.host, self.port, self.protocol)
        stop = asyncio.ensure_future(self._stopping.wait())
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({stop, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            lost.cancel()
        if self._lost.is_set() and not self._stopping.is_set():
            self._last_error = "connection lost"
            logger.warning("MQTT connection to %s:%s lost; reconnecting", self.host, self.port)

    async def _close(self, client: Client) -> None:
        self._client = None
        self._connected.clear()
        self._inbound.connection_lost()
        self._outbound.detach()
        if self._lost.is_set() or self._aborting:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)
            client.forget_disconnect_error()
            return
        try:
            if self._auto_id and self._protocol == aiomqtt.ProtocolVersion.V5:
                # Nobody can resume a random client id: let the broker drop the session now.
                props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
                props.SessionExpiryInterval = 0
                client.paho.disconnect(properties=props)
            await asyncio.wait_for(client.__aexit__(None, None, None), 5.0)
        except Exception as exc:  # noqa: BLE001 - best effort at shutdown
            logger.debug("MQTT disconnect was not clean: %s", exc)

    async def _broker_subscribe(self, client: Client, mqtt_filter: str, qos: int, identifier: int) -> None:
        if self._protocol == aiomqtt.ProtocolVersion.V5:
            props = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
            props.SubscriptionIdentifier = identifier
            options = SubscribeOptions(qos=qos, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
            granted = await client.subscribe(mqtt_filter, options=options, properties=props)
        else:
            granted = await client.subscribe(mqtt_filter, qos)
        for code in granted:
            value = _reason_value(code)
            if value >= 0x80:
                raise MessagingError(
                    f"The broker refused the subscription to {mqtt_filter!r} (reason code {value}); check its ACL.",
                    {"topic_filter": mqtt_filter, "reason_code": value},
                )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def _call_hook(hook: Callable[[], Awaitable[None] | None]) -> None:
    try:
        result = hook()
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("MQTT on_connect hook failed")


def _reason_value(code: object) -> int:
    """Numeric value of a paho ReasonCode or int."""
    value = getattr(code, "value", code)
    return int(value) if isinstance(value, int) else 0
