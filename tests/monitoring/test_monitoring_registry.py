"""Tests for MetricsRegistry and the module functions: names, labels, guard, scrape output."""

from __future__ import annotations

import asyncio
import logging

import pytest
from energy_common.exceptions import EnergyError
from energy_monitoring.metrics import (
    OVERFLOW_VALUE,
    MetricConflictError,
    MetricsError,
    MetricsRegistry,
    MetricValueError,
    increment_counter,
    observe,
    render_metrics,
    set_gauge,
    time_it,
    use_registry,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def scrape(registry: MetricsRegistry) -> dict[str, list[Sample]]:
    """Render ``registry`` and parse it with the Prometheus text parser: family name -> samples."""
    body, content_type = render_metrics(registry)
    assert content_type.startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(body.decode())}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """Return the value of the one sample called ``name`` with exactly ``labels``."""
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


def test_seed_metrics_example_runs_and_is_scraped(registry: MetricsRegistry) -> None:
    """The seed README's metrics example works and shows up in the parsed scrape."""
    increment_counter("api.requests", tags={"endpoint": "/users", "method": "GET"})
    increment_counter("api.requests", tags={"method": "GET", "endpoint": "/users"})
    set_gauge("active_connections", 45)

    @time_it("database.query")
    async def get_user(user_id: str) -> str:
        return user_id

    assert asyncio.run(get_user("1")) == "1"
    families = scrape(registry)
    assert value(families["api_requests"], "api_requests_total", endpoint="/users", method="GET") == 2
    assert value(families["active_connections"], "active_connections") == 45
    assert value(families["database_query_duration_seconds"], "database_query_duration_seconds_count") == 1


def test_namespace_and_constant_labels_apply_to_every_series() -> None:
    """A service registry prefixes names and adds its constant labels."""
    reg = MetricsRegistry("billing", const_labels={"service": "billing", "version": "1.2"})
    reg.increment_counter("invoices.sent", 3, tags={"channel": "email"})
    samples = scrape(reg)["billing_invoices_sent"]
    assert value(samples, "billing_invoices_sent_total", channel="email", service="billing", version="1.2") == 3


def test_histogram_buckets_are_configurable(registry: MetricsRegistry) -> None:
    """observe() creates a histogram with the requested buckets."""
    observe("payload.size", 700, tags={"kind": "reading"}, buckets=[100, 1000])
    samples = scrape(registry)["payload_size"]
    bounds = sorted(s.labels["le"] for s in samples if s.name == "payload_size_bucket")
    assert bounds == sorted(["100.0", "1000.0", "+Inf"])
    assert value(samples, "payload_size_bucket", kind="reading", le="100.0") == 0
    assert value(samples, "payload_size_bucket", kind="reading", le="1000.0") == 1


def test_changed_tag_keys_raise_conflict(registry: MetricsRegistry) -> None:
    """Calling a metric with another set of tag keys raises MetricConflictError, an EnergyError."""
    increment_counter("api.requests", tags={"method": "GET"})
    with pytest.raises(MetricConflictError) as info:
        increment_counter("api.requests", tags={"method": "GET", "route": "/x"})
    assert isinstance(info.value, EnergyError)
    assert info.value.error_code == "METRIC_CONFLICT"
    assert "method" in info.value.message


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (lambda r: r.increment_counter("jobs"), lambda r: r.set_gauge("jobs_total", 1)),
        (lambda r: r.set_gauge("queue.depth", 1), lambda r: r.observe("queue_depth", 1.0)),
        (lambda r: r.increment_counter("jobs"), lambda r: r.set_gauge("jobs_created", 1)),
        (lambda r: r.counter("jobs", labels=["a"]), lambda r: r.counter("jobs", labels=["b"])),
        (lambda r: r.histogram("h", buckets=[1, 2]), lambda r: r.histogram("h", buckets=[1, 3])),
    ],
    ids=["counter-vs-gauge", "gauge-vs-histogram", "created-series", "label-set", "buckets"],
)
def test_name_collisions_raise_conflict(first: object, second: object) -> None:
    """Two metrics mapping to the same Prometheus series (or redefinitions) raise MetricConflictError."""
    reg = MetricsRegistry()
    first(reg)  # type: ignore[operator]
    with pytest.raises(MetricConflictError):
        second(reg)  # type: ignore[operator]


