"""A stored job made into the card the printer is sent, ahead of its turn.

The next card is decoded and turned into panels on a thread of its own while this one
prints, so the printer never waits for the PC (bench/utilisation.py measures it). A card is
kept in memory for one job only, and dropped once taken.
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import Future, ThreadPoolExecutor

import structlog
from pydantic import ValidationError

from printstation.agent import contract
from printstation.agent.station.journal import JobRow, Journal
from printstation.drivers.base import CardJob, PrinterDriver
from printstation.drivers.encoder import ChipSection, Encoder
from printstation.drivers.panels import prepare_side

log = structlog.get_logger("printstation.printer")


def build_card(row: JobRow, native_size: tuple[int, int]) -> CardJob:
    """Decode a stored job into panels; raises ValueError naming what is wrong."""
    if row.body is None:
        raise ValueError("the job's data is gone")
    try:
        job = contract.stored_job(row.body)
    except ValidationError as exc:
        raise ValueError(contract.describe_errors(exc)) from None
    front = job.sides.front
    back = job.sides.back
    return CardJob(
        job_id=job.job_id,
        front=prepare_side(front.image_bytes(), front.black_bytes(), front.overlay, native_size),
        back=None if back is None else prepare_side(back.image_bytes(), back.black_bytes(),
                                                     back.overlay, native_size),
        chip=None if job.chip is None else ChipSection(job.chip.profile,
                                                       job.chip.data_bytes()),
    )


class CardPreparer:
    def __init__(self, journal: Journal, driver: PrinterDriver, encoder: Encoder | None = None):
        self.journal = journal
        self.driver = driver
        self.encoder = encoder
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="card-prep")
        self._next: Future[tuple[str, CardJob | Exception] | None] | None = None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._next = None

    def prepare_next(self) -> None:
        """Start building the card of the next waiting job, on the preparing thread.

        Even finding the next job happens there: nothing of it stands between two cards.
        """
        if self._next is None or self._next.done():
            self._next = self._pool.submit(self._build_next)

    def ready(self) -> bool:
        """The next waiting job's card is prepared: the printer thread starts it at once
        (unless a fault, a pause or the stock stops it, and then it waits, which syncs)."""
        ahead = self._next
        return (ahead is not None and ahead.done() and not ahead.cancelled()
                and ahead.exception() is None and ahead.result() is not None)

    def _build_next(self) -> tuple[str, CardJob | Exception] | None:
        try:
            self.journal.jobs.erase_finished_images()  # of the card that came out before
        except sqlite3.Error as exc:  # the printer thread's next wait erases them again
            log.error("journal_erase_failed", error=str(exc)[:200])
        row = self.journal.jobs.next()
        if row is None:
            return None
        try:
            return row.job_id, self.build(row)
        except Exception as exc:  # reported when this job's turn comes
            return row.job_id, exc

    def card_for(self, row: JobRow) -> CardJob:
        """The card prepared ahead for this job, or built now; raises as build_card does."""
        ahead, self._next = self._next, None
        prepared = ahead.result() if ahead is not None else None
        if prepared is not None and prepared[0] == row.job_id:
            if isinstance(prepared[1], Exception):
                raise prepared[1]
            return prepared[1]
        full = self.journal.jobs.get(row.job_id)
        if full is None:
            raise ValueError("the job's data is gone")
        return self.build(full)

    def build(self, row: JobRow) -> CardJob:
        """The job's card in panels and, where the driver encodes, in what it sends; its chip
        section as the encoder needs it (a script parsed), so a parked card waits only for
        its chip."""
        card = self.driver.prepare(build_card(row, self.driver.native_size))
        if card.chip is not None and self.encoder is not None:
            try:
                prepared = self.encoder.prepare(card.chip)
            except Exception as exc:  # a plug-in's failure: `encode` meets it again
                log.warning("chip_prepare_failed", job_id=row.job_id, error=type(exc).__name__)
            else:
                if isinstance(prepared, ChipSection):  # never a card without its chip
                    card.chip = prepared
                else:
                    log.warning("chip_prepare_failed", job_id=row.job_id,
                                error=f"returned {type(prepared).__name__}")
        return card
