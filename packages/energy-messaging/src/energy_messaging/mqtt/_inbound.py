"""Incoming path: bounded queue, handler workers, in-order manual acks, dead letters, the resume hold.

The guarantee: a QoS 1/2 message is acknowledged only after its handlers finished with
it or it went to the dead letter (:mod:`energy_messaging.mqtt._dead_letters`) with a
reason. Acks go out in arrival order (MQTT requires it), so one message still being
handled holds back the acks of those behind it, never the other way round.

The resume hold: the broker delivers a resumed session's queue right after CONNACK,
maybe before the application registered its handlers (``connect()`` then
``subscribe()``). After the first CONNACK with a session present, a message without a
handler therefore waits, unacknowledged and counted in the bounded queue, for up to
``resume_grace`` seconds; every new subscription routes it again. When the window closes
it becomes a ``no_handler`` dead letter. Stopping the manager meanwhile leaves it
unacknowledged, so the broker delivers it again next time.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from energy_messaging.mqtt import _context, _observe
from energy_messaging.mqtt._message import DeadLetter, MQTTMessage
from energy_messaging.mqtt._observe import tracer

if TYPE_CHECKING:
    import paho.mqtt.client as paho

    from energy_messaging.mqtt._client import Client
    from energy_messaging.mqtt._dead_letters import DeadLetters
    from energy_messaging.mqtt._observe import Observer
    from energy_messaging.mqtt._router import Router, Routes, Subscription
    from energy_messaging.mqtt._tasks import Tasks
    from energy_messaging.mqtt._wire import Incoming

    #: A received message: decoded by the client, or by paho (QoS 2, unusual properties).
    Received = paho.MQTTMessage | Incoming

__all__ = ["Inbound", "InboundStats"]

logger = logging.getLogger("energy_messaging.mqtt")

_UNDECODED: Any = object()


class InboundStats:
    """Counters of the incoming path."""

    __slots__ = ("handled", "handler_errors", "held", "last_message_at", "received")

    def __init__(self) -> None:
        self.received = 0
        self.handled = 0
        self.handler_errors = 0
        self.held = 0  # messages waiting for a handler in the resume hold right now
        self.last_message_at: float | None = None


class _Pending:
    """A received QoS > 0 message whose ack waits for its handler (and those before it)."""

    __slots__ = ("done", "generation", "mid", "qos")

    def __init__(self, mid: int, qos: int, generation: int) -> None:
        self.mid = mid
        self.qos = qos
        self.generation = generation
        self.done = False


class Inbound:
    """Queue incoming messages, run handlers with bounded concurrency, then ack in order.

    Args:
        router: Finds the handlers of a message.
        dead_letters: Where unusable messages go (before their ack).
        tasks: Owner of the worker tasks.
        concurrency: Number of workers.
        max_queued: Messages queued before the socket stops being read.
    """

    def __init__(
        self, router: Router, dead_letters: DeadLetters, tasks: Tasks, *, concurrency: int, max_queued: int
    ) -> None:
        import json  # noqa: PLC0415 - here, not at import: keeps `import energy_messaging.mqtt` light

        self._loads = json.loads
        self._router = router
        router.on_change = self._routes_changed
        self._dead_letters = dead_letters
        self._tasks = tasks
        self._concurrency = concurrency
        self._max_queued = max_queued
        self._resume_below = max(max_queued // 2, 1)
        self._queue: asyncio.Queue[tuple[Received, _Pending | None]] = asyncio.Queue()
        self._pending: deque[_Pending] = deque()
        self._generation = 0
        self._client: Client | None = None
        self._workers: set[asyncio.Task[Any]] = set()
        self._running = False
        self._closing = False
        self._busy = 0
        self._hold_until = 0.0  # monotonic deadline of the resume hold
        self._route_event = asyncio.Event()
        self.stats = InboundStats()
        #: Whether our own publishes await acknowledgements on this socket; while they do,
        #: a full queue does not pause reading (a handler waiting for a PUBACK would wait forever).
        self.awaiting_acks: Callable[[], bool] = _never
        #: Spans and metrics of each handler call (the manager's), if any.
        self.observer: Observer | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the handler workers."""
        self._running = True
        self._closing = False
        for index in range(self._concurrency):
            self._start_worker(index)

    def _start_worker(self, index: int) -> None:
        def restart(task: asyncio.Task[Any]) -> None:
            self._workers.discard(task)
            if self._running and not task.cancelled():  # a worker ended by a bug: keep the concurrency
                self._start_worker(index)

        self._workers.add(self._tasks.spawn(self._work(), f"handler-{index}", on_exit=restart))

    def attach(self, client: Client) -> None:
        """Use a freshly connected client for acks and flow control."""
        self._client = client

    def hold_unrouted(self, seconds: float) -> None:
        """Open the resume hold: messages without a handler wait up to ``seconds`` for one."""
        self._hold_until = time.monotonic() + seconds

    def connection_lost(self) -> None:
        """Forget acks of the lost connection: the broker redelivers those messages."""
        self._generation += 1
        self._pending.clear()
        self._client = None

    @property
    def queued(self) -> int:
        """Messages received and not yet finished (queued, running or held)."""
        return self._queue.qsize() + self._busy

    async def drain(self, timeout: float) -> bool:  # noqa: ASYNC109 - a drain deadline, not a call timeout
        """Wait until the queue is empty and no handler runs; False on timeout.

        Messages in the resume hold (and those that would enter it) give up at once and
        stay unacknowledged, so the broker delivers them again to the next run.
        """
        self._closing = True
        self._routes_changed()  # held messages give up now (they stay unacknowledged)
        deadline = time.monotonic() + timeout
        while self._queue.qsize() or self._busy:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def stop(self) -> None:
        """Cancel the workers."""
        self._running = False
        workers, self._workers = list(self._workers), set()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    def _routes_changed(self) -> None:
        event, self._route_event = self._route_event, asyncio.Event()
        event.set()

    # ------------------------------------------------------------------ paho callback
    def deliver(self, message: Received) -> None:
        """Queue one message (called by the client inside the event loop; never raises)."""
        pending = None
        if message.qos > 0:
            pending = _Pending(message.mid, message.qos, self._generation)
            self._pending.append(pending)
        self._queue.put_nowait((message, pending))
        stats = self.stats
        stats.received += 1
        stats.last_message_at = time.time()
        if self._client is not None and self._queue.qsize() >= self._max_queued and not self.awaiting_acks():
            self._client.pause_reading()

    def allow_reading(self) -> None:
        """Resume reading now (an acknowledgement we wait for must get through); pausing resumes later."""
        client = self._client
        if client is not None and client.paused:
            client.resume_reading()

    # ------------------------------------------------------------------ workers
    async def _work(self) -> None:
        queue = self._queue
        while True:
            message, pending = await queue.get()
            client = self._client
            if client is not None and client.paused and queue.qsize() < self._resume_below:
                client.resume_reading()
            # A message of a lost connection is still handled: the broker may redeliver it
            # (a duplicate), but after a broker crash it may also have forgotten it.
            self._busy += 1
            finished = False
            try:
                finished = await self._process(message)
            except Exception as exc:  # noqa: BLE001 - never ack a message nobody saw: dead-letter it
                detail = f"{type(exc).__name__}: {exc}"
                await self._dead_letters.send(DeadLetter(_topic(message), _raw(message), "processing_error", detail))
                finished = True
            finally:
                self._busy -= 1
                if finished:  # not when cancelled, nor given up at shutdown: the broker redelivers it
                    self.stats.handled += 1
                    if pending is not None:
                        self._finish(pending)

    def _finish(self, pending: _Pending) -> None:
        pending.done = True
        queue = self._pending
        client = self._client
        while queue and queue[0].done:
            head = queue.popleft()
            if client is not None and head.generation == self._generation:
                client.ack(head.mid, head.qos)

    async def _route(self, topic: str, identifiers: list[int] | None) -> Routes | None:
        """Return the message's routes, waiting in the resume hold if it has none; None: given up at shutdown."""
        routes = self._router.routes(topic, identifiers)
        if routes or time.monotonic() >= self._hold_until:
            return routes
        self.stats.held += 1
        try:
            while not self._closing and (left := self._hold_until - time.monotonic()) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._route_event.wait(), left)
                routes = self._router.routes(topic, identifiers)
                if routes:
                    return routes
        finally:
            self.stats.held -= 1
        return None if self._closing else routes

    async def _process(self, message: Received) -> bool:
        """Hand the message to its handlers or the dead letter; False if it must stay unacknowledged."""
        try:
            topic = message.topic
        except UnicodeDecodeError:
            await self._dead_letters.send(DeadLetter("", _raw(message), "decode_error", "topic is not valid UTF-8"))
            return True
        props = message.properties
        identifiers = getattr(props, "SubscriptionIdentifier", None) if props is not None else None
        routes = await self._route(topic, identifiers)
        if routes is None:
            return False
        raw = bytes(message.payload)
        if not routes:
            detail = "no subscription of this manager matches the topic"
            extra: dict[str, Any] = {}
            if identifiers:
                detail += f" (the broker named subscription identifiers {identifiers}: a filter of an earlier run)"
                extra["subscription_identifiers"] = list(identifiers)
            await self._dead_letters.send(DeadLetter(topic, raw, "no_handler", detail, None, extra))
            return True
        user_props = getattr(props, "UserProperty", None) if props is not None else None
        decoded: Any = _UNDECODED
        cid: str | None = None
        carrier: dict[str, str] = {}
        for sub, params in routes:
            if sub.decode:
                if decoded is _UNDECODED:
                    try:
                        decoded = self._loads(raw)
                    except Exception as exc:  # noqa: BLE001 - JSON, UTF-8, RecursionError (deep nesting)...
                        reason = f"{type(exc).__name__}: {exc}"
                        await self._dead_letters.send(
                            DeadLetter(topic, raw, "decode_error", reason, sub.pattern.mqtt_filter)
                        )
                        return True
                    cid, carrier = _context.extract(user_props, decoded)
                value = decoded
                if sub.model is not None:
                    try:
                        value = sub.model.model_validate(decoded)
                    except Exception as exc:  # noqa: BLE001 - pydantic.ValidationError, or anything a validator raised
                        letter = DeadLetter(topic, raw, "validation_error", str(exc), sub.pattern.mqtt_filter)
                        await self._dead_letters.send(letter)
                        continue
            else:
                value = raw
                if user_props and not carrier:
                    cid, carrier = _context.extract(user_props, None)
            msg = MQTTMessage(
                topic,
                value,
                raw,
                qos=message.qos,
                retain=bool(message.retain),
                duplicate=bool(message.dup),
                params=dict(params) if params else {},
                correlation_id=cid,
                trace_context=carrier,
                properties=props,
            )
            failure = await self._dispatch(sub, msg, cid, carrier)
            if failure is not None:
                await self._handler_failed(sub, msg, failure)
        return True

    def _dispatch(
        self, sub: Subscription, msg: MQTTMessage, cid: str | None, carrier: dict[str, str]
    ) -> Awaitable[BaseException | None]:
        """The handler call, in a span and counted if the manager is observed."""
        observer = self.observer
        found = tracer() if observer is not None else None
        if observer is None or (found is None and observer.metrics is None):
            return self._call(sub, msg, cid, carrier)
        if observer.metrics is None and (dropped := observer.dropped(found, carrier)) is not None:
            return self._call(sub, msg, cid, {}, dropped)  # not sampled: no SDK span
        return observer.process(self._call, sub, msg, cid, carrier, found=found)

    def _call(
        self, sub: Subscription, msg: MQTTMessage, cid: str | None, carrier: dict[str, str], otel: Any = None
    ) -> Awaitable[BaseException | None]:
        """The handler call; ``otel``: an OpenTelemetry context to run it under (a dropped message's).

        A plain function returning the coroutine: the untraced path pays no extra coroutine.
        """
        if otel is None:
            return self._run(sub, msg, cid, carrier)
        return self._run_under(otel, sub, msg, cid, carrier)

    async def _run_under(
        self, otel: Any, sub: Subscription, msg: MQTTMessage, cid: str | None, carrier: dict[str, str]
    ) -> BaseException | None:
        token = _observe.attach(otel)
        try:
            return await self._run(sub, msg, cid, carrier)
        finally:
            _observe.detach(token)

    async def _run(
        self, sub: Subscription, msg: MQTTMessage, cid: str | None, carrier: dict[str, str]
    ) -> BaseException | None:
        try:
            if cid is None and not carrier:
                result = sub.handler(msg)
                if inspect.isawaitable(result):
                    await result
            else:
                with _context.handler_scope(cid, carrier):
                    result = sub.handler(msg)
                    if inspect.isawaitable(result):
                        await result
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this worker is being stopped
            # The handler's own CancelledError (e.g. it awaited a cancelled future): a failure
            # like any other, or it would end this worker and shrink the handler concurrency.
            return exc
        except Exception as exc:  # noqa: BLE001 - a handler failure is logged and counted, never raised
            return exc
        return None

    async def _handler_failed(self, sub: Subscription, msg: MQTTMessage, exc: BaseException) -> None:
        self.stats.handler_errors += 1
        logger.error("MQTT handler %r failed for topic %s", sub.handler, msg.topic, exc_info=exc)
        # MQTT has no negative ack: the message is acknowledged (a poison message would
        # otherwise come back on every reconnect and hold up the in-order acks), so hand it
        # to the dead-letter hook/topic for whoever must look at it.
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        await self._dead_letters.send(DeadLetter(msg.topic, msg.raw, "handler_error", detail, sub.pattern.mqtt_filter))


def _never() -> bool:
    return False


def _topic(message: Received) -> str:
    try:
        return message.topic
    except UnicodeDecodeError:
        return ""


def _raw(message: Received) -> bytes:
    return bytes(message.payload)
