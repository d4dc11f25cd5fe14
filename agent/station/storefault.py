"""The station could not store a message: it stops taking messages until the journal writes.

A full disk or a journal error is the station's own trouble, not the message's: intake
returns the message to its queue and sets the fault; the consumer stops consuming while
it is set and retries the disk every STORE_RETRY_SECONDS; the station's state says why.
"""

from __future__ import annotations

import threading
import time

import structlog

from printstation.agent.station.journal import Journal

log = structlog.get_logger("printstation.intake")

#: While the journal cannot store, the disk is tried again this often (see `StationFault`).
STORE_RETRY_SECONDS = 5.0
#: Times the station takes messages again after a failure and fails at once, before it
#: stops for good: each round costs the messages in flight a delivery.
MAX_RESUMES = 3


class StationFault:
    """The station could not store a message: it takes nothing more until it can.

    Set by intake when storing fails, and cleared once the journal takes a write of that
    message's size again (`Journal.can_store`), tried every few seconds. The consumer stops
    consuming while it is set; the station's state says why. A failure that the trial
    write does not see (one message's own trouble, a bug) would have the station take and
    return the same messages every few seconds until the broker's delivery limit dead-
    letters them without a status: after MAX_RESUMES rounds that store nothing, it stays
    stopped (`stuck`) until the agent is restarted, and says so.
    """

    def __init__(self, journal: Journal):
        self.journal = journal
        self._lock = threading.Lock()
        self.why: str | None = None
        self.stuck = False
        self._size = 0
        self._next_try = 0.0
        self._resumes = 0  # rounds resumed since a message was last stored

    def set(self, why: str, size: int) -> None:
        with self._lock:
            self.why = why
            self._size = max(self._size, size)
            self._next_try = time.monotonic() + STORE_RETRY_SECONDS
            if self._resumes >= MAX_RESUMES and not self.stuck:
                self.stuck = True
                log.error("station_stopped_taking_messages", error=why,
                          detail=f"{MAX_RESUMES} tries failed again at once; restart the "
                                 "agent, and call a technician if it happens again")

    def stored(self) -> None:
        """A message was stored: the journal works."""
        self._resumes = 0

    def cleared(self) -> bool:
        """True when there is no fault, or the journal takes a write again (then cleared)."""
        with self._lock:
            if self.why is None:
                return True
            if self.stuck or time.monotonic() < self._next_try:
                return False
            self._next_try = time.monotonic() + STORE_RETRY_SECONDS
            if not self.journal.store.can_store(self._size):
                return False
            log.info("journal_writable_again", after=self.why)
            self.why, self._size = None, 0
            self._resumes += 1
            return True
