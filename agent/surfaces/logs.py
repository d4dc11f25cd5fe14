"""structlog JSON logs on stderr. Log calls name ids and reasons, never a job's body.

Every line's `timestamp` is RFC 3339 with the PC's UTC offset
(`2026-11-24T09:30:00.123+07:00`): a collector in another zone places it exactly, and an
operator reading the journal on the PC sees their own clock.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from typing import Any

import structlog


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is at the moment of writing.

    A logger bound to the stream object of the moment breaks once that object is closed
    (a test's capture, a redirected stream); looking it up on every write never does.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def add_timestamp(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """The local time with its offset; structlog's own ISO stamp has no zone in local time."""
    event_dict["timestamp"] = datetime.now().astimezone().isoformat(timespec="milliseconds")
    return event_dict


def configure(level: str = "info", *, json_output: bool = True) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s")
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    renderer = (structlog.processors.JSONRenderer() if json_output
                else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            add_timestamp,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),
        cache_logger_on_first_use=False,
    )