def test_constant_label_cannot_be_a_tag() -> None:
    """A tag that repeats a constant label is a conflict."""
    reg = MetricsRegistry(const_labels={"service": "a"})
    with pytest.raises(MetricConflictError):
        reg.increment_counter("x", tags={"service": "b"})


def test_negative_increment_raises_value_error(registry: MetricsRegistry) -> None:
    """A counter only goes up: a negative increment raises MetricValueError."""
    with pytest.raises(MetricValueError):
        increment_counter("jobs.done", -1)


def test_non_strict_registry_logs_once_and_drops(caplog: pytest.LogCaptureFixture) -> None:
    """With strict=False misuse is logged once per problem and the call is dropped."""
    reg = MetricsRegistry(strict=False)
    reg.increment_counter("x", tags={"a": 1})
    with caplog.at_level(logging.ERROR, logger="energy_monitoring.metrics"):
        reg.increment_counter("x", tags={"b": 1})
        reg.increment_counter("x", tags={"b": 1})
        reg.increment_counter("x", -5, tags={"a": 1})
    assert len(caplog.records) == 2
    assert reg.collector_registry.get_sample_value("x_total", {"a": "1"}) == 1


def test_cardinality_guard_sends_new_label_sets_to_overflow(caplog: pytest.LogCaptureFixture) -> None:
    """Past max_label_sets new label sets go to the overflow series, with one warning."""
    reg = MetricsRegistry(max_label_sets=3)
    with caplog.at_level(logging.WARNING, logger="energy_monitoring.metrics"):
        for user in range(10):
            reg.increment_counter("logins", tags={"user": f"u{user}"})
        reg.increment_counter("logins", tags={"user": "u0"})
    samples = scrape(reg)["logins"]
    totals = {s.labels["user"]: s.value for s in samples if s.name == "logins_total"}
    assert totals == {"u0": 2, "u1": 1, "u2": 1, OVERFLOW_VALUE: 7}
    warnings = [r for r in caplog.records if "label sets" in r.getMessage()]
    assert len(warnings) == 1
    family = reg.counter("logins", labels=["user"])
    assert family.overflowed
    assert family.label_set_count == 3


def test_tag_order_and_value_types_map_to_one_series(registry: MetricsRegistry) -> None:
    """Tags given in another order or with non-string values hit the same series."""
    increment_counter("hits", tags={"a": 1, "b": "x"})
    increment_counter("hits", tags={"b": "x", "a": "1"})
    increment_counter("hits", tags={"a": 1, "b": ["x"]})  # unhashable value: slow path, stringified
    samples = scrape(registry)["hits"]
    assert value(samples, "hits_total", a="1", b="x") == 2
    assert value(samples, "hits_total", a="1", b="['x']") == 1


def test_bad_tags_argument_raises_metrics_error(registry: MetricsRegistry) -> None:
    """Tags that are not a mapping raise MetricsError with a message saying so."""
    with pytest.raises(MetricsError, match="mapping"):
        increment_counter("hits", tags=["a"])  # type: ignore[arg-type]


def test_time_it_records_sync_async_block_and_raising() -> None:
    """time_it works as sync and async decorator and as context manager, also when the body raises."""
    reg = MetricsRegistry()

    @time_it("work", registry=reg)
    def sync_work() -> int:
        return 1

    @time_it("work", registry=reg)
    async def async_work() -> int:
        return 2

    @time_it("work", registry=reg)
    def failing() -> None:
        raise RuntimeError("boom")

    assert sync_work() == 1
    assert asyncio.run(async_work()) == 2
    with pytest.raises(RuntimeError):
        failing()
    with time_it("work", registry=reg) as timer:
        pass

    async def in_async_with() -> None:
        async with time_it("work", registry=reg):
            await asyncio.sleep(0)

    asyncio.run(in_async_with())
    assert timer.name == "work"
    assert reg.collector_registry.get_sample_value("work_duration_seconds_count") == 5


def test_time_it_resolves_the_default_registry_at_call_time() -> None:
    """A function decorated before the default registry is swapped records into the current default."""

    @time_it("late")
    def work() -> None:
        return None

    with use_registry() as reg:
        work()
    assert reg.collector_registry.get_sample_value("late_duration_seconds_count") == 1


def test_max_label_sets_must_be_positive() -> None:
    """A registry without room for any label set is refused."""
    with pytest.raises(MetricsError):
        MetricsRegistry(max_label_sets=0)
