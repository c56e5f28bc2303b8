"""energy-monitoring's client-span switch on its own: argument checks and URL redaction (no client library needed)."""

from __future__ import annotations

import pytest
from energy_monitoring import TracingError
from energy_monitoring._clients import redact_url
from energy_monitoring.tracing import instrument_clients


def test_unknown_library_is_a_tracing_error() -> None:
    """Naming a client library we do not know is refused with a TracingError that names it."""
    with pytest.raises(TracingError, match="mongo"):
        instrument_clients(["mongo"])  # type: ignore[list-item]


def test_redact_url_handles_ipv6_and_garbage() -> None:
    """redact_url keeps an IPv6 host and port, and turns an unparsable URL into REDACTED rather than raising."""
    assert redact_url("http://[::1]:8080/x?a=1") == "http://[::1]:8080/x?a=REDACTED"
    assert redact_url("http://[::1/x") == "REDACTED"
    assert redact_url("https://host/path") == "https://host/path"
