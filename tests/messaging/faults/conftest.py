"""Fault-test helpers for the MQTT delivery guarantee: a loopback TCP proxy and consumer processes.

* :class:`TcpProxy` forwards loopback TCP connections to a broker and cuts all of them
  (RST, as a dying NAT or a pulled cable would) whenever the test says so; it can also
  refuse new connections for a while.
* :class:`ConsumerProcess` runs an :class:`~energy_messaging.mqtt.MQTTManager` consumer
  in its own Python process (stable ``client_id``, persistent session, QoS 1) that can be
  killed with SIGKILL and started again (the program is ``_consumer.py``). Every handled
  message and every dead letter is written with one unbuffered ``os.write`` before the
  handler returns (so before the ack): the kernel keeps it when the process is killed.
  Its ``state`` is written to a JSON file every 50 ms.

Everything talks to 127.0.0.1 only, and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


async def _poll(
    condition: Callable[[], object],
    within: float,
    what: Callable[[], str],
    *,
    progress: Callable[[], object] | None = None,
    stall: float = 20.0,
) -> None:
    """Poll ``condition`` every 20 ms until it holds; fail naming ``what()`` after ``within`` s.

    With ``progress`` (a function whose value changes while work is still being done, e.g.
    a count of handled messages) it fails early once that value stayed the same for
    ``stall`` seconds: nothing more is coming.
    """
    start = time.monotonic()
    deadline = start + within
    last, changed = (progress() if progress else None), start
    while not condition():
        now = time.monotonic()
        if now > deadline:
            pytest.fail(f"timed out after {within} s waiting for {what()}")
        if progress is not None:
            value = progress()
            if value != last:
                last, changed = value, now
            elif now - changed > stall:
                pytest.fail(f"no progress for {stall} s (at {value!r}) waiting for {what()}")
        await asyncio.sleep(0.02)


@pytest.fixture
def poll() -> Callable[..., Any]:
    """``await poll(condition, within, what, progress=..., stall=...)``: see :func:`_poll`."""
    return _poll


@pytest.fixture
def private_broker(mosquitto_factory: Callable[..., Any]) -> Callable[..., Any]:
    """Start a private Mosquitto that saves every session change (a restart loses no session).

    Call it as ``private_broker()`` or with extra config lines.
    """

    def make(extra_config: list[str] | None = None) -> Any:
        return mosquitto_factory(["autosave_on_changes true", *(extra_config or [])])

    return make


DYNSEC_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")


@pytest.fixture
def acl_broker(private_broker: Callable[..., Any], tmp_path: Path) -> Callable[[list[str]], Any]:
    """Start a private Mosquitto whose anonymous clients may subscribe only to the given filters.

    Call it as ``acl_broker(["allowed/#"])``: the dynamic-security plugin refuses every
    other subscription in the SUBACK (0x87 on MQTT 5, 0x80 on 3.1.1); publishing stays open.
    Without the plugin (it comes with Debian's mosquitto package) the broker does not start
    and the error shows its log.
    """

    def make(allowed: list[str]) -> Any:
        acls = [{"acltype": "subscribePattern", "topic": f, "priority": 0, "allow": True} for f in allowed]
        config = {
            "defaultACLAccess": {
                "publishClientSend": True,
                "publishClientReceive": True,
                "subscribe": False,
                "unsubscribe": True,
            },
            "clients": [],
            "groups": [{"groupname": "anonymous", "roles": [{"rolename": "anonymous"}], "clients": []}],
            "roles": [{"rolename": "anonymous", "acls": acls}],
            "anonymousGroup": "anonymous",
        }
        path = tmp_path / "dynamic-security.json"
        path.write_text(json.dumps(config))
        return private_broker([f"plugin {DYNSEC_PLUGIN}", f"plugin_opt_config_file {path}"])

    return make


# --------------------------------------------------------------------------- TCP proxy


class TcpProxy:
    """A loopback TCP proxy in the test's event loop that forwards to ``target`` and cuts on demand.

    Attributes:
        port: The port it listens on (after ``start()``).
        accepted: Connections forwarded so far.
        cuts: Connections cut by :meth:`cut` so far.
        refusing: While True, new connections are accepted and reset at once (a broker
            that dies during the CONNECT); :meth:`shut` refuses them at the TCP level.
        refused: Connections reset because ``refusing`` was on.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.host = "127.0.0.1"
        self.port = 0
        self.accepted = 0
        self.cuts = 0
        self.refusing = False
        self.refused = 0
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def open_links(self) -> int:
        """Connections forwarded right now."""
        return len(self._links)

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def shut(self) -> None:
        """Stop listening: new connections are refused (ECONNREFUSED), open ones go on."""
        if self._server is not None:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def reopen(self) -> None:
        """Listen again on the same port after :meth:`shut`."""
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, self.host, self.port)

    async def close(self) -> None:
        """Stop listening and cut every connection."""
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def cut(self) -> int:
        """Reset every forwarded connection on both sides; return how many were cut."""
        links = list(self._links)
        self._links.clear()
        for client, upstream in links:
            client.transport.abort()
            upstream.transport.abort()
        self.cuts += len(links)
        return len(links)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self.refusing:
                self.refused += 1
                writer.transport.abort()
                return
            try:
                up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*self.target), 5)
            except (OSError, TimeoutError):
                writer.transport.abort()
                return
            link = (writer, up_writer)
            self._links.add(link)
            self.accepted += 1
            try:
                await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            finally:
                self._links.discard(link)
                writer.transport.abort()
                up_writer.transport.abort()
        finally:
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65_536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            # One side ended: end the other too (MQTT has no use for half-closed links).
            writer.transport.abort()


