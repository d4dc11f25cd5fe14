"""Keep a broker session alive: run it, and after any broker or network loss, back off and retry.

Both AMQP owners (the consumer and the publisher) use this loop, so they recover from a
closed connection, a restarted broker or a lost network in the same way.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import pika.exceptions
import structlog

from printstation.agent.broker.topology import TopologyMismatch

log = structlog.get_logger("printstation.reconnect")

#: A session that lasted this long counts as recovered: backoff starts small again.
STABLE_SECONDS = 10.0

#: What a lost broker or network looks like from pika.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPError,
    ConnectionError,
    OSError,
)


#: While the broker's port refuses connections, it is knocked on this often.
PROBE_SECONDS = 0.25


def port_open(url: str) -> bool:
    """Whether the broker's TCP port accepts a connection now (no AMQP, no login)."""
    parts = urlsplit(url)
    port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    try:
        socket.create_connection((parts.hostname or "localhost", port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_or_port_back(stop: threading.Event, delay: float, url: str | None) -> None:
    """Back off for `delay`, but come back at once when a closed broker port opens again.

    Backoff keeps a broker that refuses logins or is overloaded from being hammered; a
    broker that was simply down (its port closed) is tried again the moment it listens,
    so the station is consuming again within a fraction of a second of the broker's return
    instead of up to `reconnect_max_delay` later.
    """
    deadline = time.monotonic() + delay
    was_closed = False
    while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        if url is not None:
            if port_open(url):
                if was_closed:
                    return
            else:
                was_closed = True
        stop.wait(min(left, PROBE_SECONDS))


def run_with_reconnect(name: str, stop: threading.Event, session: Callable[[], None], *,
                       on_state: Callable[[bool], None], max_delay: float = 30.0,
                       on_fatal: Callable[[BaseException], None],
                       url: str | None = None) -> None:
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
        wait_or_port_back(stop, delay * random.uniform(0.8, 1.2), url)
        delay = min(delay * 2, max_delay)
