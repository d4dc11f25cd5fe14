"""The journal: every job, every card and every outbound event, durably, in one SQLite file.

A job is taken by storing it here and only then acknowledging its delivery, and an event
is stored here before it is published (the outbox), so a crash at any moment loses
neither. Each change of a job and the events it causes are one transaction, so the
journal never says a card was printed without the status that reports it.

It is one file and one connection (`store`), written by concern:

    store      the file, its lock, transactions and when they are durable, settings
    outbox     events stored with the next seq, read and marked by the publisher
    jobs       jobs taken, claimed, released, refused; what is read of them
    progress   a job's way through the printer, and an operator's resolution
    cards      every blank that left the feeder, the stock, the ledger
    handback   pool jobs going back to the central system, each at most once
    control    the central system's cancels and the ids of commands acted on
    retention  what is kept, and for how long (`prune`)
    tally      lifetime counts behind the metrics' counters, which never go down
"""

from __future__ import annotations

from pathlib import Path

from .armed import ArmedJobs
from .cards import Cards
from .control import Control
from .errors import JournalError, JournalLocked
from .handback import HandBacks
from .jobs import JobRow, Jobs, Taken
from .jobstate import JobState
from .outbox import Outbox
from .progress import Progress
from .retention import Retention
from .store import Store

__all__ = ["JobRow", "JobState", "Journal", "JournalError", "JournalLocked", "Taken"]


class Journal:
    """The journal's parts over one store; each is used directly (`journal.jobs.take`)."""

    def __init__(self, state_dir: Path, station_id: str):
        self.store = Store(state_dir, station_id)
        self.outbox = Outbox(self.store)
        self.cards = Cards(self.store, self.outbox)
        self.jobs = Jobs(self.store, self.outbox)
        self.armed = ArmedJobs()
        self.progress = Progress(self.store, self.outbox, self.cards, self.armed)
        self.handback = HandBacks(self.store, self.outbox)
        self.control = Control(self.store, self.outbox, self.armed)
        self.retention = Retention(self.store)

    def close(self) -> None:
        self.store.close()
