"""Tests for the pure parts of energy_common.http_client: breaker, retry policy, redirects, error mapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from energy_common import http_client
from energy_common._http._errors import error_for_status, remote_error_fields
from energy_common._http._redirect import redirect_method, same_origin, strip_credentials
from energy_common.exceptions import ConfigurationError, ExternalServiceError, ResourceNotFoundError, ValidationError
from energy_common.http_client import CircuitBreaker, CircuitState, RetryPolicy, parse_retry_after


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_public_api_is_pinned() -> None:
    """The public names of energy_common.http_client stay stable (constants first, then sorted)."""
    assert http_client.__all__ == [
        "IDEMPOTENT_METHODS",
        "RETRY_STATUSES",
        "SENSITIVE_HEADER",
        "CallOptions",
        "CircuitBreaker",
        "CircuitBreakerHealthCheck",
        "CircuitState",
        "RetryPolicy",
        "ServiceClient",
        "TokenProvider",
        "parse_retry_after",
    ]


def test_breaker_opens_after_threshold_within_window() -> None:
    """Failures only count inside the window; the threshold within it opens the circuit."""
    clock = FakeClock()
    breaker = CircuitBreaker("peer", failure_threshold=3, failure_window=10, recovery_time=5, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 11  # both failures fall out of the window
    breaker.record_failure()
    assert breaker.state is CircuitState.CLOSED
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    assert not breaker.allow()
    assert breaker.retry_after() == pytest.approx(5)
    assert breaker.times_opened == 1


def test_breaker_half_open_allows_limited_trials_and_closes_on_success() -> None:
    """After recovery_time one trial goes through; others wait; success closes the circuit."""
    clock = FakeClock()
    breaker = CircuitBreaker("peer", failure_threshold=1, recovery_time=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.allow()


def test_breaker_half_open_failure_reopens() -> None:
    """A failed trial opens the circuit again for a full recovery_time."""
    clock = FakeClock()
    breaker = CircuitBreaker("peer", failure_threshold=1, recovery_time=5, clock=clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    assert breaker.snapshot()["times_opened"] == 2


def test_breaker_release_returns_a_trial_slot() -> None:
    """A trial cancelled without a verdict gives its slot back instead of wedging the circuit."""
    clock = FakeClock()
    breaker = CircuitBreaker("peer", failure_threshold=1, recovery_time=1, clock=clock)
    breaker.record_failure()
    clock.now += 1
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()


@pytest.mark.parametrize(
    "options",
    [{"failure_threshold": 0}, {"failure_window": 0}, {"recovery_time": float("inf")}, {"half_open_max_calls": 0}],
)
def test_breaker_rejects_bad_options(options: dict[str, Any]) -> None:
    """Thresholds and durations must be positive and finite."""
    with pytest.raises(ConfigurationError):
        CircuitBreaker("peer", **options)


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    """Each wait lies in [0, min(backoff_max, base * 2**attempt)] and varies."""
    policy = RetryPolicy(retries=5, backoff_base=0.1, backoff_max=0.5)
    for attempt, ceiling in [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.5), (8, 0.5)]:
        samples = [policy.backoff(attempt) for _ in range(200)]
        assert all(0 <= s <= ceiling for s in samples)
        assert len(set(samples)) > 1


@pytest.mark.parametrize("options", [{"retries": -1}, {"backoff_base": -0.1}, {"backoff_max": float("nan")}])
def test_retry_policy_rejects_bad_options(options: dict[str, Any]) -> None:
    """Negative or non-finite retry settings are configuration errors."""
    with pytest.raises(ConfigurationError):
        RetryPolicy(**options)


def test_parse_retry_after_forms() -> None:
    """Delta-seconds and HTTP dates parse; garbage and absence give None; the past gives 0."""
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("inf") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("http://a:80/x", "http://a/y", True),
        ("https://a/x", "https://a:443/y", True),
        ("http://a/x", "https://a/x", False),
        ("http://a:8000/", "http://a:8001/", False),
        ("http://a/", "http://b/", False),
    ],
)
def test_same_origin(a: str, b: str, same: bool) -> None:
    """Origins compare scheme, host and effective port."""
    assert same_origin(httpx.URL(a), httpx.URL(b)) is same


def test_strip_credentials_keeps_only_harmless_headers() -> None:
    """Authorization, cookies and custom auth headers go; tracing and content headers stay."""
    headers = {
        "authorization": "Bearer x",
        "proxy-authorization": "Basic y",
        "cookie": "a=b",
        "x-api-key": "k",
        "x-auth-token": "t",
        "x-session-id": "s",
        "x-request-id": "cid",
        "traceparent": "00-...",
        "content-type": "application/json",
    }
    assert strip_credentials(headers) == {
        "x-request-id": "cid",
        "traceparent": "00-...",
        "content-type": "application/json",
    }


@pytest.mark.parametrize(
    ("status", "method", "expected"),
    [(303, "POST", "GET"), (303, "HEAD", "HEAD"), (302, "POST", "GET"), (301, "PUT", "PUT"), (307, "POST", "POST")],
)
def test_redirect_method(status: int, method: str, expected: str) -> None:
    """303 turns into GET, 301/302 turn POST into GET, 307/308 keep the method."""
    assert redirect_method(status, method) == expected


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (
            {"success": False, "error": {"error_code": "E1", "message": "m1", "details": {"f": 1}}},
            ("E1", "m1", {"f": 1}),
        ),
        ({"error_code": "E2", "message": "m2"}, ("E2", "m2", None)),
        ({"detail": "Not Found"}, (None, "Not Found", None)),
        ({"detail": [{"loc": ["body"], "msg": "bad"}]}, (None, None, [{"loc": ["body"], "msg": "bad"}])),
        ("plain text", (None, None, None)),
    ],
)
def test_remote_error_fields(body: Any, fields: tuple[Any, ...]) -> None:
    """The platform envelope, flat bodies and FastAPI's detail all yield code, message and details."""
    assert remote_error_fields(body) == fields


def test_error_for_status_redacts_remote_message_and_keeps_context() -> None:
    """A remote message with a secret is redacted; method, path and remote details ride along."""
    body = {"error": {"error_code": "BAD", "message": "bad dsn postgresql://u:pw@db/x", "details": {"field": "a"}}}
    error = error_for_status(422, body, service="auth", method="POST", path="/users")
    assert isinstance(error, ValidationError)
    assert "pw" not in error.message
    assert error.details["remote_details"] == {"field": "a"}
    assert error.details["method"] == "POST"
    assert str(error) == error.message


def test_error_for_status_not_found_and_unlisted() -> None:
    """404 keeps ResourceNotFoundError's resource detail; an unlisted 4xx is an external error."""
    missing = error_for_status(404, None, service="auth", method="GET", path="/users/1")
    assert isinstance(missing, ResourceNotFoundError)
    assert missing.details["service"] == "auth"
    gone = error_for_status(410, None, service="auth", method="GET", path="/x")
    assert type(gone) is ExternalServiceError
    assert gone.details["remote_error_code"] is None