@pytest.fixture
async def tcp_proxy() -> AsyncIterator[Callable[[str, int], Any]]:
    """Factory ``await tcp_proxy(host, port)`` for started :class:`TcpProxy` objects, closed after the test."""
    proxies: list[TcpProxy] = []

    async def make(host: str, port: int) -> TcpProxy:
        proxy = TcpProxy(host, port)
        await proxy.start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        await proxy.close()


# --------------------------------------------------------------------------- consumer process

#: The consumer program (run by path, never imported by the tests).
CONSUMER_SCRIPT = Path(__file__).with_name("_consumer.py")


@dataclass
class ConsumerProcess:
    """An MQTTManager consumer in a child process; ``start()``/``kill()`` it as often as needed.

    Args:
        workdir: Where the output, the state file and the process's stderr go.
        port: Broker (or proxy) port on 127.0.0.1.
        client_id: The stable client id (one persistent session across restarts).
        filters: ``(handler name, topic filter)`` pairs, registered in this order.
        order: ``"connect-first"`` (``connect()`` then registration, the seed's order) or
            ``"register-first"`` (registration, then ``connect()``).
        api: ``"subscribe"`` (``await subscribe(...)``) or ``"on"`` (the decorator).
        work: Seconds each handler sleeps (so a kill lands mid-stream).
        concurrency: ``handler_concurrency`` of the manager.
        register_delay: With ``"connect-first"``, seconds between ``connect()`` and the
            registration (an application still starting up).
    """

    workdir: Path
    port: int
    client_id: str
    filters: list[tuple[str, str]]
    order: str = "register-first"
    api: str = "subscribe"
    work: float = 0.001
    concurrency: int = 4
    register_delay: float = 0.0
    starts: int = 0
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    @property
    def out(self) -> Path:
        """The file of handled messages and dead letters (tab-separated lines)."""
        return self.workdir / "consumer.out"

    @property
    def state_file(self) -> Path:
        """The JSON file holding the consumer's latest ``state.to_dict()``."""
        return self.workdir / "consumer.state.json"

    async def start(self, timeout: float = 60.0, *, until: str = "ready") -> None:  # noqa: ASYNC109 - a budget
        """Start the process and wait until it printed ``until``.

        ``"connected"`` comes once ``connect()`` returned, ``"ready"`` once the handlers are
        registered too.
        """
        assert self.process is None or self.process.returncode is not None, "already running"
        self.out.touch()
        self.state_file.unlink(missing_ok=True)
        config = {
            "port": self.port,
            "client_id": self.client_id,
            "filters": self.filters,
            "order": self.order,
            "api": self.api,
            "work": self.work,
            "concurrency": self.concurrency,
            "register_delay": self.register_delay,
            "out": str(self.out),
            "state": str(self.state_file),
        }
        log = (self.workdir / f"consumer-{self.starts}.log").open("wb")
        self.starts += 1
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, str(CONSUMER_SCRIPT), json.dumps(config), stdout=asyncio.subprocess.PIPE, stderr=log
        )
        log.close()
        assert self.process.stdout is not None
        line = b""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while line.strip() != until.encode():
                    line = await self.process.stdout.readline()
                    if not line:
                        break
        if line.strip() != until.encode():
            await self.kill()
            pytest.fail(f"the consumer process did not start:\n{self.stderr()[-3000:]}")

    async def kill(self) -> None:
        """SIGKILL the process, as a crash would, and reap it."""
        proc = self.process
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 30)

    def stderr(self) -> str:
        """What the consumer processes wrote to stderr so far (logs, tracebacks)."""
        return "".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("consumer-*.log")))

    def lines(self) -> list[list[str]]:
        """The records written so far, each ``[kind, name-or-reason, topic, payload]``."""
        text = self.out.read_text(encoding="utf-8", errors="replace")
        # A line cut by the kill has no newline yet: ignore the unfinished tail.
        return [line.split("\t", 3) for line in text.split("\n")[:-1]]

    def handled(self, name: str | None = None) -> list[dict[str, Any]]:
        """JSON payloads handled so far (by handler ``name``, or by any)."""
        return [
            json.loads(fields[3])
            for fields in self.lines()
            if fields[0] == "handled" and (name is None or fields[1] == name)
        ]

    def dead_letters(self) -> list[tuple[str, str]]:
        """``(reason, topic)`` of every dead letter so far."""
        return [(fields[1], fields[2]) for fields in self.lines() if fields[0] == "dead"]

    def state(self) -> dict[str, Any] | None:
        """The latest state snapshot the process wrote, or None before the first one."""
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            return None


