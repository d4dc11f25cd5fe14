"""A thread waiting for Python's interpreter lock gets it within half a millisecond.

The agent's light threads (the publisher sending a card's `printed`, the printer thread
between two cards) share the interpreter with heavy ones (intake checking a job's images,
the preparing thread making the next card's panels). After each blocking call (a journal
query, an fsync, a socket) a light thread must take the lock back, and Python makes it
wait up to the switch interval (5 ms by default) while a heavy thread holds it: a status
took several such turns, so with ten agents on a 2-core PC its p99 was 0.4 to 0.6 s where
it is 0.05 to 0.14 s with 0.5 ms (bench/status_latency.py, README "Status latency"). The
heavy threads lose a few microseconds a switch, and switch only when another thread waits.
"""

from __future__ import annotations

import sys

#: Seconds a thread waits for the interpreter lock before its holder is asked to let go.
SWITCH_INTERVAL = 0.0005


def shorten_switch_interval() -> None:
    """Set the switch interval above for this process (it is process-wide)."""
    sys.setswitchinterval(SWITCH_INTERVAL)
