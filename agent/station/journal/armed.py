"""Jobs whose start is journaled while another card prints, their blank not yet drawn.

With a printer that prints a fed card by itself (`PrinterDriver.overlaps_cards`), the
printer thread journals the next card's start (`printing`, with the counter the printer
will show once the card in it is counted) while that card prints, so that it can feed the
next card the moment the last is out, with nothing to write in between. Such a job is
`printing` in the journal, but its blank is not in the printer, so contract 5's cancel
still cancels it. This registry decides which comes first: the printer thread feeds an
armed card only once it has taken it (`take`), and a cancel acts on it only once it has
withdrawn it (`withdraw`); both remove it under one lock, so exactly one of them wins.
It is in memory only: after a restart, the printer's card counter settles such a job
(`recovery.settle_printing`: unchanged from the counter journaled, it was never drawn).
"""

from __future__ import annotations

import threading


class ArmedJobs:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: set[str] = set()

    def add(self, job_id: str) -> None:
        with self._lock:
            self._jobs.add(job_id)

    def any(self) -> bool:
        """A job is armed: one more than the printer is printing waits for it."""
        with self._lock:
            return bool(self._jobs)

    def take(self, job_id: str) -> bool:
        """The printer thread is about to feed the job's card: True unless it was withdrawn."""
        return self._remove(job_id)

    def withdraw(self, job_id: str) -> bool:
        """A cancel: True when the job's card will not be fed (the job was armed, not taken)."""
        return self._remove(job_id)

    def _remove(self, job_id: str) -> bool:
        with self._lock:
            if job_id not in self._jobs:
                return False
            self._jobs.discard(job_id)
            return True
