"""``log_fields``: a structured line without a LogRecord when only our JSON handlers listen.

The request log writes a line per request, so its cost is part of every request. A
stdlib ``LogRecord`` (thread, process and caller lookups) plus the handler plumbing cost
more than formatting the line itself. When every handler that would receive the record
is an :class:`EnergyLogHandler` with the JSON formatter and no filters are involved, the
line is built and written directly, with exactly the fields the formatter would print.
In every other case (console format, pytest's capture, filters, foreign handlers) the
record goes through ``logging`` as usual.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from energy_common._logging._format import (
    JSONFormatter,
    add_fields,
    base_fields,
    checked_message,
    encode_line,
)
from energy_common._logging._setup import EnergyLogHandler

__all__ = ["log_fields"]


def _json_handlers(logger: logging.Logger, level: int) -> list[EnergyLogHandler] | None:
    # Mirror Logger.callHandlers; None means "not eligible, use the stdlib path".
    found: list[EnergyLogHandler] = []
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters:
            return None
        for handler in current.handlers:
            if type(handler) is not EnergyLogHandler or handler.filters or type(handler.formatter) is not JSONFormatter:
                return None
            if level >= handler.level:
                found.append(handler)
        if not current.propagate:
            break
        current = current.parent
    return found or None  # no handler at all: let logging apply its last resort


def log_fields(
    logger: logging.Logger,
    level: int,
    template: str,
    args: tuple[Any, ...],
    fields: Mapping[str, Any],
    *,
    checked: bool = False,
) -> None:
    """Log ``template % args`` at ``level`` with ``fields`` as structured extras.

    Same output as ``logger.log(level, template, *args, extra=fields)`` through
    :func:`~energy_common.logging.setup_logging`'s JSON handler, minus the caller lookup,
    and much cheaper when only JSON handlers listen. Never raises.

    Args:
        logger: The logger to log to.
        level: Logging level number.
        template: %-style message template.
        args: Arguments of the template.
        fields: Extra fields (keys must not clash with ``LogRecord`` attributes).
        checked: The caller vouches for the line: arguments and values hold no secrets
            (built from data it controls, or checked with ``text_is_clean``) and keys are
            neither secret-looking nor core field names. All scans are skipped.
    """
    try:
        if logger.disabled or not logger.isEnabledFor(level):
            return
        handlers = _json_handlers(logger, level)
        if handlers is None:
            logger.handle(
                logger.makeRecord(logger.name, level, "(unknown file)", 0, template, args, None, extra=fields)
            )
            return
        message = template % args if args else template
        if checked:
            data = base_fields(time.time(), logging.getLevelName(level), None, logger.name, message)
            data.update(fields)
        else:
            message = checked_message(template, args, message)
            data = add_fields(base_fields(time.time(), logging.getLevelName(level), None, logger.name, message), fields)
        for handler in handlers:
            formatter = handler.formatter
            data["service"] = formatter.service if isinstance(formatter, JSONFormatter) else None
            handler.write_line(encode_line(data))
    except Exception:  # noqa: BLE001 - logging never raises into the request
        return
