"""What the agent starts and stops: every long-lived part is a `Component`.

The agent starts them in the order it made them and stops them by `stop_order`, lowest
first: take no more work (the broker consumer, the surfaces), finish the card in the
printer, store the last telemetry, then publish what is stored, so nothing in flight is
lost. No part is told apart by its class name.
"""

from __future__ import annotations

import threading
from typing import Protocol


class Component(Protocol):
    """A part with a thread (or a server) of its own."""

    #: Named in health problems ("the consumer thread has stopped").
    name: str
    #: Lower stops first.
    stop_order: int

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def alive(self) -> bool: ...


#: The stop orders the agent's parts use, in the order they stop.
SURFACES = 0  # operator page and metrics: no new actions
CONSUMER = 10  # no new jobs
CONTROL_SOCKET = 20  # no new operator commands
PRINTER = 30  # the card in the printer is finished
TELEMETRY = 40  # the last telemetry is stored
PUBLISHER = 50  # what is stored goes out


class ThreadedComponent:
    """A component that is one thread running `_run` until `_stop` is set.

    Subclasses set `name`, `stop_order` and `thread_name`, call `__init__` before their
    thread can start, and override `_wake` to interrupt what `_run` waits on (an event,
    pika's I/O loop) so that `stop` returns at once rather than after a timeout.
    """

    name: str
    stop_order: int
    thread_name: str
    #: How long `stop` waits for the thread, seconds.
    stop_timeout: float = 10.0

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to end and wait for it; harmless when it never started."""
        self._stop.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(self.stop_timeout if timeout is None else timeout)

    def _wake(self) -> None:
        """Interrupt the thread's wait; nothing by default (it sees `_stop` in time)."""

    def _run(self) -> None:
        raise NotImplementedError
