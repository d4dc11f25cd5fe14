"""Keep a broker session alive: run it, and after any broker or network loss, back off and retry.

Both AMQP owners (the consumer and the publisher) use this loop, so they recover from a
closed connection, a restarted broker or a lost network in the same way. A broker that
refuses the station (a wrong password, a vhost that does not exist, a right its user
lacks) is not an outage that passes: it is logged as such with the broker's reason, the
owner is told (the agent raises an alert that a person must act), and it is retried on a
backoff of its own, much slower, so the station recovers by itself once someone fixes it
without knocking on the broker every few seconds meanwhile.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import structlog

from printstation.agent.broker.reasons import BROKER_ERRORS, explain
from printstation.agent.broker.topology import TopologyMismatch
from printstation.agent.config.nodes import split_nodes

log = structlog.get_logger("printstation.reconnect")

#: A session that lasted this long counts as recovered: backoff starts small again.
STABLE_SECONDS = 10.0

#: A refused login is retried from `max_delay` up to this many times `max_delay` (with the
#: default 30 s: from 30 s to 5 min): a person must act, and knocking sooner helps nobody.
REFUSED_SLOWDOWN = 10

#: What the agent's alert says to do when the broker refuses the station.
REFUSED_ADVICE = ("A person must act: check the password in broker_password_file (or the "
                  "broker-password credential) and that this station's broker user exists "
                  "with its permissions in the vhost (`printstation broker-permissions` "
                  "prints them); the agent keeps retrying and clears this once connected")


#: While the broker's port refuses connections, it is knocked on this often.
PROBE_SECONDS = 0.25


def port_open(url: str) -> bool:
    """Whether the broker's TCP port accepts a connection now (no AMQP, no login); for a
    broker_url of several nodes, whether any node's does."""
    return any(_node_port_open(node) for node in split_nodes(url) or [url])


def _node_port_open(url: str) -> bool:
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


@dataclass
class Backoff:
    """Delays doubling from `first` up to `most`; `reset` starts from `first` again."""

    first: float
    most: float
    #: The first retry after a reset comes at once (a cluster: the next node is tried).
    immediate: bool = False
    _next: float = field(init=False)
    _now: bool = field(init=False)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._next = self.first
        self._now = self.immediate

    def next(self) -> float:
        if self._now:
            self._now = False
            return 0.0
        delay = self._next
        self._next = min(self._next * 2, self.most)
        return delay


def run_with_reconnect(name: str, stop: threading.Event, session: Callable[[], None], *,
                       on_state: Callable[[bool], None], max_delay: float = 30.0,
                       on_fatal: Callable[[BaseException], None],
                       on_refused: Callable[[str], None] = lambda reason: None,
                       url: str | None = None,
                       node: Callable[[], str | None] = lambda: None) -> None:
    """Call `session` until `stop` is set; it returns normally only when asked to stop.

    `url` (its password is never shown) is where the broker is: knocked on while its port
    is closed, and named in the log; `node`, when it gives one, is the URL of the node the
    session was on, which the log names instead. `on_refused` hears each refusal: the
    broker's reason and what a person must do, in one line.
    """
    # With several nodes, a lost connection is retried at once: the session begins with
    # the next node (session.BrokerThread), which is most likely up.
    lost = Backoff(0.5, max_delay, immediate=len(split_nodes(url or "")) > 1)
    refused = Backoff(max_delay, max_delay * REFUSED_SLOWDOWN)
    while not stop.is_set():
        started = time.monotonic()
        try:
            session()
        except TopologyMismatch as exc:
            on_fatal(exc)
            return
        except BROKER_ERRORS as exc:
            on_state(False)
            _recovered(started, lost, refused)
            problem = explain(exc, node() or url)
            if problem.refused:
                delay = refused.next()
                log.error("broker_login_refused", owner=name, error=problem.text[:500],
                          retry_in=round(delay, 1), detail=REFUSED_ADVICE)
                on_refused(f"{problem.text.rstrip('.')}. {REFUSED_ADVICE}")
            else:
                delay = lost.next()
                log.warning("broker_lost", owner=name, error=problem.text[:500],
                            retry_in=round(delay, 1))
        except Exception as exc:
            # Not the broker (a full disk under the journal, a bug): the unacknowledged
            # delivery goes back to the queue with the connection; retry after a pause.
            on_state(False)
            _recovered(started, lost, refused)
            delay = lost.next()
            log.error("session_failed", owner=name, error=type(exc).__name__,
                      retry_in=round(delay, 1))
        else:
            continue
        if delay > 0:
            wait_or_port_back(stop, delay * random.uniform(0.8, 1.2), url)


def _recovered(started: float, *backoffs: Backoff) -> None:
    """A session that was up for a while ended: a new outage, start small again."""
    if time.monotonic() - started > STABLE_SECONDS:
        for backoff in backoffs:
            backoff.reset()
