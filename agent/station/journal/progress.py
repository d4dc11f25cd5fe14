"""A job's way through the printer: the blank about to go in, and what came out.

`printing` is journaled with the printer's card counter before the blank is drawn, so a
crash mid-card is settled by asking the counter, never by a blind reprint; a card's outcome
is one transaction with its ledger row and its status. An operator settles what the agent
cannot know (`needs_check`) with `resolve`.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from printstation.agent import contract

from .armed import ArmedJobs
from .cards import Cards
from .jobs import erase_data
from .jobstate import JobState, moves
from .outbox import Outbox
from .stock import CardUse
from .store import Store

S = JobState
_START = moves(S.PRINTING, S.QUEUED)
_BACK = moves(S.QUEUED, S.PRINTING)
_PRINTED = moves(S.PRINTED, S.PRINTING)
_NEEDS_CHECK = moves(S.NEEDS_CHECK, S.PRINTING)
_RESOLVED = {True: moves(S.PRINTED, S.NEEDS_CHECK), False: moves(S.FAILED, S.NEEDS_CHECK)}
#: `finish` ends a job the printer will not print, from wherever it is in the station's
#: hands; a job on its way back to the central system is not (an operator's hand-back).
_FINISH = {to: moves(to, S.CLAIMING, S.QUEUED, S.PRINTING, S.NEEDS_CHECK)
           for to in (S.FAILED, S.EXPIRED)}


class Progress:
    def __init__(self, store: Store, outbox: Outbox, cards: Cards, armed: ArmedJobs):
        self.store = store
        self.outbox = outbox
        self.cards = cards
        self.armed = armed

    def start_printing(self, job_id: str, counter_before: int | None, *,
                       announce: bool = True, armed: bool = False) -> int | None:
        """Mark the blank as about to enter the printer; returns the attempt number, or
        None when the job is no longer queued (cancelled or handed back a moment ago):
        then no blank may be drawn for it. Without `announce`, no `printing` status (the
        same attempt, tried again after the printer refused it). `armed`: see `arm`."""
        with self.store.tx() as db:
            cur = db.execute(
                f"UPDATE jobs SET state=?, attempt=attempt+1, counter_before=?, updated_at=?, "
                f"printer_ref=NULL, chip_uid=NULL WHERE job_id=? AND {_START[0]}",
                (S.PRINTING, counter_before, contract.now().isoformat(), job_id, *_START[1]))
            if cur.rowcount == 0:
                return None
            if armed:
                self.armed.add(job_id)
                self.store.on_rollback(partial(self.armed.withdraw, job_id))
            if announce:
                self.outbox.status(db, job_id, "printing")
            return db.execute("SELECT attempt FROM jobs WHERE job_id=?",
                              (job_id,)).fetchone()[0]

    def arm(self, job_id: str, counter_before: int | None) -> int | None:
        """Journal the start of the card to feed next while another prints (`ArmedJobs`):
        durably `printing`, with `counter_before` the printer's counter once the card in it
        is counted, and no `printing` status yet (`announce_printing` says it once the
        blank is in). Returns the attempt, or None as `start_printing` does."""
        return self.start_printing(job_id, counter_before, announce=False, armed=True)

    def take_armed(self, job_id: str) -> bool:
        """The armed job's card is about to be fed: False when a cancel withdrew it."""
        return self.armed.take(job_id)

    def unarm(self, job_id: str) -> None:
        """The armed job's card will not be fed now (the card before failed, a pause, a
        stop): it waits again, its attempt not counted, nothing said. Withdrawn in the same
        transaction, under the lock a cancel takes: a cancel meanwhile finds it either
        armed (and cancels it) or queued (and cancels it)."""
        self.not_started(job_id, withdraw=True)

    def announce_printing(self, job_id: str) -> None:
        """The armed job's blank is in the printer: its `printing` status, without an
        fsync of its own (the publisher syncs and sends it at once)."""
        with self.store.tx(durable=False) as db:
            self.outbox.status(db, job_id, "printing")

    def card_printed(self, job_id: str, counter: int | None, use: CardUse | None = None, *,
                     between_cards: bool = False, chip_uid: str | None = None,
                     next_card_follows: bool = False) -> int:
        """A good card came out.

        `between_cards` is the printer thread's quick form, which holds the next card up
        least: no fsync of its own (the next card's start carries it; lost to a power cut,
        the job is `printing` again, which recovery turns into needs_check, never a
        reprint), and the images are left for `Jobs.erase_finished_images`, as zeroing them
        (`secure_delete`) writes every page they filled. `chip_uid` is the UID of the chip
        the encoder wrote, on the card's event and on `printed` (contract v2 4a, 4b).
        `next_card_follows`: the next card's start is committed at once, durably, and
        publishes `printed` with it (`Store.tx(wake=False)`); otherwise the publisher syncs
        and sends it at once.
        """
        with self.store.tx(durable=not between_cards,
                           wake=not (between_cards and next_card_follows)) as db:
            card_no = self.cards.record(db, job_id, "issued", None, counter, use, chip_uid)
            cur = db.execute(f"UPDATE jobs SET state=?, card_no=?, updated_at=? "
                             f"WHERE job_id=? AND {_PRINTED[0]}",
                             (S.PRINTED, card_no, contract.now().isoformat(), job_id,
                              *_PRINTED[1]))
            if not between_cards:
                erase_data(db, job_id)
            if cur.rowcount:
                self.outbox.status(db, job_id, "printed", card_no=card_no, chip_uid=chip_uid)
        return card_no

    def chip_encoded(self, job_id: str, chip_uid: str | None) -> None:
        """The chip of the card in the printer was written: kept with the job until the
        card's outcome, so an operator's `resolve` reports the card with its chip. Not
        fsynced on its own: the card's outcome carries the UID too."""
        with self.store.tx(durable=False) as db:
            db.execute("UPDATE jobs SET chip_uid=? WHERE job_id=?", (chip_uid, job_id))

    def submitted(self, job_id: str, ref: str) -> None:
        """The driver handed the card to a spooler under `ref` (an IPP job id): on disk
        before the card is sent, so that start-up asks the spooler, never resends."""
        with self.store.tx() as db:
            db.execute("UPDATE jobs SET printer_ref=? WHERE job_id=?", (ref[:200], job_id))

    def not_started(self, job_id: str, *, withdraw: bool = False) -> None:
        """The printer refused the card before drawing a blank: it waits, and the attempt
        does not count (no blank was used). `withdraw`: an armed job's (`unarm`)."""
        with self.store.tx() as db:
            if withdraw and self.armed.withdraw(job_id):
                # Not written: still armed as far as a cancel is concerned (`printing`).
                self.store.on_rollback(partial(self.armed.add, job_id))
            db.execute(f"UPDATE jobs SET state=?, attempt=MAX(attempt - 1, 0), updated_at=? "
                       f"WHERE job_id=? AND {_BACK[0]}",
                       (S.QUEUED, contract.now().isoformat(), job_id, *_BACK[1]))
        self.store.job_event.set()

    def back_to_queue(self, job_id: str) -> None:
        """The card did not print (a fault held it); it waits to be printed once, later."""
        with self.store.tx() as db:
            db.execute(f"UPDATE jobs SET state=?, updated_at=? WHERE job_id=? AND {_BACK[0]}",
                       (S.QUEUED, contract.now().isoformat(), job_id, *_BACK[1]))
        self.store.job_event.set()

    def finish(self, job_id: str, status: JobState, code: str | None = None,
               detail: str | None = None) -> bool:
        """End a job the printer will not print (`failed`, `expired`); False if it had ended,
        or is on its way back to the central system (a hand-back started meanwhile)."""
        guard, sources = _FINISH[status]
        with self.store.tx() as db:
            cur = db.execute(f"UPDATE jobs SET state=?, reason_code=?, reason_detail=?, "
                             f"updated_at=? WHERE job_id=? AND {guard}",
                             (status, code, detail, contract.now().isoformat(), job_id,
                              *sources))
            if cur.rowcount == 0:
                return False
            erase_data(db, job_id)
            self.outbox.status(db, job_id, status, reason=(code, detail or "") if code else None)
        return True

    def mark_needs_check(self, job_id: str, detail: str,
                         report: dict[str, Any] | None = None) -> None:
        """Nobody can know whether the card came out: an operator must say.

        `report` is what the printer said last (`needscheck.printer_report`), kept with the
        job so the operator deciding sees it beside the card counter's move.
        """
        with self.store.tx() as db:
            cur = db.execute(f"UPDATE jobs SET state=?, reason_code='printer_fault', "
                             f"reason_detail=?, check_report=?, updated_at=? WHERE job_id=? "
                             f"AND {_NEEDS_CHECK[0]}",
                             (S.NEEDS_CHECK, detail, json.dumps(report) if report else None,
                              contract.now().isoformat(), job_id, *_NEEDS_CHECK[1]))
            if cur.rowcount:
                self.outbox.status(db, job_id, "needs_check", reason=("printer_fault", detail))

    def resolve(self, job_id: str, *, printed: bool, who: str, why: str) -> str:
        """An operator says whether the card of a `needs_check` job came out."""
        with self.store.tx() as db:
            row = db.execute("SELECT state, chip_uid FROM jobs WHERE job_id=?",
                             (job_id,)).fetchone()
            if row is None:
                raise LookupError(f"job {job_id} is not known to this station")
            if row["state"] != S.NEEDS_CHECK:
                raise ValueError(f"job {job_id} is {row['state']}, not needs_check")
            detail = f"resolved by {who}: {why}"[:500]
            now = contract.now().isoformat()
            guard, sources = _RESOLVED[printed]
            if printed:
                card_no = self.cards.record(db, job_id, "issued", "operator_resolved", None,
                                            chip_uid=row["chip_uid"])
                db.execute(f"UPDATE jobs SET state=?, card_no=?, reason_code='operator_resolved',"
                           f" reason_detail=?, updated_at=? WHERE job_id=? AND {guard}",
                           (S.PRINTED, card_no, detail, now, job_id, *sources))
                self.outbox.status(db, job_id, "printed", card_no=card_no,
                                   reason=("operator_resolved", detail),
                                   chip_uid=row["chip_uid"])
            else:
                self.cards.record(db, job_id, "spoiled", "operator_resolved", None,
                                  chip_uid=row["chip_uid"])
                db.execute(f"UPDATE jobs SET state=?, reason_code='operator_resolved', "
                           f"reason_detail=?, updated_at=? WHERE job_id=? AND {guard}",
                           (S.FAILED, detail, now, job_id, *sources))
                self.outbox.status(db, job_id, "failed", reason=("operator_resolved", detail))
            erase_data(db, job_id)
            db.execute("INSERT INTO actions (at, who, action, target, why) VALUES (?, ?, ?, ?, ?)",
                       (now, who, "resolve-printed" if printed else "resolve-not-printed",
                        job_id, why))
        return "printed" if printed else "failed"
