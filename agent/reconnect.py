"""Keep a broker session alive: run it, and after any broker or network loss, back off and retry.

Both AMQP owners (the consumer and the publisher) use this loop, so they recover from a
closed connection, a restarted broker or a lost network in the same way.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import pika.exceptions
import structlog

from .topology import TopologyMismatch

log = structlog.get_logger("printstation.reconnect")

#: What a lost broker or network looks like from pika.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPError,
    ConnectionError,
    OSError,
)


def run_with_reconnect(name: str, stop: threading.Event, session: Callable[[], None], *,
                       on_state: Callable[[bool], None], max_delay: float = 30.0,
                       on_fatal: Callable[[BaseException], None]) -> None:
    """Call `session` until `stop` is set; it returns normally only when asked to stop."""
    delay = 0.5
    while not stop.is_set():
        try:
            session()
            delay = 0.5
        except TopologyMismatch as exc:
            on_fatal(exc)
            return
        except BROKER_ERRORS as exc:
            on_state(False)
            log.warning("broker_lost", owner=name, error=f"{type(exc).__name__}: {exc}"[:300],
                        retry_in=round(delay, 1))
            stop.wait(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, max_delay)