@pytest.fixture
async def consumer_process(tmp_path: Path) -> AsyncIterator[Callable[..., ConsumerProcess]]:
    """Factory for :class:`ConsumerProcess` objects (not started); every one is killed after the test."""
    made: list[ConsumerProcess] = []

    def make(port: int, client_id: str, filters: list[tuple[str, str]], **options: Any) -> ConsumerProcess:
        workdir = tmp_path / f"consumer-{len(made)}"
        workdir.mkdir()
        consumer = ConsumerProcess(workdir, port, client_id, filters, **options)
        made.append(consumer)
        return consumer

    yield make
    for consumer in made:
        await consumer.kill()


# --------------------------------------------------------------------------- observation


@dataclass
class LoopErrors:
    """Exceptions the event loop reported to its exception handler during the test."""

    contexts: list[dict[str, Any]] = field(default_factory=list)

    def messages(self) -> list[str]:
        """One line per report: its message and the exception, if any."""
        return [f"{ctx.get('message')}: {ctx.get('exception')!r}" for ctx in self.contexts]


@pytest.fixture
async def loop_errors() -> AsyncIterator[LoopErrors]:
    """Collect what reaches the loop's exception handler ("Task exception was never retrieved"...)."""
    loop = asyncio.get_running_loop()
    errors = LoopErrors()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.contexts.append(context))
    yield errors
    loop.set_exception_handler(previous)


class RecordList(logging.Handler):
    """A logging handler keeping every record of the ``energy_messaging`` loggers."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record."""
        self.records.append(record)

    def at_least(self, level: int) -> list[logging.LogRecord]:
        """The records at ``level`` or above."""
        return [record for record in self.records if record.levelno >= level]


@pytest.fixture
def messaging_logs() -> Iterator[RecordList]:
    """Every record logged under ``energy_messaging`` during the test (the logger level is opened to DEBUG)."""
    logger = logging.getLogger("energy_messaging")
    handler = RecordList()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def unique() -> str:
    """A short id unique to this test run (client ids, topics)."""
    return f"{os.getpid()}-{time.monotonic_ns() % 10**9}"
