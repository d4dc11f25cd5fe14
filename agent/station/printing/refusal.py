"""A card the printer refused without drawing a blank, held as the fault it named.

Some printers report a fault (film or ribbon out, a head error) only by refusing the next
card: no status query shows it (an Evolis reads no film and no head). The refusal is held
and shown as that fault, is not an attempt, and the card is tried again only after a pause
(doubling), once the printer's readings change, or when an operator acts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

import structlog

from printstation.drivers.base import FaultCode, PrinterError, PrinterStatus

log = structlog.get_logger("printstation.printer")

#: A refused card is tried again after this long, doubling up to REFUSAL_MAX_DELAY, or at
#: once when the printer's state changes or an operator acts.
REFUSAL_FIRST_DELAY = 5.0
REFUSAL_MAX_DELAY = 60.0


@dataclass(frozen=True)
class Refusal:
    """The printer refused a card without drawing a blank (its answer to `Ss`, say)."""

    fault: FaultCode
    detail: str
    job_id: str | None
    seen: tuple  # the printer's status when it refused: a change means someone acted
    retry_at: float
    delay: float


def _status_key(status: PrinterStatus) -> tuple:
    return (status.faults, status.consumables, status.card_stock, status.state)


class RefusalHold:
    def __init__(self) -> None:
        self.refusal: Refusal | None = None
        self._retry_now = threading.Event()

    def retry_now(self) -> None:
        """An operator acted (loaded stock, resumed): a refused card is tried again now."""
        self._retry_now.set()

    def shown(self, status: PrinterStatus) -> PrinterStatus:
        """The status with a held refusal's fault in it, for every surface to show."""
        refusal = self.refusal
        if refusal is None or refusal.fault in status.faults or status.state == "offline":
            return status
        return replace(status, state="fault",
                       faults=tuple(sorted({*status.faults, refusal.fault})))

    def holds(self, status: PrinterStatus) -> bool:
        """Whether a refused card still waits: until its pause is over, the printer's
        state changed, or an operator acted."""
        refusal = self.refusal
        if refusal is None:
            return False
        if self._retry_now.is_set() or _status_key(status) != refusal.seen or \
                time.monotonic() >= refusal.retry_at:
            self._retry_now.clear()
            return False
        return True

    def is_retry(self, job_id: str) -> bool:
        """This job's last try was refused: no blank went in, so it is not announced again."""
        return self.refusal is not None and self.refusal.job_id == job_id

    def refused(self, exc: PrinterError, job_id: str | None, status: PrinterStatus, *,
                until_someone_acts: bool = False) -> None:
        """Hold the fault the printer refused with; try again later, or, `until_someone_acts`
        (a fault that has already cost a blank), only once the printer's state changes or an
        operator acts."""
        before = self.refusal
        delay = REFUSAL_FIRST_DELAY if before is None else \
            min(before.delay * 2, REFUSAL_MAX_DELAY)
        retry_at = float("inf") if until_someone_acts else time.monotonic() + delay
        self.refusal = Refusal(exc.fault, exc.detail, job_id, _status_key(status),
                               retry_at, delay)
        log.warning("card_refused", job_id=job_id, fault=exc.fault.value, detail=exc.detail,
                    retry_in=delay)

    def cleared(self) -> None:
        """A blank was drawn: whatever the printer refused before is cleared."""
        if self.refusal is not None:
            log.info("refusal_cleared", fault=self.refusal.fault.value)
            self.refusal = None
