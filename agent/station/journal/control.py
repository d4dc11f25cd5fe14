"""The central system's commands in the journal: cancels, and the ids of commands acted on.

A cancel for a job the station has not taken (yet) is remembered in `cancels`, so the job
ends cancelled when it arrives (contract 5, v2); a command's id is kept, so a replay of it
is a duplicate.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from printstation.agent import contract

from .armed import ArmedJobs
from .jobs import erase_data
from .jobstate import JobState, moves
from .outbox import Outbox
from .store import Store

S = JobState
_CANCEL = moves(S.CANCELLED, S.QUEUED, S.HANDING_BACK)
#: ... and a job armed to print next, its blank not drawn (`ArmedJobs`), once withdrawn.
_CANCEL_ARMED = moves(S.CANCELLED, S.PRINTING)
#: A job the station does not hold now: a cancel for it is remembered.
_NOT_HELD = (None, S.RELEASED, S.CLAIMING, S.HANDBACK_SENDING)


class Control:
    def __init__(self, store: Store, outbox: Outbox, armed: ArmedJobs):
        self.store = store
        self.outbox = outbox
        self.armed = armed

    def cancel(self, job_id: str, code: str, detail: str, *, central: bool = False,
               issued_at: datetime | None = None) -> str:
        """Cancel a job that has not started printing (its blank not drawn); returns what
        became of it.

        From the central system (contract 5), a job this station has not taken yet is
        remembered and ends cancelled when it arrives. One it never saw (or released) is
        reported `cancelled` (`cancel_unknown`) at once: that is its one terminal status
        here, and it ends quietly when it arrives. One that is being claimed or handed back
        at this moment gets no status yet (a `released` may still follow): its `cancelled`
        comes when the claim is confirmed, or when it arrives again. A cancel that comes
        too late publishes the job's status again only while it is not terminal
        (`printing`, `needs_check`); a terminal status is never said twice (a second
        `printed` could send a citizen a second SMS). An operator's cancel acts only on a
        job the station holds (a mistyped id must not cancel a job yet to come).
        """
        now = contract.now().isoformat()
        with self.store.tx() as db:
            row = db.execute("SELECT state, reason_code, reason_detail, card_no FROM jobs "
                             "WHERE job_id=?", (job_id,)).fetchone()
            remembered_at = (issued_at or contract.now()).isoformat()
            state = JobState(row["state"]) if row else None
            if state in _NOT_HELD:
                if not central:
                    return "not held by this station" if state is None else str(state)
                known = db.execute("SELECT reported FROM cancels WHERE job_id=?",
                                   (job_id,)).fetchone()
                report = state in (None, S.RELEASED) and not (known and known["reported"])
                db.execute("INSERT OR REPLACE INTO cancels VALUES (?, ?, ?, ?, ?)",
                           (job_id, remembered_at, code, detail[:500],
                            1 if report or (known and known["reported"]) else 0))
                if report:
                    self.outbox.status(db, job_id, "cancelled", reason=(
                        "cancel_unknown", "this station has not taken the job; it ends "
                        "cancelled if it arrives"))
                return "not received yet: it will be cancelled when it arrives"
            # A job armed to print next is `printing` with no blank drawn: still cancelled,
            # and its attempt, which drew no blank, not counted.
            armed = state == S.PRINTING and self.armed.withdraw(job_id)
            if armed:
                self.store.on_rollback(partial(self.armed.add, job_id))
            guard, sources = _CANCEL_ARMED if armed else _CANCEL
            cur = db.execute(f"UPDATE jobs SET state=?, reason_code=?, reason_detail=?, "
                             f"updated_at=?, attempt=MAX(attempt - ?, 0) WHERE job_id=? "
                             f"AND {guard}",
                             (S.CANCELLED, code, detail, now, 1 if armed else 0, job_id,
                              *sources))
            if cur.rowcount:
                db.execute("DELETE FROM handback WHERE job_id=?", (job_id,))
                erase_data(db, job_id)
                self.outbox.status(db, job_id, "cancelled", reason=(code, detail))
                return "cancelled"
            if central and state in (S.PRINTING, S.NEEDS_CHECK):
                reason = (row["reason_code"], row["reason_detail"] or "") \
                    if row["reason_code"] else None
                self.outbox.status(db, job_id, state, reason=reason, card_no=row["card_no"])
        return "already cancelled" if state == S.CANCELLED else str(state)

    def command_seen(self, command_id: str) -> bool:
        """Whether a control command with this id was acted on (a replay, contract 5)."""
        with self.store.lock:
            return self.store.db.execute("SELECT 1 FROM commands WHERE command_id=?",
                                         (command_id,)).fetchone() is not None

    def record_command(self, command_id: str, command: str, result: str,
                       issued_at: datetime | None = None) -> None:
        """Recorded after the command acted: every command is idempotent, so a crash in
        between acts on its redelivery again, which is harmless; recorded first, the
        command would be lost. Kept by its signed `issued_at` (see `retention`)."""
        with self.store.tx() as db:
            db.execute("INSERT OR IGNORE INTO commands VALUES (?, ?, ?, ?)",
                       (command_id, (issued_at or contract.now()).isoformat(), command,
                        result[:200]))
