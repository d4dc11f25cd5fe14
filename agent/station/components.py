"""What the agent starts and stops: every long-lived part is a `Component`.

The agent starts them in the order it made them and stops them by `stop_order`, lowest
first: take no more work (the broker consumer, the surfaces), finish the card in the
printer, store the last telemetry, then publish what is stored, so nothing in flight is
lost. No part is told apart by its class name.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
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
