"""Keep a broker session alive: run it, and after any broker or network loss, back off and retry.

Both AMQP owners (the consumer and the publisher) use this loop, so they recover from a
closed connection, a restarted broker or a lost network in the same way.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import pika.exceptions
import structlog

from .topology import TopologyMismatch

log = structlog.get_logger("printstation.reconnect")

#: A session that lasted this long counts as recovered: backoff starts small again.
STABLE_SECONDS = 10.0

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
        started = time.monotonic()
        try:
            session()
        except TopologyMismatch as exc:
            on_fatal(exc)
            return
        except BROKER_ERRORS as exc:
            on_state(False)
            log.warning("broker_lost", owner=name, error=f"{type(exc).__name__}: {exc}"[:300],
                        retry_in=round(delay, 1))
        except Exception as exc:
            # Not the broker (a full disk under the journal, a bug): the unacknowledged
            # delivery goes back to the queue with the connection; retry after a pause.
            on_state(False)
            log.error("session_failed", owner=name, error=type(exc).__name__,
                      retry_in=round(delay, 1))
        else:
            continue
        if time.monotonic() - started > STABLE_SECONDS:
            delay = 0.5  # it was up for a while: this is a new outage, start small again
        stop.wait(delay * random.uniform(0.8, 1.2))
        delay = min(delay * 2, max_delay)
