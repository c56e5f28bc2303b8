"""The module structure of energy_messaging: exact public ``__all__`` per module, no import circles.

A newcomer should be able to draw the architecture from the folder listing; these tests
keep it drawable: every public module's ``__all__`` is pinned, every name has one home,
and the module-level imports form no circle (checked on the source and in interpreters
that import each module first).
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "packages" / "energy-messaging" / "src" / "energy_messaging"

EVENTS = [
    "CONTENT_TYPE", "MAX_EVENT_BYTES", "SPECVERSION", "DeadLetter", "DeadLetterHook", "DeadLetterNotFoundError",
    "DeadLetterReplayError", "Event", "EventBus",
    "EventBusClosedError", "EventBusConfigurationError", "EventBusConnectionError", "EventBusError", "EventBusStats",
    "EventHandler", "EventInProgressError", "IdempotencyState", "IdempotencyStore", "InMemoryEventBus",
    "InMemoryIdempotencyStore", "InvalidEventError", "MemoryStreams", "TransportEventBus", "build_event",
    "create_event_bus", "decode_event", "encode_event", "idempotent", "validate_event_type",
]  # fmt: skip

PUBLIC_ALL: dict[str, list[str]] = {
    "energy_messaging": [
        "Command", "CommandError", "CommandExpiredError", "CommandFailedError", "CommandState",
        "CommandTimeoutError", "DeadLetter", "Device", "DeviceManager", "DeviceOfflineError", "DeviceRegistry",
        "DeviceSimulator", "DeviceTopics", "Event", "EventBus", "EventBusClosedError", "EventBusConfigurationError",
        "EventBusConnectionError", "EventBusError", "EventBusStats", "EventHandler", "EventInProgressError",
        "IdempotencyStore", "InMemoryDeviceRegistry", "InMemoryEventBus", "InMemoryIdempotencyStore",
        "InvalidEventError", "LastWill", "MQTTHealthCheck", "MQTTManager", "MQTTMessage", "MQTTOptions",
        "MQTTOptionsError", "MQTTState", "MessageTooLargeError", "NotConnectedError", "PayloadEncodeError",
        "PublishBufferFullError", "PublishError", "Subscription", "TopicPattern", "TopicValidationError",
        "__version__", "build_topic", "create_event_bus", "idempotent", "topic_level",
    ],
    "energy_messaging.mqtt": [
        "BrokerDrops", "DeadLetter", "DeadLetterHook", "DeviceManager", "Handler", "LastWill", "MQTTManager",
        "MQTTMessage", "MQTTOptions", "MQTTSettings", "MQTTState", "MetricsSink", "ProtocolChoice", "Subscription",
        "topic_template",
    ],
    "energy_messaging.devices": [
        "CONTEXT_FIELD", "Command", "CommandHook", "CommandMetrics", "CommandOptions", "CommandState",
        "CommandStore", "Device", "DeviceManager", "DeviceRegistry", "DeviceState", "DeviceTopics",
        "InMemoryCommandStore", "InMemoryDeviceRegistry", "StatusUpdate", "TelemetryHandler",
        "accepts_status", "command_payload", "command_result", "parse_reply", "parse_status", "reply_payload", "status_payload",
    ],
    "energy_messaging.errors": [
        "CommandError", "CommandExpiredError", "CommandFailedError", "CommandLimitError",
        "CommandNotCancellableError", "CommandStoreError", "CommandTimeoutError", "DeviceOfflineError",
        "MQTTOptionsError", "MessageTooLargeError", "MessagingConnectionError", "MessagingError",
        "NotConnectedError", "PayloadEncodeError", "PublishBufferFullError", "PublishError", "TopicValidationError",
    ],
    "energy_messaging.topics": [
        "MAX_TOPIC_BYTES", "TopicPattern", "build_topic", "topic_level", "validate_topic", "validate_topic_filter",
    ],
    "energy_messaging.dynsec": [
        "CONTROL_TOPIC", "DEFAULT_ACL_ACCESS", "RESPONSE_TOPIC", "CredentialChange", "DynamicSecurityClient",
        "DynamicSecurityError", "DynamicSecuritySync", "acl_changes", "bootstrap_config", "client_role_name",
        "fill_pattern", "role_acls",
    ],
    "energy_messaging.health": ["MQTTHealthCheck"],
    "energy_messaging.simulator": ["CommandFunction", "DeviceSimulator"],
    "energy_messaging.deadletters": [
        "DEFAULT_MQTT_STREAM", "DeadLetterQueue", "DeadLetterRecord", "MQTTDeadLetterStore", "MQTTRepublisher",
        "Republish", "check_ids", "event_dead_letters",
    ],
    "energy_messaging.deadletters.__main__": ["main", "parser"],
    "energy_messaging.events": EVENTS,
    "energy_messaging.events.outbox": [
        "BatchOutboxPublisher", "EventBusPublisher", "MQTTPublisher", "OutboxPublisher", "OutboxRecord", "OutboxRelay", "OutboxRelayStats",
        "add_event", "outbox_message",
    ],
    "energy_messaging.events.redis_streams": ["RedisIdempotencyStore", "RedisStreamsEventBus", "RedisStreamsTransport"],
    "energy_messaging.redis_registry": ["RedisDeviceRegistry"],
    "energy_messaging.redis_commands": ["RedisCommandStore"],
    "energy_messaging.sql_commands": ["COMMANDS_METADATA", "SQLCommandStore"],
}  # fmt: skip

#: Names re-exported on purpose by a second public module: the top package forwards
#: everything, ``mqtt.DeviceManager`` is the seed's path, ``errors`` repeats energy-common's umbrellas.
SECOND_DOORS = {("energy_messaging.mqtt", "DeviceManager")}


def all_modules() -> list[str]:
    """Dotted names of every module of the package."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.parametrize("module", sorted(PUBLIC_ALL))
