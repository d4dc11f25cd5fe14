"""Pool jobs going back to the central system (contract 7.1, v2), each at most once.

A job is queued to go back (`hand_back`), its publication is journaled before it is
attempted (`sending`: never attempted twice, as two copies in a pool could be printed by two
stations), and its outcome reported (`done`: `released`, `handed_back`).
"""

from __future__ import annotations

import json

from printstation.agent import contract

from .jobs import JOB_WITH_DATA, erase_data
from .jobstate import JobState, moves
from .outbox import Outbox
from .store import Store

S = JobState
_HAND_BACK = moves(S.HANDING_BACK, S.QUEUED)
_SENDING = moves(S.HANDBACK_SENDING, S.HANDING_BACK)
_DONE = moves(S.RELEASED, S.HANDING_BACK, S.HANDBACK_SENDING)


class HandBacks:
    def __init__(self, store: Store, outbox: Outbox):
        self.store = store
        self.outbox = outbox

    def hand_back(self, job_id: str, why: str) -> bool:
        """Queue a pool job that has not started to go back; False if it can't.

        Never once printing has begun (contract 7.1): a job that drew a blank (`attempt`
        counts them; a card refused before drawing one does not count) stays here, as a
        blank the printer called spoiled may still be a usable card.
        """
        with self.store.tx() as db:
            row = db.execute(f"{JOB_WITH_DATA} WHERE job_id=?", (job_id,)).fetchone()
            if row is None or row["state"] != S.QUEUED or row["attempt"] \
                    or not row["source"].startswith("pool:"):
                return False
            pool = row["source"].removeprefix("pool:")
            db.execute("INSERT INTO handback VALUES (?, ?, ?, ?, ?)",
                       (job_id, f"pool.{pool}", row["body"], row["headers"] or "{}", why))
            db.execute(f"UPDATE jobs SET state=?, updated_at=? WHERE job_id=? AND "
                       f"{_HAND_BACK[0]}",
                       (S.HANDING_BACK, contract.now().isoformat(), job_id, *_HAND_BACK[1]))
        self.store.outbox_event.set()
        return True

    def pending(self) -> list[tuple[str, str, bytes, dict]]:
        """(job_id, routing key, body, signature headers) of each job waiting to go back."""
        with self.store.lock:
            rows = self.store.db.execute(
                "SELECT h.job_id, h.routing_key, h.body, h.headers FROM handback h "
                "JOIN jobs j ON j.job_id = h.job_id WHERE j.state=? ORDER BY j.rowid",
                (S.HANDING_BACK,)).fetchall()
        return [(r["job_id"], r["routing_key"], r["body"], json.loads(r["headers"]))
                for r in rows]

    def sending(self, job_id: str) -> bool:
        """About to publish: from now on this hand-back is never attempted again. False
        when the job is no longer waiting to go back (an operator cancelled it)."""
        with self.store.tx() as db:
            cur = db.execute(f"UPDATE jobs SET state=?, updated_at=? WHERE job_id=? AND "
                             f"{_SENDING[0]}",
                             (S.HANDBACK_SENDING, contract.now().isoformat(), job_id,
                              *_SENDING[1]))
            return cur.rowcount == 1

    def done(self, job_id: str, *, confirmed: bool) -> None:
        """Report `released`; unconfirmed, the central system re-sends it (contract 7.1)."""
        with self.store.tx() as db:
            row = db.execute("SELECT why FROM handback WHERE job_id=?", (job_id,)).fetchone()
            why = row["why"] if row else "handed back"
            if not confirmed:
                why += "; the copy for the pool was not confirmed, the central system re-sends"
            db.execute("DELETE FROM handback WHERE job_id=?", (job_id,))
            cur = db.execute(f"UPDATE jobs SET state=?, reason_code='handed_back', "
                             f"reason_detail=?, updated_at=? WHERE job_id=? AND {_DONE[0]}",
                             (S.RELEASED, why, contract.now().isoformat(), job_id, *_DONE[1]))
            erase_data(db, job_id)
            if cur.rowcount:
                self.outbox.status(db, job_id, "released", reason=("handed_back", why))
