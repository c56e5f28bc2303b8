"""The meter service's Prometheus rules and Grafana dashboard, checked by the real tools.

``promtool`` checks the rules and runs their unit tests (a firing and a quiet case per
alert). Then the real service (``python -m meter_service`` on the embedded defaults, with
simulated meters) runs on a free loopback port, the test provokes every event the
dashboard shows (a successful and a failed command, dead letters, duplicate readings, a
database write that fails while another writer holds the SQLite lock, HTTP 4xx), and a
private Prometheus scraping it every second must return at least one series for every
dashboard query and every recording rule, and evaluate every rule without error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("meter_service")

import httpx
import yaml
from energy_messaging import MQTTManager

OBSERVABILITY = Path(__file__).resolve().parents[2] / "examples" / "meter-service" / "observability"
RULES = OBSERVABILITY / "prometheus" / "meter-service.rules.yml"
RULE_TESTS = OBSERVABILITY / "prometheus" / "meter-service.rules.test.yml"
EXAMPLE_CONFIG = OBSERVABILITY / "prometheus" / "prometheus.yml"
DASHBOARD = OBSERVABILITY / "grafana" / "meter-service.json"

JOB = "meter-service"
PASSWORD = "correct horse battery staple"
_ENGINE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "MQTT_URL", "ADMIN_PASSWORD", "ENVIRONMENT", "TRACING_EXPORTER")
#: What Grafana's variables stand for when the queries run here.
_VARIABLES = {"$__rate_interval": "10s", "$job": JOB}


def promtool_run(promtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run promtool with a time bound; return its completed process (stdout and stderr as text)."""
    argv = [promtool, *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def rule_groups(path: Path = RULES) -> list[dict[str, Any]]:
    """The rule groups of a rules file."""
    return list(yaml.safe_load(path.read_text())["groups"])


def dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard, rows' nested panels included."""
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """``(panel title / refId, expr)`` of every query target of the dashboard."""
    return [
        (f"{panel['title']} / {target['refId']}", target["expr"])
        for panel in dashboard_panels(dashboard["panels"])
        for target in panel.get("targets", [])
    ]


def substitute(expr: str) -> str:
    """Replace the dashboard's Grafana variables with the values used here."""
    for name, value in _VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


# ---------------------------------------------------------------------------- promtool


def test_promtool_accepts_the_rules(promtool: str) -> None:
    """``promtool check rules`` accepts the rules file (syntax, PromQL, names, templates)."""
    result = promtool_run(promtool, "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    count = sum(len(group["rules"]) for group in rule_groups())
    assert f"SUCCESS: {count} rules found" in result.stdout


def test_promtool_rejects_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    """A rules file with a PromQL syntax error fails ``promtool check rules`` with the rule's error."""
    broken = tmp_path / "broken.rules.yml"
    broken.write_text(
        RULES.read_text().replace("sum by (job) (rate(meter_readings_stored_total[5m]))", "sum by (job (", 1)
    )
    result = promtool_run(promtool, "check", "rules", broken)
    assert result.returncode != 0
    assert "parse error" in result.stdout + result.stderr


def test_the_rule_unit_tests_pass(promtool: str) -> None:
    """``promtool test rules`` passes: each alert fires on its firing series and stays quiet otherwise."""
    result = promtool_run(promtool, "test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_rule_unit_tests_catch_a_changed_threshold(promtool: str, tmp_path: Path) -> None:
    """Raising an alert's threshold makes its firing unit test fail (the tests can fail)."""
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    original = "job:meter_mqtt_dead_letters:ratio_rate5m > 0.01"
    assert original in RULES.read_text()
    (tmp_path / RULES.name).write_text(RULES.read_text().replace(original, original[:-4] + "0.5"))
    result = promtool_run(promtool, "test", "rules", tmp_path / RULE_TESTS.name)
    assert result.returncode != 0
    assert "MeterDeadLetterRatioHigh" in result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    """Every alert of the rules file has at least one unit test where it fires and one where it does not."""
    alerts = {rule["alert"] for group in rule_groups() for rule in group["rules"] if "alert" in rule}
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert alerts, "no alerts found"
    assert sorted(alerts - firing) == [], "alerts without a firing case"
    assert sorted(alerts - quiet) == [], "alerts without a quiet case"
    assert sorted((firing | quiet) - alerts) == [], "unit tests of alerts that do not exist"


def test_the_example_prometheus_config_is_valid(promtool: str) -> None:
    """The shipped prometheus.yml passes ``promtool check config`` and loads the rules file."""
    result = promtool_run(promtool, "check", "config", EXAMPLE_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_the_dashboard_is_well_formed() -> None:
    """Unique panel ids, every query on the datasource variable, the job variable in every meter query."""
    dashboard = json.loads(DASHBOARD.read_text())
    panels = list(dashboard_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        assert panel.get("description"), panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
    # Top-level panels fit the 24-column grid without covering each other.
    boxes = [(panel["title"], panel["gridPos"]) for panel in dashboard["panels"]]
    for title, box in boxes:
        assert box["x"] >= 0, title
        assert box["x"] + box["w"] <= 24, title
    for i, (title, a) in enumerate(boxes):
        for other, b in boxes[i + 1 :]:
            apart = (
                a["x"] + a["w"] <= b["x"]
                or b["x"] + b["w"] <= a["x"]
                or a["y"] + a["h"] <= b["y"]
                or b["y"] + b["h"] <= a["y"]
            )
            assert apart, f"panels {title!r} and {other!r} overlap"
    queries = dashboard_queries(dashboard)
    assert queries
    for where, expr in queries:
        for selector in re.findall(r"\b(?:meter_\w+|job:\w+|up)\{([^}]*)\}", expr):
            assert 'job=~"$job"' in selector, f"{where}: {expr}"


# ---------------------------------------------------------------------------- live Prometheus


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MeterProcess:
    """The meter service demo running as a subprocess."""

    process: subprocess.Popen[bytes]
    http_port: int
    broker_port: int
    data_dir: Path
    log: Path

    @property
    def base_url(self) -> str:
        """Where its HTTP API listens."""
        return f"http://127.0.0.1:{self.http_port}"

    def output(self) -> str:
        """The tail of its log."""
        return self.log.read_text(errors="replace")[-3000:]


@contextlib.contextmanager
def meter_service(tmp_path: Path, http_port: int, duration: float = 90) -> Iterator[MeterProcess]:
    """Run ``python -m meter_service`` on the embedded defaults for at most ``duration`` seconds."""
    broker_port = _free_port()
    env = {key: value for key, value in os.environ.items() if key not in _ENGINE_VARIABLES}
    env.update(
        DATA_DIR=str(tmp_path / "data"),
        LOG_LEVEL="WARNING",
        ADMIN_PASSWORD=PASSWORD,
        EMBEDDED_BROKER_PORT=str(broker_port),
        COMMAND_TIMEOUT="2",
    )
    argv = [sys.executable, "-m", "meter_service", "--port", str(http_port), "--meters", "3", "--interval", "0.2"]
    argv += ["--summary-every", "60", "--duration", str(duration)]
    log = tmp_path / "meter-service.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    service = MeterProcess(process, http_port, broker_port, tmp_path / "data", log)
    try:
        yield service
    finally:
        if process.poll() is None:
            process.terminate()  # a graceful stop (the demo handles SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


async def poll(client: httpx.AsyncClient, url: str, seconds: float, what: str, log: str = "") -> None:
    """GET ``url`` until it answers 200, or fail after ``seconds`` (showing ``log``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if (await client.get(url)).status_code == 200:
                return
        await asyncio.sleep(0.2)
    pytest.fail(f"{what} did not answer 200 on {url} within {seconds} s\n{log}")


async def hold_sqlite_write_lock(database: Path, seconds: float) -> None:
    """Hold SQLite's write lock (another writer) so the service's next batch fails once and is retried.

    The service's SQLite connections wait ``busy_timeout`` (5 s) for the lock before failing.
    """
    connection = sqlite3.connect(database, isolation_level=None, timeout=10)
    try:
        connection.execute("BEGIN IMMEDIATE")
        await asyncio.sleep(seconds)
        connection.execute("ROLLBACK")
    finally:
        connection.close()


async def provoke_events(service: MeterProcess, client: httpx.AsyncClient) -> None:
    """Make the service record every kind of event the dashboard shows."""
    response = await client.post("/api/v1/auth/token", json={"username": "admin", "password": PASSWORD})
    assert response.status_code == 200, response.text
    headers = {"Authorization": f"Bearer {response.json()['data']['access_token']}"}
    assert (await client.get("/api/v1/devices", headers=headers)).status_code == 200
    assert (await client.get("/api/v1/devices/no-such-meter", headers=headers)).status_code == 404
    commands = "/api/v1/devices/meter-001/commands"
    succeeded = await client.post(commands, json={"command": "read_meter"}, headers=headers)
    assert succeeded.status_code == 200, succeeded.text
    failed = await client.post(commands, json={"command": "self_destruct"}, headers=headers)
    assert failed.status_code >= 400, failed.text
    reading = {"ts": int(time.time() * 1000) - 3_600_000, "power_w": 1.5}
    async with MQTTManager("127.0.0.1", service.broker_port, protocol="3.1.1") as mqtt:
        await mqtt.publish("devices/meter-001/telemetry", b"{not json")  # a dead letter (decode_error)
        await mqtt.publish("devices/meter-001/telemetry", {"ts": "yesterday", "power_w": -1})  # validation_error
        for _ in range(2):  # the second is a duplicate: same device and ts
            await mqtt.publish(f"devices/dup-{uuid.uuid4().hex[:4]}/telemetry", reading)
            await mqtt.publish("devices/meter-002/telemetry", reading)


async def query(client: httpx.AsyncClient, expr: str) -> list[dict[str, Any]]:
    """Evaluate ``expr`` now; return its result series (the test fails on a query error)."""
    response = await client.get("/api/v1/query", params={"query": expr})
    body = response.json()
    assert body["status"] == "success", f"{expr}: {body.get('error')}"
    return list(body["data"]["result"])


async def wait_for_series(client: httpx.AsyncClient, queries: dict[str, str], seconds: float) -> dict[str, str]:
    """Re-run the queries until each returned a series; return those that never did."""
    missing = dict(queries)
    deadline = time.monotonic() + seconds
    while missing and time.monotonic() < deadline:
        for where, expr in list(missing.items()):
            if await query(client, expr):
                del missing[where]
        if missing:
            await asyncio.sleep(1)
    return missing


def live_queries() -> dict[str, str]:
    """What must return a series: the dashboard's queries and variables, and every recorded series."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = {where: substitute(expr) for where, expr in dashboard_queries(dashboard)}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["definition"])
            assert match is not None, variable["definition"]
            metric, label = match.groups()
            queries[f"variable {variable['name']}"] = f'group by ({label}) ({metric}{{{label}="{JOB}"}})'
    for group in rule_groups():
        for rule in group["rules"]:
            if "record" in rule:
                queries[f"recording rule {rule['record']}"] = rule["record"]
    return queries


@pytest.mark.slow
async def test_every_dashboard_query_and_recording_rule_returns_series_from_a_live_prometheus(
    tmp_path: Path, prometheus_factory: Any
) -> None:
    """A real Prometheus scraping the running service returns series for every dashboard query and recording rule."""
    http_port = _free_port()
    # Prometheus first (it skips or fails here when missing); it scrapes while the service starts.
    prometheus = prometheus_factory([f"127.0.0.1:{http_port}"], job=JOB, rule_files=[RULES])
    with meter_service(tmp_path, http_port) as service:
        async with (
            httpx.AsyncClient(base_url=service.base_url, timeout=15) as client,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{prometheus.port}", timeout=10) as prom,
        ):
            await poll(prom, "/-/ready", 30, "Prometheus")
            await poll(client, "/health/ready", 45, "the meter service", service.output())
            await asyncio.sleep(2)  # a couple of scrapes before the events: rate() sees the increase
            await asyncio.gather(
                provoke_events(service, client),
                hold_sqlite_write_lock(service.data_dir / "meter.db", seconds=7.5),
            )
            missing = await wait_for_series(prom, live_queries(), seconds=30)
            assert missing == {}, "no series for:\n" + "\n".join(f"{k}: {v}" for k, v in missing.items())

            rules = (await prom.get("/api/v1/rules")).json()["data"]["groups"]
            evaluated = {rule["name"]: rule for group in rules for rule in group["rules"]}
            expected = {rule.get("record") or rule["alert"] for group in rule_groups() for rule in group["rules"]}
            assert set(evaluated) == expected
            broken = {name: rule.get("lastError") for name, rule in evaluated.items() if rule["health"] != "ok"}
            assert broken == {}
            assert await query(prom, 'ALERTS{alertname="MeterServiceDown", alertstate="firing"}') == []
            # The provoked events really happened (the service counted them).
            metrics = (await client.get("/metrics")).text
    for name in (
        "meter_ingest_store_failures_total",
        "meter_readings_duplicates_total",
        "meter_mqtt_dead_letters_total",
    ):
        assert name in metrics
    for state in ("succeeded", "failed"):  # both commands' round trips, for the panels by outcome
        assert re.search(rf'meter_command_round_trip_duration_seconds_count{{[^}}]*state="{state}"', metrics), state
