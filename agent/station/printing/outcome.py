"""A card's outcome in the journal, recorded before anything else happens.

The journal writes of one outcome (the card's ledger row, the job's next state) are kept
here until each has gone through, in order, each once: a disk that fills while a card
prints leaves them waiting in memory, and the printer thread draws no other blank until
they are recorded (a spoiled blank is counted once, whatever the disk does).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal

import structlog

from printstation.agent.station.journal import JobState, Journal
from printstation.agent.station.journal.stock import CardUse
from printstation.agent.station.needscheck import printer_report
from printstation.drivers.base import FaultCode, PrinterError

log = structlog.get_logger("printstation.printer")

#: Running out mid-card holds the job until stock is loaded; it never fails it.
STOCK_FAULTS = (FaultCode.RIBBON_OUT, FaultCode.FILM_OUT, FaultCode.FEEDER_EMPTY)


class Outcomes:
    def __init__(self, journal: Journal):
        self.journal = journal
        self._pending: list[Callable[[], object]] = []

    @property
    def waiting(self) -> bool:
        """An outcome is still to be recorded."""
        return bool(self._pending)

    def record(self) -> bool:
        """Make the waiting writes; raises while the journal cannot. True when it made the
        last of them now."""
        made = False
        while self._pending:
            self._pending[0]()
            self._pending.pop(0)
            made = True
        return made

    def settle(self, *writes: Callable[[], object]) -> None:
        """Record an outcome before anything else happens (see `record`), after what
        still waits."""
        self._pending.extend(writes)
        self.record()

    def add(self, write: Callable[[], object]) -> None:
        """A write kept as an outcome's are, made by the next `record` (or `settle`, before
        its own): a card's outcome recorded once the next card is in, or the start of a
        card armed to follow a failed one taken back."""
        self._pending.append(write)

    def failure(self, job_id: str, attempt: int, exc: PrinterError, use: CardUse,
                max_attempts: int, chip_uid: str | None = None
                ) -> Literal["unknown", "refused", "spoiled"]:
        """What a printer error means for the job, recorded (a spoiled chip card with the
        UID of its chip, when it was read)."""
        progress = self.journal.progress
        if exc.card_drawn is None:
            log.warning("card_unknown_outcome", job_id=job_id, fault=exc.fault.value)
            self.settle(partial(
                progress.mark_needs_check, job_id,
                f"the printer link broke while the card was inside ({exc.fault.value}); "
                "an operator must say whether it came out",
                printer_report("link_broke", detail=exc.detail)))
            return "unknown"
        if exc.card_drawn is False:
            # Refused, no blank drawn: not an attempt; the fault is held and shown.
            self.settle(partial(progress.not_started, job_id))
            return "refused"
        log.warning("card_fault", job_id=job_id, fault=exc.fault.value, attempt=attempt)
        spoiled = partial(self.journal.cards.spoiled, job_id, exc.counter, exc.fault.value, use,
                          chip_uid=chip_uid)
        self.spoiled(job_id, spoiled,
                     last=attempt >= max_attempts and exc.fault not in STOCK_FAULTS,
                     code="attempts_exhausted",
                     detail=f"{attempt} blanks spoiled ({exc.fault.value})")
        return "spoiled"

    def spoiled(self, job_id: str, spoiled: Callable[[], object], *, last: bool, code: str,
                detail: str) -> None:
        """A blank spoiled for the job (`spoiled` records it): on its `last` attempt the job
        fails with `code` and `detail`, else it waits for a new blank."""
        progress = self.journal.progress
        then = partial(progress.finish, job_id, JobState.FAILED, code, detail) if last \
            else partial(progress.back_to_queue, job_id)
        self.settle(spoiled, then)
