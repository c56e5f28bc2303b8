"""The aiomqtt/paho internals energy_messaging.mqtt._client relies on are still there, in the declared versions.

If one of these fails after an upgrade, read ``_client.RELIED_ON`` and the module
docstring of ``energy_messaging.mqtt._client`` before widening the version range.
"""

from __future__ import annotations

import ast
import inspect
import tomllib
from importlib import metadata
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
import pytest
from energy_messaging.mqtt import _client

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "packages" / "energy-messaging" / "src" / "energy_messaging"


def declared_major_range(name: str) -> tuple[int, int]:
    """The ``>=X.Y,<Z`` range of a dependency in energy-messaging's pyproject, as (lowest major, first excluded)."""
    data = tomllib.loads((PACKAGE.parents[1] / "pyproject.toml").read_text())
    spec = next(dep for dep in data["project"]["dependencies"] if dep.startswith(name))
    low = next(part for part in spec[len(name) :].split(",") if part.startswith(">="))
    high = next(part for part in spec[len(name) :].split(",") if part.startswith("<"))
    return int(low[2:].split(".")[0]), int(high[1:].split(".")[0])


@pytest.mark.parametrize(("distribution", "name"), [("aiomqtt", "aiomqtt"), ("paho-mqtt", "paho-mqtt")])
def test_installed_versions_are_in_the_declared_range(distribution: str, name: str) -> None:
    """aiomqtt and paho-mqtt are installed within the range the pyproject declares (the contract was checked there)."""
    low, high = declared_major_range(name)
    major = int(metadata.version(distribution).split(".")[0])
    assert low <= major < high


async def test_every_internal_relied_on_exists() -> None:
    """Every private aiomqtt/paho name _client uses exists on the installed versions."""
    assert _client.missing_internals() == []


def test_relied_on_lists_every_private_name_the_client_uses() -> None:
    """Each ``._name`` attribute of an aiomqtt/paho object in _client.py is listed in RELIED_ON (so the check is complete)."""
    tree = ast.parse((PACKAGE / "mqtt" / "_client.py").read_text())
    ours = {"_deliver", "_lost", "_reader", "_paused", "_acked", "_loop_thread", "_paho_packet_handle", "_connack"}
    ours |= {"_task_prefix", "_connection_ended"}
    ours |= {"_write_scheduled", "_writer", "_schedule_write", "_stop_writer", "_write", "_packet_handle"}
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
    }
    listed = {name for names in _client.RELIED_ON.values() for name in names}
    assert used - ours - listed == set()


def test_paho_packet_shapes_are_the_ones_written() -> None:
    """paho's queued packets are dicts with the keys _client writes and reads, and its callbacks take the arguments we take."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.subscribe  # noqa: B018 - a public name, for completeness
    source = inspect.getsource(paho.Client._packet_queue)
    for key in ("command", "mid", "qos", "pos", "to_process", "packet", "info"):
        assert f'"{key}"' in source or f"'{key}'" in source, key
    assert {"command", "packet"} <= set(client._in_packet)
    for hook in ("_on_connect", "_on_disconnect"):
        params = list(inspect.signature(getattr(aiomqtt.Client, hook)).parameters)
        assert params[:6] == ["self", "client", "userdata", "flags", "reason_code", "properties"], hook


def test_no_other_module_touches_aiomqtt_or_paho_internals() -> None:
    """Outside _client.py no module of energy_messaging reads a private attribute of aiomqtt/paho or imports aiomqtt.exceptions."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "_client.py" or "events" in path.parts:
            continue
        text = path.read_text()
        if "aiomqtt.exceptions" in text or "paho.mqtt._" in text:
            offenders.append(str(path))
        offenders.extend(
            f"{path.name}: {node.value.id}.{node.attr}"
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in {"aiomqtt", "paho"}
            and node.attr.startswith("_")
        )
    assert offenders == []
