"""Crash points for the chaos suite: the agent kills itself at the dangerous moments.

Off unless PRINTSTATION_FAILPOINTS is set, e.g. "after_store=0.02,mid_card=0.05": at each
named point the process sends itself SIGKILL with that probability, which is exactly what
a power cut does there. Points: after_store (job journaled, delivery not yet acknowledged),
after_ack, mid_card (while the printer prints), after_submit (a spooler's reference for
the card journaled, the card not yet sent to it), after_arm (the next card's start
journaled while one prints, its blank not drawn), after_card (the card is out, its status
not yet journaled), printer_hang (the printer thread blocks forever, as a driver call that
never returns would: the systemd watchdog must notice).
"""

from __future__ import annotations

import os
import random
import signal
import threading

ENV = "PRINTSTATION_FAILPOINTS"


def _parse(spec: str) -> dict[str, float]:
    points = {}
    for item in spec.split(","):
        name, _, p = item.partition("=")
        if name.strip():
            points[name.strip()] = float(p or 1.0)
    return points


_POINTS = _parse(os.environ.get(ENV, ""))


def hit(name: str) -> None:
    """Die here, with the configured probability."""
    if _POINTS and random.random() < _POINTS.get(name, 0.0):
        os.kill(os.getpid(), signal.SIGKILL)


def hit_within(name: str, seconds: float) -> None:
    """Die at a random moment in the next `seconds` (for points inside a blocking call)."""
    if _POINTS and random.random() < _POINTS.get(name, 0.0):
        timer = threading.Timer(random.uniform(0, seconds),
                                lambda: os.kill(os.getpid(), signal.SIGKILL))
        timer.daemon = True
        timer.start()


def hang(name: str) -> None:
    """Block this thread forever, with the configured probability."""
    if _POINTS and random.random() < _POINTS.get(name, 0.0):
        threading.Event().wait()