def test_public_all_is_pinned(module: str) -> None:
    """Each public module exports exactly the pinned names, sorted, and every one resolves."""
    mod = importlib.import_module(module)
    assert list(mod.__all__) == PUBLIC_ALL[module]
    for name in mod.__all__:
        assert getattr(mod, name) is not None or name == "__version__", name
    assert set(mod.__all__) <= set(dir(mod))


def test_each_name_has_one_public_home() -> None:
    """Apart from the top package's forwarding and the seed path, no two public modules export the same object."""
    homes: dict[int, list[str]] = {}
    for module, names in PUBLIC_ALL.items():
        if module == "energy_messaging":
            continue
        mod = importlib.import_module(module)
        for name in names:
            value = getattr(mod, name)
            if isinstance(value, (str, int)) or (module, name) in SECOND_DOORS:
                continue
            homes.setdefault(id(value), []).append(f"{module}.{name}")
    assert [places for places in homes.values() if len(places) > 1] == []


def test_top_package_forwards_to_the_public_homes() -> None:
    """Every name of ``energy_messaging`` is the very object of a public subpackage/module."""
    import energy_messaging

    others = [importlib.import_module(module) for module in PUBLIC_ALL if module != "energy_messaging"]
    for name in energy_messaging.__all__:
        if name == "__version__":
            continue
        value = getattr(energy_messaging, name)
        assert any(getattr(mod, name, None) is value for mod in others), name


def module_imports(path: Path, module: str) -> set[str]:
    """energy_messaging modules imported when ``module`` runs (module level, outside ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    known = set(all_modules())

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known)

    visit(tree.body)
    return {name for name in found if name in known and name != module}


def test_module_level_imports_form_no_circle() -> None:
    """The graph of module-level imports inside energy_messaging has no cycle (names the first one found)."""
    modules = all_modules()
    paths = dict(zip(modules, sorted(PACKAGE.rglob("*.py")), strict=True))
    graph = {name: module_imports(paths[name], name) for name in modules}
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (cycle := walk(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for name in modules:
        if name not in state:
            assert walk(name) is None, " -> ".join(walk(name) or [])


SCRIPT = """
import importlib, sys
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "energy_messaging" or m.startswith("energy_messaging.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except ImportError as exc:
        if "energy-messaging[" not in str(exc):  # a missing extra is reported by name: fine
            failed.append(f"{name}: {exc!r}")
print("\\n".join(failed))
"""


def test_every_module_imports_first() -> None:
    """Each module imports on its own, as the first energy_messaging module loaded (no order-dependent circle)."""
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, *all_modules()], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == ""
