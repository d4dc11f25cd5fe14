"""The printer thread: the one owner of the printer driver.

It takes the oldest stored job, checks that it may print it (not expired, the stock in the
feeder is the stock the job needs, the printer has no fault), journals `printing` with the
printer's card counter before the blank is drawn, prints, and journals the outcome with
its card. A fault an operator can clear holds the job; it is printed once the fault is gone.
It never touches the AMQP connections: everything it reports goes through the journal.

Two things the printer does not volunteer are held here. Some printers report a fault
(film or ribbon out, a head error) only by refusing the next card: a refusal that drew no
blank is held and shown as the fault it names (`Refusal`), not counted as an attempt, and
the card is tried again only after a pause or once something changed. And a card's outcome
that the journal cannot record (a full disk) is kept in memory and recorded before any
other blank is drawn.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial

import structlog
from pydantic import ValidationError

from printstation.agent import contract
from printstation.agent.station import failpoints
from printstation.agent.station.components import PRINTER
from printstation.agent.station.consumables import Consumables
from printstation.agent.station.journal import JobRow, Journal
from printstation.agent.station.journal.stock import CardUse
from printstation.drivers.base import (
    CardJob,
    FaultCode,
    Identity,
    PrinterDriver,
    PrinterError,
    PrinterStatus,
)
from printstation.drivers.panels import prepare_side

log = structlog.get_logger("printstation.printer")

STOCK_FAULTS = (FaultCode.RIBBON_OUT, FaultCode.FILM_OUT, FaultCode.FEEDER_EMPTY)

POLL_SECONDS = 1.0
#: A refused card is tried again after this long, doubling up to REFUSAL_MAX_DELAY, or at
#: once when the printer's state changes or an operator acts.
REFUSAL_FIRST_DELAY = 5.0
REFUSAL_MAX_DELAY = 60.0
#: How often an idle, healthy printer is asked for its state: a fault (a cover opened) shows
#: within this; a new job does not wait for it.
IDLE_POLL_SECONDS = 2.0


@dataclass
class PrinterSnapshot:
    """What the rest of the agent knows of the printer, without touching it."""

    identity: Identity | None = None
    status: PrinterStatus = field(default_factory=lambda: PrinterStatus(state="offline"))
    current_job: str | None = None
    error: str | None = None
    #: Why the next job waits for stock ("ribbon short: 1 print left, ..."), if it does.
    shortage: str | None = None
    updated: float = 0.0


@dataclass(frozen=True)
class Refusal:
    """The printer refused a card without drawing a blank (its answer to `Ss`, say).

    The fault it named may show in no status query (an Evolis reads no film and no head),
    so it is held as a fault of its own until a try succeeds.
    """

    fault: FaultCode
    detail: str
    job_id: str | None
    seen: tuple  # the printer's status when it refused: a change means someone acted
    retry_at: float
    delay: float


def _status_key(status: PrinterStatus) -> tuple:
    return (status.faults, status.consumables, status.card_stock, status.state)


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
    )


class PrinterWorker:
    name = "printer"
    stop_order = PRINTER  # the card in the printer is finished first

    def __init__(self, journal: Journal, driver: PrinterDriver, *, consumables: Consumables,
                 max_attempts: int, paused: Callable[[], bool], on_change: Callable[[], None],
                 handback_after: float = 300.0):
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
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="printer", daemon=True)
        self.idle = threading.Event()
        self.recovered = threading.Event()
        #: Monotonic time the loop last came round: the watchdog's sign of life.
        self.heartbeat = time.monotonic()
        self._tests: queue.SimpleQueue[str] = queue.SimpleQueue()
        # The next card is decoded and turned into panels while this one prints, so the
        # printer never waits for the PC (bench/utilisation.py measures it).
        self._preparer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="card-prep")
        self._next: Future[tuple[str, CardJob | Exception] | None] | None = None
        self.refusal: Refusal | None = None
        self._retry_now = threading.Event()
        #: Journal writes of a card's outcome still to be made (the journal failed); none
        #: other blank is drawn until they are.
        self._unrecorded: list[Callable[[], object]] = []
        #: Chip profiles an encoder here can write; a job needing another is not printed.
        self.chip_profiles: frozenset[str] = frozenset()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop between cards: a card in the printer is finished first."""
        self._stop.set()
        self.journal.store.job_event.set()
        self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread.is_alive()

    # ------------------------------------------------------------------------- state

    def _update(self, **changes: object) -> None:
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
        self._retry_now.set()
        self.journal.store.job_event.set()

    def _shown(self, status: PrinterStatus) -> PrinterStatus:
        """The status with a held refusal's fault in it, for every surface to show."""
        refusal = self.refusal
        if refusal is None or refusal.fault in status.faults or status.state == "offline":
            return status
        return replace(status, state="fault",
                       faults=tuple(sorted({*status.faults, refusal.fault})))

    def _poll(self) -> PrinterStatus:
        """Ask the printer; returns what it said (the snapshot shows held refusals too)."""
        try:
            status = self.driver.status()
            self._update(status=self._shown(status), error=None)
        except PrinterError as exc:
            status = PrinterStatus(state="offline", faults=(exc.fault,))
            self._update(status=status, error=exc.detail)
        except Exception as exc:
            status = PrinterStatus(state="offline", faults=(FaultCode.OTHER,))
            self._update(status=status, error=f"{type(exc).__name__}")
            log.error("printer_status_error", error=type(exc).__name__)
        return status

    # -------------------------------------------------------------------------- loop

    def _run(self) -> None:
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            try:
                self.driver.open()
                self._update(identity=self.driver.identity())
                break
            except Exception as exc:
                detail = exc.detail if isinstance(exc, PrinterError) else type(exc).__name__
                self._update(status=PrinterStatus(state="offline", faults=(FaultCode.OFFLINE,)),
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
                self._update(error=f"journal unwritable: {exc}")
                log.error("journal_unwritable", error=str(exc)[:200],
                          outcome_waiting=bool(self._unrecorded))
                with contextlib.suppress(sqlite3.Error):
                    self.journal.store.sync()  # what is committed gets published all the same
                self._stop.wait(5.0)
        if self._unrecorded:
            try:
                self._record_outcome()
            except sqlite3.Error:
                log.error("card_outcome_not_recorded", detail="the job stays printing; at "
                          "the next start the printer's counter settles it (needs_check if "
                          "it moved), never a reprint")
        self._preparer.shutdown(wait=False, cancel_futures=True)
        self._next = None
        try:
            self.driver.close()
        except Exception as exc:
            log.warning("printer_close_error", error=type(exc).__name__)

    def _record_outcome(self) -> None:
        """Make the journal writes of the last card's outcome; raises while it cannot.

        Each write is made once: one that went through is not repeated when a later one
        fails (a spoiled blank is counted once, whatever the disk does).
        """
        while self._unrecorded:
            self._unrecorded[0]()
            self._unrecorded.pop(0)
            if not self._unrecorded:
                self._update(current_job=None, error=None)

    def _settle(self, *writes: Callable[[], object]) -> None:
        """Record a card's outcome before anything else happens (see `_record_outcome`)."""
        self._unrecorded = list(writes)
        self._record_outcome()

    def _held_by_refusal(self, status: PrinterStatus) -> bool:
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

    def _refused(self, exc: PrinterError, job_id: str | None) -> None:
        """The printer refused a card and drew no blank: hold its fault, try again later."""
        before = self.refusal
        delay = REFUSAL_FIRST_DELAY if before is None else \
            min(before.delay * 2, REFUSAL_MAX_DELAY)
        status = self._poll()
        self.refusal = Refusal(exc.fault, exc.detail, job_id, _status_key(status),
                               time.monotonic() + delay, delay)
        self._update(status=self._shown(status), error=exc.detail)
        log.warning("card_refused", job_id=job_id, fault=exc.fault.value, detail=exc.detail,
                    retry_in=delay)

    def _accepted(self) -> None:
        """A blank was drawn: whatever the printer refused before is cleared."""
        if self.refusal is not None:
            log.info("refusal_cleared", fault=self.refusal.fault.value)
            self.refusal = None

    def _step(self) -> None:
        status = self._poll()
        if status.state != "offline":
            self.consumables.observe(status)
        faulted = bool(status.faults) or status.state == "offline"
        held = not faulted and self._held_by_refusal(status)
        self._watch_fault(faulted or held or self.snapshot.shortage is not None)
        if faulted or held or self.paused():
            self.idle.set()
            self._wait(self._stop, POLL_SECONDS)
            return
        self.journal.store.job_event.clear()
        try:
            who = self._tests.get_nowait()
        except queue.Empty:
            who = None
        if who is not None:
            self._print_test(status, who)
            return
        row = self.journal.jobs.next(with_body=False)
        if row is None:
            self._update(shortage=None)
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
            for row in self.journal.jobs.in_states("queued"):
                if row.source.startswith("pool:") and self.journal.handback.hand_back(
                        row.job_id, f"printer fault not cleared in {self.handback_after:g} s"):
                    log.info("pool_job_handed_back", job_id=row.job_id)

    def _recover(self) -> None:
        """Settle jobs that were `printing` when the agent stopped: never a blind reprint."""
        for row in self.journal.jobs.in_states("printing"):
            counter = self._poll().card_counter
            if counter is not None and row.counter_before is not None \
                    and counter == row.counter_before:
                self.journal.progress.back_to_queue(row.job_id)
                log.info("recovered_not_printed", job_id=row.job_id)
            else:
                self.journal.progress.mark_needs_check(
                    row.job_id, "the agent stopped while this card was in the printer; "
                                "an operator must say whether it came out")
                log.warning("recovered_needs_check", job_id=row.job_id)

    def _print(self, row: JobRow, status: PrinterStatus) -> None:
        job_id = row.job_id
        if row.expires is not None and contract.now() > row.expires:
            self.journal.progress.finish(job_id, "expired", None, None)
            log.info("job_expired", job_id=job_id)
            return
        stock = self.loaded_stock()
        if row.card_stock != stock:
            self._cannot_print(row, "stock_mismatch",
                               f"job needs {row.card_stock} blanks; the feeder holds {stock}")
            return
        if row.chip_profile is not None and row.chip_profile not in self.chip_profiles:
            have = ", ".join(sorted(self.chip_profiles)) or "none"
            self._cannot_print(row, "no_encoder",
                               f"the job's chip needs profile {row.chip_profile}; this "
                               f"station's encoders have: {have}")
            return
        use = self._stock_for(status, stock, row.sides, job_id)
        if use is None:
            return
        try:
            card = self._card_for(row)
        except Exception as exc:
            detail = str(exc) if isinstance(exc, ValueError) else "the job's images cannot be used"
            self.journal.progress.finish(job_id, "failed", "invalid_job", detail[:500])
            log.warning("job_unprintable", job_id=job_id, error=type(exc).__name__)
            return
        # A card the printer refused is not announced again: no blank went in the last time.
        retry = self.refusal is not None and self.refusal.job_id == job_id
        attempt = self.journal.progress.start_printing(job_id, status.card_counter,
                                                       announce=not retry)
        if attempt is None:
            log.info("job_no_longer_queued", job_id=job_id)  # cancelled while it was next
            return
        self._update(current_job=job_id)
        log.info("card_started", job_id=job_id, attempt=attempt)
        self._prepare_next()
        failpoints.hit_within("mid_card", 0.3)
        try:
            result = self.driver.print_card(card)
        except PrinterError as exc:
            self._card_failed(job_id, attempt, exc, replace(use, ribbon=0, film=0))
            return
        except Exception as exc:
            # The driver did not say what happened to the blank: never guess.
            log.error("card_unknown_outcome", job_id=job_id, error=type(exc).__name__)
            self._settle(partial(self.journal.progress.mark_needs_check, job_id,
                                 f"driver error {type(exc).__name__}"))
            self._update(current_job=None, error=type(exc).__name__)
            self._wait(self._stop, POLL_SECONDS)
            return
        self._accepted()
        failpoints.hit("after_card")
        log.info("card_printed", job_id=job_id, counter=result.counter)
        # Its fsync comes with the next card's start, or before the printer thread waits;
        # its images are erased by the preparing thread while the next card prints.
        self._settle(partial(self.journal.progress.card_printed, job_id, result.counter, use,
                             between_cards=True))

    def _cannot_print(self, row: JobRow, code: str, detail: str) -> None:
        """A job this station can never print (another stock, a chip it cannot encode),
        known before a blank is drawn: `failed` with the reason, as contract 3 says,
        from a pool too ("will not be by this station"); a pool this station's feeder does
        not serve is not taken from at all (`pool_stocks`)."""
        self.journal.progress.finish(row.job_id, "failed", code, detail)
        log.info("job_cannot_print", job_id=row.job_id, code=code)

    def _prepare_next(self) -> None:
        """Start building the card of the next waiting job, in the preparing thread.

        Even finding the next job happens there: nothing of it stands between two cards.
        """
        if self._next is None or self._next.done():
            self._next = self._preparer.submit(self._build_next)

    def _build_next(self) -> tuple[str, CardJob | Exception] | None:
        try:
            self.journal.jobs.erase_finished_images()  # of the card that came out before this one
        except sqlite3.Error as exc:  # the printer thread's next wait erases them again
            log.error("journal_erase_failed", error=str(exc)[:200])
        row = self.journal.jobs.next()
        if row is None:
            return None
        try:
            return row.job_id, self._build(row)
        except Exception as exc:  # reported when this job's turn comes
            return row.job_id, exc

    def _card_for(self, row: JobRow) -> CardJob:
        """The card prepared ahead for this job, or built now; raises as build_card does.

        A prepared card is dropped once taken: a card is kept in memory for one job only.
        """
        ahead, self._next = self._next, None
        prepared = ahead.result() if ahead is not None else None
        if prepared is not None and prepared[0] == row.job_id:
            if isinstance(prepared[1], Exception):
                raise prepared[1]
            return prepared[1]
        full = self.journal.jobs.get(row.job_id)
        if full is None:
            raise ValueError("the job's data is gone")
        return self._build(full)

    def _build(self, row: JobRow) -> CardJob:
        """The job's card in panels and, where the driver encodes, in what it sends."""
        return self.driver.prepare(build_card(row, self.driver.native_size))

    def _stock_for(self, status: PrinterStatus, stock: str, sides: int | None,
                   what: str) -> CardUse | None:
        """What this card will use, or None when stock is short and the card must wait.

        Not a failure: the card waits, the station says why, a load resumes it.
        """
        use = self.consumables.card_use(status, stock, sides)
        short = self.consumables.shortage(status, use)
        if short is None:
            self._update(shortage=None)
            return use
        if self.snapshot.shortage != short:
            log.warning("job_held_for_stock", job_id=what, why=short)
        self._update(shortage=short)
        self.idle.set()
        self._wait(self.journal.store.job_event, POLL_SECONDS)
        return None

    def request_test_card(self, who: str) -> None:
        """An operator asked for a test card; it prints between jobs, in the ledger as `test`."""
        self._tests.put(who)
        self.journal.store.job_event.set()

    def _print_test(self, status: PrinterStatus, who: str) -> None:
        from printstation.agent.central.samples import test_card_png

        use = self._stock_for(status, self.loaded_stock(), 1, "test card")
        if use is None:
            self._tests.put(who)  # it waits for stock like any card
            return
        self.journal.store.sync()  # a test card has no `printing` commit to carry the last fsync
        png = test_card_png(self.journal.store.station_id, contract.now())
        card = CardJob(job_id=None, front=prepare_side(png, None, True, self.driver.native_size))
        self._update(current_job="test card")
        try:
            result = self.driver.print_card(card)
        except PrinterError as exc:
            log.warning("test_card_fault", fault=exc.fault.value, by=who)
            if exc.card_drawn is False:
                self._tests.put(who)  # refused: it waits like any card
                self._update(current_job=None)
                self._refused(exc, None)
                return
            self._accepted()
            self._settle(partial(self.journal.cards.spoiled, None, exc.counter,
                                 f"test card: {exc.fault.value}", replace(use, ribbon=0, film=0)))
            self._update(current_job=None, error=exc.detail)
            return
        self._accepted()
        self._settle(partial(self.journal.cards.test, result.counter, use, who))
        log.info("test_card_printed", by=who, counter=result.counter)

    def _card_failed(self, job_id: str, attempt: int, exc: PrinterError,
                     use: CardUse) -> None:
        if exc.card_drawn is None:
            log.warning("card_unknown_outcome", job_id=job_id, fault=exc.fault.value)
            self._settle(partial(
                self.journal.progress.mark_needs_check, job_id,
                f"the printer link broke while the card was inside ({exc.fault.value}); "
                "an operator must say whether it came out"))
            self._update(current_job=None, error=exc.detail)
            self._poll()
            return
        if exc.card_drawn is False:
            # Refused, no blank drawn: not an attempt; the fault is held and shown.
            self._settle(partial(self.journal.progress.not_started, job_id))
            self._update(current_job=None)
            self._refused(exc, job_id)
            return
        self._accepted()
        log.warning("card_fault", job_id=job_id, fault=exc.fault.value, attempt=attempt)
        spoiled = partial(self.journal.cards.spoiled, job_id, exc.counter, exc.fault.value, use)
        # Running out mid-card holds the job until stock is loaded; it never fails it.
        if attempt >= self.max_attempts and exc.fault not in STOCK_FAULTS:
            self._settle(spoiled, partial(self.journal.progress.finish, job_id, "failed",
                                          "attempts_exhausted",
                                          f"{attempt} blanks spoiled ({exc.fault.value})"))
        else:
            self._settle(spoiled, partial(self.journal.progress.back_to_queue, job_id))
        self._update(current_job=None, error=exc.detail)
        self._poll()
