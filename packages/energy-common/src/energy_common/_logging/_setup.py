"""``setup_logging``: one handler on the root logger, JSON or console, idempotent."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from energy_common._logging._format import ConsoleFormatter, JSONFormatter, record_to_dict
from energy_common.exceptions import ConfigurationError

__all__ = ["EnergyLogHandler", "capture_logs", "get_service_name", "parse_log_level", "setup_logging"]

_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "NOTSET")
_state: dict[str, str | None] = {"service": None}


def get_service_name() -> str | None:
    """Return the service name given to the last :func:`setup_logging` call, if any."""
    return _state["service"]


def parse_log_level(level: str | int) -> int:
    """Turn ``"info"``, ``"INFO"`` or ``20`` into a logging level number.

    Raises:
        ConfigurationError: The level is not one of CRITICAL, ERROR, WARNING, INFO, DEBUG, NOTSET.
    """
    if isinstance(level, bool):
        raise ConfigurationError(f"LOG_LEVEL must be a level name, got {level!r}.")
    if isinstance(level, int):
        if level < 0:
            raise ConfigurationError(f"LOG_LEVEL must not be negative, got {level}.")
        return level
    name = str(level).strip().upper()
    if name == "WARN":
        name = "WARNING"
    if name not in _LEVELS:
        raise ConfigurationError(f"LOG_LEVEL must be one of {', '.join(_LEVELS)}; got {level!r}.")
    return int(logging.getLevelName(name))


class EnergyLogHandler(logging.Handler):
    """Write formatted records to a stream that is looked up at emit time.

    Without an explicit ``stream`` the handler writes to whatever ``sys.stdout`` is when
    the record is emitted, so replacing ``sys.stdout`` (pytest's capture, a daemoniser)
    never leaves it writing to a closed file. Write errors are swallowed: logging never
    raises into business code.

    Args:
        stream: A fixed text stream; ``None`` means "the current ``sys.stdout``".
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__()
        self._stream = stream

    @property
    def stream(self) -> IO[str]:
        """The stream the next record goes to."""
        return self._stream if self._stream is not None else sys.stdout

    def emit(self, record: logging.LogRecord) -> None:
        """Format ``record`` and write it as one line."""
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - logging must not raise into business code
            self.handleError(record)
            return
        self._write(line)

    def write_line(self, line: str) -> None:
        """Write one already formatted line under the handler's lock."""
        with self.lock:  # type: ignore[union-attr] # created by Handler.__init__
            self._write(line)

    def _write(self, line: str) -> None:
        try:
            stream = self.stream
            stream.write(line + "\n")
            stream.flush()
        except (ValueError, OSError, AttributeError):
            # Closed or detached stream: drop the line rather than raise.
            return


def setup_logging(
    service_name: str,
    log_level: str | int = "INFO",
    json: bool = True,
    *,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Configure the root logger so every logger of the process emits the same format.

    Safe to call more than once: the handler installed by an earlier call is replaced,
    never duplicated, and handlers installed by others (e.g. pytest's) are left alone.

    Args:
        service_name: Written into every line as ``service``.
        log_level: Root level (name or number), e.g. ``"INFO"``.
        json: One JSON object per line when True; a readable console line when False.
        stream: Fixed output stream; by default the current ``sys.stdout`` at emit time.

    Returns:
        The handler that was installed on the root logger.

    Raises:
        ConfigurationError: ``service_name`` is empty or ``log_level`` is unknown.

    Example:
        >>> from energy_common.logging import setup_logging
        >>> handler = setup_logging("my-service", log_level="INFO")
    """
    if not isinstance(service_name, str) or not service_name.strip():
        raise ConfigurationError("SERVICE_NAME must be a non-empty string for setup_logging().")
    level = parse_log_level(log_level)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, EnergyLogHandler)]:
        root.removeHandler(old)
        old.close()
    handler = EnergyLogHandler(stream)
    handler.setFormatter(JSONFormatter(service_name) if json else ConsoleFormatter(service_name))
    root.addHandler(handler)
    root.setLevel(level)
    _state["service"] = service_name
    return handler


class _CaptureHandler(logging.Handler):
    def __init__(self, sink: list[dict[str, Any]]) -> None:
        super().__init__(logging.NOTSET)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record_to_dict(record, get_service_name()))


@contextmanager
def capture_logs(level: str | int = "DEBUG", *, logger: str | None = None) -> Iterator[list[dict[str, Any]]]:
    """Collect the structured (already redacted) dicts of every record logged in a block.

    The dicts are exactly what the JSON formatter would print, so tests can assert on
    fields instead of parsing output. Levels are restored on exit.

    Args:
        level: Lowest level to capture; the logger's level is lowered for the block.
        logger: Name of the logger to listen on; the root logger by default.

    Example:
        >>> import logging
        >>> from energy_common.logging import capture_logs
        >>> with capture_logs() as logs:
        ...     logging.getLogger("demo").info("hello", extra={"password": "x"})
        >>> logs[0]["message"], logs[0]["password"]
        ('hello', '[REDACTED]')
    """
    target = logging.getLogger(logger)
    sink: list[dict[str, Any]] = []
    handler = _CaptureHandler(sink)
    previous = target.level
    target.addHandler(handler)
    target.setLevel(parse_log_level(level))
    try:
        yield sink
    finally:
        target.removeHandler(handler)
        target.setLevel(previous)
