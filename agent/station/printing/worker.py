"""The printer thread: the one owner of the printer driver.

It takes the oldest stored job, checks that it may print it (not expired, the stock in the
feeder is the stock the job needs, the printer has no fault), journals `printing` with the
printer's card counter before the blank is drawn, prints, and journals the outcome with
its card. A fault an operator can clear holds the job; it is printed once the fault is gone.
It never touches the AMQP connections: everything it reports goes through the journal.

A card's outcome that the journal cannot record (a full disk) is kept in memory and
recorded before any other blank is drawn (`_record_outcome`). A card the printer refuses
is held as a fault (`refusal`), and the next card is prepared while one prints (`cards`).
A chip card is parked at the contactless station and encoded before it is printed; one
whose chip fails is rejected unprinted, and the job goes on with a new blank (`chip`).

A printer that prints a fed card by itself (`PrinterDriver.overlaps_cards`) is never left
waiting between cards without chips: while one prints, the next job's start is journaled
(`Progress.arm`, its counter the one the printer will show with this card counted); the
moment this card is out the next is fed, and only then is this one's outcome recorded
(`_finish_fed`). Anything that needs a look first (a fault, a pause, stock near its end, a
chip, a test card) leaves the next job to the ordinary way, after this card; an armed job
whose card is not fed (the card before failed, a cancel withdrew it) waits again as if it
had never started.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial

import structlog

from printstation.agent import contract
from printstation.agent.station import failpoints
from printstation.agent.station.components import PRINTER, ThreadedComponent
from printstation.agent.station.consumables import Consumables
from printstation.agent.station.journal import JobRow, JobState, Journal
from printstation.agent.station.journal.stock import CardUse
from printstation.agent.station.needscheck import printer_report
from printstation.agent.station.recovery import settle_printing
from printstation.drivers.base import (
    CardJob,
    FaultCode,
    PrinterDriver,
    PrinterError,
    PrinterStatus,
    StockChange,
)
from printstation.drivers.encoder import ENCODE_FAILED, Encoder, EncodeResult

from .cards import CardPreparer
from .chip import ENCODER_FAULT, ChipStation
from .outcome import Outcomes
from .refusal import RefusalHold
from .snapshot import PrinterSnapshot
from .testcard import print_test_card

log = structlog.get_logger("printstation.printer")


@dataclass
class Started:
    """A card whose start is journaled: its job, attempt, panels and what it takes.
    `announced`: its `printing` status was said (an armed card's is said once it is fed)."""

    job_id: str
    attempt: int
    card: CardJob
    use: CardUse
    announced: bool = True
    #: An armed card's: checked again as it is fed.
    expires: datetime | None = None
    stock: str | None = None


@dataclass
class Fed:
    """A card fed to a printer that prints it by itself; `counter`: the printer's card
    counter with it counted."""

    started: Started
    counter: int | None

POLL_SECONDS = 1.0
#: How often an idle, healthy printer is asked for its state: a fault (a cover opened) shows
#: within this; a new job does not wait for it.
IDLE_POLL_SECONDS = 2.0


class PrinterWorker(ThreadedComponent):
    name = "printer"
    stop_order = PRINTER  # the card in the printer is finished first
    thread_name = "printer"
    stop_timeout = 30.0

    def __init__(self, journal: Journal, driver: PrinterDriver, *, consumables: Consumables,
                 max_attempts: int, paused: Callable[[], bool], on_change: Callable[[], None],
                 handback_after: float = 300.0, encoder: Encoder | None = None):
        self.journal = journal
        self.consumables = consumables
        self.handback_after = handback_after
        self._blocked_since: float | None = None
        self.driver = driver
        self.max_attempts = max_attempts
        self.paused = paused
        self.on_change = on_change
        self.snapshot = PrinterSnapshot()
        self._lock = threading.Lock()
        super().__init__()
        self.idle = threading.Event()
        #: Set as each card goes to the printer, its stretch between cards over: work on
        #: other threads that takes the journal's lock (telemetry) waits for it (see
        #: `Telemetry._run`) rather than fall in the next stretch.
        self.card_started = threading.Event()
        self.recovered = threading.Event()
        #: Monotonic time the loop last came round: the watchdog's sign of life.
        self.heartbeat = time.monotonic()
        self.tests: queue.SimpleQueue[str] = queue.SimpleQueue()
        #: Stock an operator recorded loading or taking out, for the driver to hear of.
        self._stock_changes: queue.SimpleQueue[tuple[StockChange, Future[bool]]] = \
            queue.SimpleQueue()
        self._cards = CardPreparer(journal, driver, encoder)
        self.refusals = RefusalHold()
        #: A card's outcome the journal could not record yet: no other blank until it is.
        self.outcomes = Outcomes(journal)
        #: The contactless station and its encoder: a chip job they cannot encode is not
        #: printed here.
        self.chips = ChipStation(driver, encoder)
        #: The card in a printer that prints by itself (`overlaps_cards`), not yet out.
        self._fed: Fed | None = None

    def _wake(self) -> None:
        """Stop between cards: a card in the printer is finished first."""
        self.journal.store.job_event.set()

    # ------------------------------------------------------------------------- state

    def update(self, **changes: object) -> None:
        with self._lock:
            before = self.snapshot
            after = replace(before, updated=time.monotonic(), **changes)
            self.snapshot = after
        if (before.status.state, before.status.faults, before.current_job, before.error,
                before.shortage, before.status.consumables) != (
                after.status.state, after.status.faults, after.current_job, after.error,
                after.shortage, after.status.consumables):
            self.on_change()

    def loaded_stock(self) -> str:
        return self.consumables.feeder_stock(self.snapshot.status)

    def retry_refused(self) -> None:
        """An operator acted (loaded stock, resumed): a refused card is tried again now."""
        self.refusals.retry_now()
        self.journal.store.job_event.set()

    def stock_changed(self, change: StockChange) -> Future[bool] | None:
        """An operator recorded a load or a removal: the driver hears of it on this thread
        (its one owner) before the next card. None when the driver does not listen (a real
        printer sees it for itself); else a future, True once the driver was told."""
        hook = getattr(type(self.driver), "stock_changed", None)
        if hook is None or hook is PrinterDriver.stock_changed:
            return None
        told: Future[bool] = Future()
        self._stock_changes.put((change, told))
        self.journal.store.job_event.set()
        return told

    def _tell_stock_changes(self) -> None:
        while True:
            try:
                change, told = self._stock_changes.get_nowait()
            except queue.Empty:
                return
            if change.kind == "cards" and change.expected is not None:
                # The count once the change is made, as it is now: a card that drew a blank
                # between the record and this moment is in it, as it is in the feeder.
                counted = self.journal.cards.counted_stock().get("cards")
                if counted is not None:
                    change = dataclasses.replace(change, expected=counted.remaining)
            try:
                self.driver.stock_changed(change)
                told.set_result(True)
            except Exception as exc:
                log.warning("printer_stock_change_failed", kind=change.kind,
                            error=type(exc).__name__)
                told.set_result(False)

    def _poll(self) -> PrinterStatus:
        """Ask the printer; returns what it said (the snapshot shows held refusals too)."""
        try:
            status = self.driver.status()
            self.update(status=self.refusals.shown(status), error=None)
        except PrinterError as exc:
            status = PrinterStatus(state="offline", faults=(exc.fault,))
            self.update(status=status, error=exc.detail)
        except Exception as exc:
            status = PrinterStatus(state="offline", faults=(FaultCode.OTHER,))
            self.update(status=status, error=f"{type(exc).__name__}")
            log.error("printer_status_error", error=type(exc).__name__)
        return status

    # -------------------------------------------------------------------------- loop

    def _run(self) -> None:
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            try:
                self.driver.open()
                self.update(identity=self.driver.identity())
                break
            except Exception as exc:
                detail = exc.detail if isinstance(exc, PrinterError) else type(exc).__name__
                self.update(status=PrinterStatus(state="offline", faults=(FaultCode.OFFLINE,)),
                             error=detail)
                log.warning("printer_unreachable", error=detail)
                self._wait(self._stop, 2.0)
        self._recover()
        self.recovered.set()
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            failpoints.hang("printer_hang")
            try:
                self._record_outcome()
                self._step()
            except sqlite3.Error as exc:
                # The journal cannot be written (disk full, unwritable): print nothing that
                # could not be recorded; retry until it can.
                self.update(error=f"journal unwritable: {exc}")
                log.error("journal_unwritable", error=str(exc)[:200],
                          outcome_waiting=self.outcomes.waiting)
                with contextlib.suppress(sqlite3.Error):
                    self.journal.store.sync()  # what is committed gets published all the same
                self._stop.wait(5.0)
        with contextlib.suppress(sqlite3.Error):  # then the outcome waits, below
            while self._fed is not None:  # the card in the printer is finished first
                self._finish_fed()
        if self.outcomes.waiting:
            try:
                self._record_outcome()
            except sqlite3.Error:
                log.error("card_outcome_not_recorded", detail="the job stays printing; at "
                          "the next start the printer's counter settles it (needs_check if "
                          "it moved), never a reprint")
        with contextlib.suppress(sqlite3.Error):  # a full disk: the next start erases them
            self.journal.jobs.erase_finished_images()
            self.journal.store.checkpoint("TRUNCATE")
        self._cards.close()
        try:
            self.driver.close()
        except Exception as exc:
            log.warning("printer_close_error", error=type(exc).__name__)
        if self.chips.encoder is not None:
            try:
                self.chips.encoder.close()
            except Exception as exc:
                log.warning("encoder_close_error", error=type(exc).__name__)

    def _record_outcome(self) -> None:
        """The last card's outcome, if it still waits; raises while it cannot be recorded."""
        if self.outcomes.record():
            fed = self._fed
            self.update(current_job=fed.started.job_id if fed else None, error=None)

    def settle(self, *writes: Callable[[], object]) -> None:
        self.outcomes.settle(*writes)
        self.update(current_job=None, error=None)

    def refused(self, exc: PrinterError, job_id: str | None, *,
                until_someone_acts: bool = False) -> None:
        """The printer refused a card and drew no blank: hold its fault, try again later."""
        status = self._poll()
        self.refusals.refused(exc, job_id, status, until_someone_acts=until_someone_acts)
        self.update(status=self.refusals.shown(status), error=exc.detail)

    def _step(self) -> None:
        if self._fed is not None:
            self._finish_fed()
            return
        self._tell_stock_changes()
        status = self._poll()
        if status.state != "offline":
            self.consumables.observe(status)
        faulted = bool(status.faults) or status.state == "offline"
        held = not faulted and self.refusals.holds(status)
        self._watch_fault(faulted or held or self.snapshot.shortage is not None)
        if faulted or held or self.paused():
            self.idle.set()
            self._wait(self._stop, POLL_SECONDS)
            return
        self.journal.store.job_event.clear()
        try:
            who = self.tests.get_nowait()
        except queue.Empty:
            who = None
        if who is not None:
            print_test_card(self, status, who)
            return
        row = self.journal.jobs.next(with_body=False)
        if row is None:
            self.update(shortage=None)
            if not self.idle.is_set():
                # The queue ran dry: erase what is left of printed jobs, drop old pages.
                self.journal.jobs.erase_finished_images()
                self.journal.store.checkpoint("TRUNCATE")
            self.idle.set()
            # A new job wakes it at once.
            self._wait(self.journal.store.job_event, IDLE_POLL_SECONDS)
            return
        self.idle.clear()
        self._print(row, status)

    def _wait(self, event: threading.Event, seconds: float) -> None:
        """Every wait starts with the journal settled: a card's outcome is committed without
        its own fsync and its images erased later, and neither may stay so while nothing
        follows that would finish it."""
        self.journal.store.sync()
        self.journal.jobs.erase_finished_images()
        event.wait(seconds)

    def _watch_fault(self, faulted: bool) -> None:
        """Pool jobs held (a fault, stock short) for `handback_after` s go back to their pool."""
        if not faulted:
            self._blocked_since = None
            return
        now = time.monotonic()
        if self._blocked_since is None:
            self._blocked_since = now
        elif now - self._blocked_since >= self.handback_after:
            for row in self.journal.jobs.in_states(JobState.QUEUED):
                if row.source.startswith("pool:") and self.journal.handback.hand_back(
                        row.job_id, f"printer fault not cleared in {self.handback_after:g} s"):
                    log.info("pool_job_handed_back", job_id=row.job_id)

    def _recover(self) -> None:
        """Settle jobs that were `printing` when the agent stopped: never a blind reprint."""
        printing = self.journal.jobs.in_states(JobState.PRINTING)
        if printing:
            # Asking a spooler may wait for it to finish a card: the watchdog allows a card.
            self.update(current_job=printing[0].job_id)
            settle_printing(self.journal, self._poll(), self.driver)
            self.update(current_job=None)

    def _print(self, row: JobRow, status: PrinterStatus) -> None:
        job_id = row.job_id
        if row.expires is not None and contract.now() > row.expires:
            self.journal.progress.finish(job_id, JobState.EXPIRED, None, None)
            log.info("job_expired", job_id=job_id)
            return
        stock = self.loaded_stock()
        if row.card_stock != stock:
            self._cannot_print(row, "stock_mismatch",
                               f"job needs {row.card_stock} blanks; the feeder holds {stock}")
            return
        if row.chip_profile is not None:
            why = self.chips.cannot_encode(row.chip_profile)
            if why is not None:
                self._cannot_encode(row, why)
                return
            broken = self.chips.check()
            if broken is not None:  # hold the card: no blank is spoiled on a broken reader
                # No `printing` was said for it: its first real try must say it.
                self.refused(PrinterError(FaultCode.ENCODER, str(broken)[:200]), None)
                return
        use = self.stock_for(status, stock, row.sides, job_id)
        if use is None:
            return
        try:
            card = self._cards.card_for(row)
        except Exception as exc:
            detail = str(exc) if isinstance(exc, ValueError) else "the job's images cannot be used"
            self.journal.progress.finish(job_id, JobState.FAILED, "invalid_job", detail[:500])
            log.warning("job_unprintable", job_id=job_id, error=type(exc).__name__)
            return
        # A card the printer refused is not announced again: no blank went in the last time.
        retry = self.refusals.is_retry(job_id)
        attempt = self.journal.progress.start_printing(job_id, status.card_counter,
                                                       announce=not retry)
        if attempt is None:
            log.info("job_no_longer_queued", job_id=job_id)  # cancelled while it was next
            return
        self.update(current_job=job_id)
        log.info("card_started", job_id=job_id, attempt=attempt)
        self._cards.prepare_next()
        chip_uid, parked_no = None, None
        if card.chip is not None:
            encoded = self._park_and_encode(job_id, attempt, card, use)
            if encoded is None:
                return
            chip_uid, parked_no = encoded[0].uid, encoded[1]
        card.note_submitted = partial(self._submitted, job_id)
        card.note_status = self._status_while_printing
        if card.chip is None and self.driver.overlaps_cards:
            self._feed(Started(job_id, attempt, card, use))
            return
        failpoints.hit_within("mid_card", 0.3)
        self.card_started.set()
        try:
            result = self.driver.print_card(card)
        except PrinterError as exc:
            if card.chip is not None and exc.card_drawn is False:
                exc.card_drawn = True  # the parked card left the feeder: it is spoiled
            self._card_failed(job_id, attempt, exc, replace(use, ribbon=0, film=0), chip_uid)
            return
        except Exception as exc:
            self._driver_failed(job_id, exc)
            return
        self.refusals.cleared()
        failpoints.hit("after_card")
        if parked_no and result.counter is not None and result.counter != parked_no:
            # Another blank than the one whose chip was written came out printed: which
            # card holds what, only an operator looking can say.
            log.error("chip_card_mismatch", job_id=job_id, parked=parked_no,
                      printed=result.counter)
            self.settle(partial(
                self.journal.progress.mark_needs_check, job_id,
                f"the printer printed card {result.counter}, not card {parked_no} whose "
                "chip was written; check both cards",
                printer_report("driver_error", detail="printed another card than the one "
                                                      "parked")))
            return
        log.info("card_printed", job_id=job_id, counter=result.counter)
        # Committed without an fsync. With the next card prepared, that card's start (a
        # durable commit, at once) carries it to disk and to the publisher; else the
        # publisher syncs and sends it at once (Store.tx), off this thread. Its images are
        # erased by the preparing thread while the next card prints.
        self.settle(partial(self.journal.progress.card_printed, job_id, result.counter, use,
                             between_cards=True, chip_uid=chip_uid,
                             next_card_follows=self._cards.ready()))

    # ------------------------------------------------- a printer that prints by itself

    def _feed(self, started: Started) -> None:
        """Feed a card to a printer that prints it by itself; then record what waits (the
        outcome of the card that came out just before, and this one's `printing`)."""
        try:
            counter = self.driver.feed_card(started.card)
        except Exception as exc:
            self._not_fed(started, exc)  # what waits is recorded first
            return
        self._fed = Fed(started, counter)
        self.card_started.set()
        failpoints.hit_within("mid_card", 0.3)
        if not started.announced:
            log.info("card_started", job_id=started.job_id, attempt=started.attempt)
            self.outcomes.add(partial(self.journal.progress.announce_printing,
                                      started.job_id))
        self.outcomes.record()
        self.update(current_job=started.job_id, error=None)

    def _not_fed(self, started: Started, exc: Exception) -> None:
        """The fed card did not become a card (`feed_card` or `print_card` raised)."""
        if not isinstance(exc, PrinterError):
            self._driver_failed(started.job_id, exc)
            return
        # Counted as the ordinary way counts a card that failed: no ribbon or film.
        self._card_failed(started.job_id, started.attempt, exc,
                          replace(started.use, ribbon=0, film=0), announced=started.announced)

    def _finish_fed(self) -> None:
        """Arm the next card while the fed one prints, wait for the fed one, feed the armed
        one the moment it is out, then record the fed one's outcome."""
        fed = self._fed
        if fed is None:
            return
        started = fed.started
        armed = self._arm_next(fed)
        try:
            result = self.driver.print_card(started.card)
        except Exception as exc:
            self._fed = None
            if armed is not None:
                self.outcomes.add(partial(self.journal.progress.unarm, armed.job_id))
            if isinstance(exc, PrinterError) and exc.card_drawn is False:
                exc.card_drawn = True  # its blank left the feeder when it was fed
            self._not_fed(started, exc)
            return
        self._fed = None
        # Kept before anything else can fail; without an fsync of its own (the publisher
        # syncs and sends it at once), recorded once the next card is in. Its images are
        # erased by the preparing thread.
        self.outcomes.add(partial(self.journal.progress.card_printed, started.job_id,
                                  result.counter, started.use, between_cards=True))
        self.refusals.cleared()
        failpoints.hit("after_card")
        log.info("card_printed", job_id=started.job_id, counter=result.counter)
        if armed is not None and self._may_feed(armed):
            self._feed(armed)
            return
        if armed is not None:
            self.outcomes.add(partial(self.journal.progress.unarm, armed.job_id))
        self.settle()

    def _may_feed(self, armed: Started) -> bool:
        """The armed card goes in now: nothing asks for a look between cards (the blanks in
        the feeder still the job's; the journal writing, as no card is printed that could
        not be recorded), and no cancel withdrew it (`ArmedJobs`; taken, it can no longer
        be). A check that fails to answer says no."""
        try:
            return (self.journal.store.write_error is None and self._no_call_between_cards()
                    and armed.stock == self.loaded_stock()
                    and (armed.expires is None or contract.now() <= armed.expires)
                    and self.journal.progress.take_armed(armed.job_id))
        except Exception as exc:
            log.error("next_card_not_fed", error=type(exc).__name__)
            return False

    def _no_call_between_cards(self) -> bool:
        """Nothing needs the printer thread between two cards: no stop, pause, test card or
        stock change waits."""
        return not (self._stop.is_set() or self.paused() or not self.tests.empty()
                    or not self._stock_changes.empty())

    def _arm_next(self, fed: Fed) -> Started | None:
        """While `fed` prints, journal the next job's start so that it can go in the
        moment `fed` is out; None when the next job needs the ordinary way, after it."""
        try:
            if (fed.counter is None or not self._no_call_between_cards()
                    or self.refusals.refusal is not None):
                return None
            status = self._poll()
            if status.faults or status.state == "offline":
                return None
            row = self.journal.jobs.next(with_body=False)
            stock = self.loaded_stock()
            if (row is None or row.chip_profile is not None or row.card_stock != stock
                    or (row.expires is not None and contract.now() > row.expires)):
                return None
            use = self.consumables.card_use(status, stock, row.sides)
            if self.consumables.shortage(status, use, ahead=fed.started.use) is not None:
                return None
            card = self._cards.card_for(row)
            if card.chip is not None:
                return None
            card.note_submitted = partial(self._submitted, row.job_id)
            card.note_status = self._status_while_printing
            attempt = self.journal.progress.arm(row.job_id, fed.counter)
        except sqlite3.Error as exc:
            log.error("next_card_not_armed", error=str(exc)[:200])
            return None
        except Exception:  # a card that cannot be built: the ordinary way fails its job
            return None
        if attempt is None:
            return None
        failpoints.hit("after_arm")
        self._cards.prepare_next()
        return Started(row.job_id, attempt, card, use, announced=False, expires=row.expires,
                       stock=row.card_stock)

    def _status_while_printing(self, status: PrinterStatus) -> None:
        """What the driver read of the printer while it waits for a card: shown at once."""
        self.update(status=self.refusals.shown(status), error=None)

    def _submitted(self, job_id: str, ref: str) -> None:
        """The driver handed the card to a spooler: its reference on disk before the card
        is sent (a crash from here is settled by asking the spooler)."""
        self.journal.progress.submitted(job_id, ref)
        failpoints.hit("after_submit")

    def _driver_failed(self, job_id: str, exc: Exception) -> None:
        """The driver did not say what happened to the blank: never guess."""
        log.error("card_unknown_outcome", job_id=job_id, error=type(exc).__name__)
        self.settle(partial(self.journal.progress.mark_needs_check, job_id,
                             f"driver error {type(exc).__name__}",
                             printer_report("driver_error", detail=type(exc).__name__)))
        self.update(current_job=None, error=type(exc).__name__)
        self._wait(self._stop, POLL_SECONDS)

    def _park_and_encode(self, job_id: str, attempt: int, card: CardJob,
                         use: CardUse) -> tuple[EncodeResult, int] | None:
        """Park the blank at the contactless station and write its chip: the result and the
        parked card's number (0: unknown) when the card may be printed, None when it was
        not (refused, rejected, or unknowable)."""
        unprinted = replace(use, ribbon=0, film=0)
        try:
            parked = self.driver.park_card(card)
        except PrinterError as exc:
            self._card_failed(job_id, attempt, exc, unprinted)
            return None
        except Exception as exc:
            self._driver_failed(job_id, exc)
            return None
        self.refusals.cleared()
        if card.chip is None:  # not reached: the caller parks only chip cards
            raise ValueError("a card without a chip section was parked")
        failpoints.hit_within("mid_encode", 0.3)
        result = self.chips.encode(job_id, parked, card.chip)
        if result.ok:
            log.info("chip_encoded", job_id=job_id, chip_uid=result.uid)
            self.journal.progress.chip_encoded(job_id, result.uid)
            return result, parked.card_no
        log.warning("chip_not_encoded", job_id=job_id, fault=result.fault,
                    chip_uid=result.uid, detail=result.detail, attempt=attempt)
        try:
            self.driver.reject_card(card)
        except Exception as exc:  # it is not printed either way; a jam shows on the next poll
            log.warning("reject_failed", job_id=job_id,
                        error=exc.detail if isinstance(exc, PrinterError) else type(exc).__name__)
        spoiled = partial(self.journal.cards.spoiled, job_id, parked.card_no or None,
                          result.fault or ENCODE_FAILED, unprinted, chip_uid=result.uid)
        last = attempt >= self.max_attempts
        self.outcomes.spoiled(job_id, spoiled, last=last, code=result.fault or ENCODE_FAILED,
                              detail=f"{attempt} blanks spoiled; the last: {result.detail}")
        self.update(current_job=None, error=None)
        if result.fault == ENCODER_FAULT and not last:
            # The station's fault, not the card's: the job waits while it is shown, and no
            # other blank is drawn for a chip until someone acts (a blank was lost already).
            self.refused(PrinterError(FaultCode.ENCODER, result.detail), None,
                         until_someone_acts=True)
        return None

    def _cannot_encode(self, row: JobRow, why: str) -> None:
        """A chip job this station cannot encode: a pool's goes back to the central system
        for another station (contract 7.1: handed back, never begun); a station's own fails
        (`no_encoder`), no blank used."""
        if row.source.startswith("pool:") and self.journal.handback.hand_back(row.job_id, why):
            log.info("pool_job_handed_back", job_id=row.job_id, why=why)
            return
        self._cannot_print(row, "no_encoder", why)

    def _cannot_print(self, row: JobRow, code: str, detail: str) -> None:
        """A job this station can never print (another stock, a chip it cannot encode),
        known before a blank is drawn: `failed` with the reason, as contract 3 says,
        from a pool too ("will not be by this station"); a pool this station's feeder does
        not serve is not taken from at all (`pool_stocks`)."""
        self.journal.progress.finish(row.job_id, JobState.FAILED, code, detail)
        log.info("job_cannot_print", job_id=row.job_id, code=code)

    def stock_for(self, status: PrinterStatus, stock: str, sides: int | None,
                   what: str) -> CardUse | None:
        """What this card will use, or None when stock is short and the card must wait.

        Not a failure: the card waits, the station says why, a load resumes it.
        """
        use = self.consumables.card_use(status, stock, sides)
        short = self.consumables.shortage(status, use)
        if short is None:
            self.update(shortage=None)
            return use
        if self.snapshot.shortage != short:
            log.warning("job_held_for_stock", job_id=what, why=short)
        self.update(shortage=short)
        self.idle.set()
        self._wait(self.journal.store.job_event, POLL_SECONDS)
        return None

    def request_test_card(self, who: str) -> None:
        """An operator asked for a test card; it prints between jobs, in the ledger as `test`."""
        self.tests.put(who)
        self.journal.store.job_event.set()

    def _card_failed(self, job_id: str, attempt: int, exc: PrinterError,
                     use: CardUse, chip_uid: str | None = None, *,
                     announced: bool = True) -> None:
        what = self.outcomes.failure(job_id, attempt, exc, use, self.max_attempts, chip_uid)
        if what == "refused":
            self.update(current_job=None)
            # Its retry says `printing` unless it was said already.
            self.refused(exc, job_id if announced else None)
            return
        if what == "spoiled":
            self.refusals.cleared()
        self.update(current_job=None, error=exc.detail)
        self._poll()
