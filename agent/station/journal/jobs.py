"""Jobs as they come: taken (stored, then acknowledged), claimed from a pool, released,
refused; and what the printer thread and the operators read of them.

A job is taken by storing it here and only then acknowledging its delivery, so a crash at
any moment loses it not. A job's message (its images) lives in `job_data`, apart from its
state, and is erased (zeroed, `secure_delete`) once the job ends.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from printstation.agent import contract
from printstation.agent.signing import signature_headers

from . import tally
from .jobstate import LIVE, WAITING, JobState, moves
from .outbox import Outbox
from .store import Store, ids_kept_since, newest_created

S = JobState
JOB_COLUMNS = ("job_id", "reference", "card_stock", "source", "state", "attempt", "sides",
               "created_at", "expires_at", "accepted_at", "updated_at",
               "reason_code", "reason_detail", "card_no", "counter_before", "chip_profile",
               "check_report", "chip_uid", "printer_ref")
JOB_SELECT = "SELECT " + ", ".join(f"jobs.{c}" for c in JOB_COLUMNS)
#: A job with its message (body and headers, None once erased). The columns are named:
#: a journal migrated on an old SQLite still has empty `body`/`headers` columns in jobs.
JOB_WITH_DATA = (f"{JOB_SELECT}, job_data.body, job_data.headers FROM jobs "
                 "LEFT JOIN job_data USING (job_id)")
#: A job without its message: what every reader but the printer thread needs.
JOB_WITHOUT_DATA = f"{JOB_SELECT}, NULL AS body, NULL AS headers FROM jobs"

_CONFIRM = moves(S.QUEUED, S.CLAIMING)
_CONFIRM_CANCELLED = moves(S.CANCELLED, S.CLAIMING)
_RELEASE = moves(S.RELEASED, S.CLAIMING, S.QUEUED)


class Taken(StrEnum):
    """What `Jobs.take` made of a job."""

    ACCEPTED = "accepted"
    CLAIMING = "claiming"
    DUPLICATE = "duplicate"
    CANCELLED = "cancelled"  # a cancel had arrived before the job
    TOO_OLD = "too_old"  # created before the retention period: a replay could not be told


@dataclass(frozen=True)
class JobRow:
    job_id: str
    reference: str | None
    card_stock: str | None
    source: str
    state: str
    attempt: int
    sides: int | None
    expires_at: str | None
    body: bytes | None
    headers: str | None
    card_no: int | None
    counter_before: int | None
    chip_profile: str | None = None
    printer_ref: str | None = None

    @property
    def expires(self) -> datetime | None:
        return datetime.fromisoformat(self.expires_at) if self.expires_at else None


def job_row(row: sqlite3.Row) -> JobRow:
    return JobRow(
        job_id=row["job_id"], reference=row["reference"], card_stock=row["card_stock"],
        source=row["source"], state=row["state"], attempt=row["attempt"], sides=row["sides"],
        expires_at=row["expires_at"], body=row["body"], headers=row["headers"],
        card_no=row["card_no"], counter_before=row["counter_before"],
        chip_profile=row["chip_profile"], printer_ref=row["printer_ref"],
    )


def erase_data(db: sqlite3.Connection, job_id: str) -> None:
    """The job is over: its message (the citizen's images) goes; `secure_delete` zeroes it."""
    db.execute("DELETE FROM job_data WHERE job_id=?", (job_id,))


class Jobs:
    def __init__(self, store: Store, outbox: Outbox):
        self.store = store
        self.outbox = outbox

    # --------------------------------------------------------------------- taking jobs

    def take(self, job: contract.Job, body: bytes, headers: dict[str, Any], source: str,
             *, claiming: bool = False, retention_days: float | None = None) -> Taken:
        """Store a job durably, and say what became of it.

        A redelivery or a duplicate of a job this station holds or ended is `DUPLICATE`. A
        job a cancel named before it arrived ends cancelled at once, and one created before
        the retention period ends `failed`/`too_old` (its id may have been pruned, so a
        replay could not be told from a new job); neither keeps its images. A pool claim is
        stored as `claiming` and reported only once `confirm_claim` says the broker
        committed the acknowledgement. Only the signature headers are kept, as strings.
        """
        stamp = contract.now().isoformat()
        with self.store.tx() as db:
            newest = newest_created(db)
            kept_since = ids_kept_since(newest, retention_days) \
                if retention_days is not None else None
            too_old = kept_since is not None and job.created_at < kept_since
            # A job dated in the future (a central host's wrong clock, a typo) must not
            # make every later job look too old: the mark moves at most to a day past this
            # PC's clock. Wrong that way, the PC only keeps job ids longer.
            mark = min(job.created_at, contract.now() + timedelta(days=1))
            if newest is None or mark > newest:
                db.execute("INSERT INTO meta VALUES ('newest_created_at', ?) ON CONFLICT(key) "
                           "DO UPDATE SET value=excluded.value", (mark.isoformat(),))
            row = db.execute("SELECT state FROM jobs WHERE job_id=?", (job.job_id,)).fetchone()
            if row is not None and row["state"] != S.RELEASED:
                return Taken.DUPLICATE
            # A job this station released is the central system's again: a new copy of it
            # (re-sent, or handed back to the pool and come round here) is a new job here.
            db.execute("DELETE FROM jobs WHERE job_id=? AND state=?", (job.job_id, S.RELEASED))
            cancel = db.execute("SELECT code, detail, reported FROM cancels WHERE job_id=?",
                                (job.job_id,)).fetchone()
            reason: tuple[str, str] | None = None
            if cancel is not None:
                state, outcome = S.CANCELLED, Taken.CANCELLED
                reason = (cancel["code"], f"{cancel['detail']} (the cancel came before the job)")
            elif too_old:
                state, outcome = S.FAILED, Taken.TOO_OLD
                reason = ("too_old", f"created {job.created_at.isoformat()}, more than "
                                     f"{retention_days:g} days before the newest job this "
                                     "station has seen: a replay could not be told apart")
            else:
                state = S.CLAIMING if claiming else S.QUEUED
                outcome = Taken.CLAIMING if claiming else Taken.ACCEPTED
            db.execute(
                "INSERT INTO jobs (job_id, reference, card_stock, source, state, sides, "
                "created_at, expires_at, accepted_at, updated_at, chip_profile, reason_code, "
                "reason_detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job.job_id, job.reference, job.card_stock, source, state,
                 2 if job.two_sided else 1, job.created_at.isoformat(),
                 job.expires_at.isoformat() if job.expires_at else None, stamp, stamp,
                 job.chip.profile if job.chip else None,
                 reason[0] if reason else None, reason[1] if reason else None),
            )
            if reason is not None:
                db.execute("DELETE FROM cancels WHERE job_id=?", (job.job_id,))
                if outcome is not Taken.CANCELLED or not cancel["reported"]:
                    self.outbox.status(db, job.job_id, state, reason=reason)
                return outcome
            db.execute("INSERT OR REPLACE INTO job_data VALUES (?, ?, ?)",
                       (job.job_id, body, json.dumps(signature_headers(headers))))
            if not claiming:
                self.outbox.status(db, job.job_id, "accepted")
        if not claiming:
            self.store.job_event.set()
        return outcome

    def confirm_claim(self, job_id: str) -> None:
        """The broker committed the claim: the job is this station's now (or, if a cancel
        came meanwhile, it ends cancelled)."""
        now = contract.now().isoformat()
        with self.store.tx() as db:
            cancel = db.execute("SELECT code, detail, reported FROM cancels WHERE job_id=?",
                                (job_id,)).fetchone()
            if cancel is None:
                cur = db.execute(f"UPDATE jobs SET state=?, updated_at=? WHERE job_id=? AND "
                                 f"{_CONFIRM[0]}", (S.QUEUED, now, job_id, *_CONFIRM[1]))
                if cur.rowcount:
                    self.outbox.status(db, job_id, "accepted")
            else:
                cur = db.execute(
                    f"UPDATE jobs SET state=?, reason_code=?, reason_detail=?, updated_at=? "
                    f"WHERE job_id=? AND {_CONFIRM_CANCELLED[0]}",
                    (S.CANCELLED, cancel["code"], cancel["detail"], now, job_id,
                     *_CONFIRM_CANCELLED[1]))
                if cur.rowcount:
                    db.execute("DELETE FROM cancels WHERE job_id=?", (job_id,))
                    erase_data(db, job_id)
                    if not cancel["reported"]:
                        self.outbox.status(db, job_id, "cancelled",
                                           reason=(cancel["code"], cancel["detail"]))
            # No row moved: it ended meanwhile (an operator's cancel), and that status stands.
        self.store.job_event.set()

    def release(self, job_id: str, code: str, detail: str) -> bool:
        """A claim that did not complete: the job is the central system's again, its data
        dropped. False (and nothing published) when it was no longer a claim."""
        with self.store.tx() as db:
            cur = db.execute(f"UPDATE jobs SET state=?, reason_code=?, reason_detail=?, "
                             f"updated_at=? WHERE job_id=? AND {_RELEASE[0]}",
                             (S.RELEASED, code, detail, contract.now().isoformat(), job_id,
                              *_RELEASE[1]))
            if cur.rowcount == 0:
                return False
            erase_data(db, job_id)
            self.outbox.status(db, job_id, "released", reason=(code, detail))
        return True

    def note_released_unknown(self, job_id: str, code: str, detail: str) -> None:
        """Report `released` for a pool delivery this station never held (not stored)."""
        with self.store.tx() as db:
            self.outbox.status(db, job_id, "released", reason=(code, detail))

    def reject(self, job_id: str | None, reference: str | None, code: str, detail: str) -> bool:
        """Report an unusable message; False when nothing could be reported.

        Nothing is stored under its job_id: an unsigned, forged or misdirected message must
        never take a job_id away from the genuine job (contract 6), and a bad copy of a job
        this station holds keeps that job's own status.
        """
        if job_id is None:
            return False
        with self.store.tx() as db:
            if db.execute("SELECT 1 FROM jobs WHERE job_id=?", (job_id,)).fetchone():
                return False
            self.outbox.status(db, job_id, "rejected", reason=(code, detail),
                               reference=reference)
        return True

    # ------------------------------------------------------------------------ reading

    def known(self, job_id: str) -> str | None:
        """The job's state if this station has ever seen it."""
        with self.store.lock:
            row = self.store.db.execute("SELECT state FROM jobs WHERE job_id=?",
                                        (job_id,)).fetchone()
        return row["state"] if row else None

    def next(self, *, with_body: bool = True) -> JobRow | None:
        """The oldest job waiting to print (without its images, which are large, if asked)."""
        select = JOB_WITH_DATA if with_body else JOB_WITHOUT_DATA
        with self.store.lock:
            row = self.store.db.execute(
                f"{select} WHERE state=? ORDER BY jobs.rowid LIMIT 1", (S.QUEUED,)).fetchone()
        return job_row(row) if row else None

    def any_queued(self) -> bool:
        with self.store.lock:
            return self.store.db.execute("SELECT 1 FROM jobs WHERE state=? LIMIT 1",
                                         (S.QUEUED,)).fetchone() is not None

    def get(self, job_id: str) -> JobRow | None:
        with self.store.lock:
            row = self.store.db.execute(f"{JOB_WITH_DATA} WHERE job_id=?",
                                        (job_id,)).fetchone()
        return job_row(row) if row else None

    def in_states(self, *states: JobState) -> list[JobRow]:
        """The jobs in these states, oldest first, without their images (`get` has them)."""
        marks = ",".join("?" * len(states))
        with self.store.lock:
            rows = self.store.db.execute(
                f"{JOB_WITHOUT_DATA} WHERE state IN ({marks}) ORDER BY jobs.rowid", states,
            ).fetchall()
        return [job_row(r) for r in rows]

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """Recent jobs for operators: ids, reference, status, times; never their images."""
        with self.store.lock:
            rows = self.store.db.execute(
                "SELECT job_id, reference, card_stock, source, state, attempt, accepted_at, "
                "updated_at, reason_code, reason_detail, card_no FROM jobs "
                "ORDER BY rowid DESC LIMIT ?", (limit,)).fetchall()
        return [dict(r) for r in rows]

    def listed(self, states: frozenset[JobState], limit: int) -> tuple[list[dict[str, Any]], int]:
        """Jobs in `states`, oldest first (the next to print on top), at most `limit`, and
        how many there are in all; ids, references and times only."""
        marks = ",".join("?" * len(states))
        with self.store.lock:
            rows = self.store.db.execute(
                "SELECT job_id, reference, card_stock, source, state, attempt, accepted_at, "
                "updated_at, reason_code, reason_detail, card_no FROM jobs "
                f"WHERE state IN ({marks}) ORDER BY rowid LIMIT ?", (*states, limit)).fetchall()
            total = self.store.db.execute(
                f"SELECT COUNT(*) FROM jobs WHERE state IN ({marks})", tuple(states)).fetchone()[0]
        return [dict(r) for r in rows], total

    def needing_check(self) -> list[dict[str, Any]]:
        """Jobs an operator must decide (`needs_check`), oldest first, with what the agent
        knows of their card: the printer's counter before its blank and what it reported."""
        with self.store.lock:
            rows = self.store.db.execute(
                "SELECT job_id, reference, attempt, updated_at, reason_detail, counter_before, "
                "check_report FROM jobs WHERE state=? ORDER BY rowid",
                (S.NEEDS_CHECK,)).fetchall()
        return [{**dict(r), "check_report": json.loads(r["check_report"])
                 if r["check_report"] else None} for r in rows]

    def by_state(self) -> dict[str, int]:
        with self.store.lock:
            rows = self.store.db.execute(
                "SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {r[0]: r[1] for r in rows}

    def ended(self) -> dict[str, int]:
        """Jobs ended here since the journal began, by status (never goes down: `tally`)."""
        with self.store.lock:
            return tally.jobs_ended(self.store.db)

    def waiting(self) -> int:
        """Jobs held that the printer has still to print, or is printing."""
        with self.store.lock:
            return self.store.db.execute(
                "SELECT COUNT(*) FROM jobs WHERE state IN (?, ?)", WAITING).fetchone()[0]

    def held(self) -> int:
        """Jobs whose message (the citizen's images) this station holds on its disk: from
        the moment a job is stored until its images are erased. `max_held_jobs` bounds it."""
        with self.store.lock:
            return self.store.db.execute("SELECT COUNT(*) FROM job_data").fetchone()[0]

    def erase_finished_images(self) -> None:
        """Erase the message of every job that is no longer live: the printed ones that
        `Progress.card_printed(between_cards=True)` left, and any other left behind.

        Durable, and followed by a passive checkpoint: zeroing the images writes some
        200 KB, whose fsync and copy into the database belong here, on the preparing
        thread while a card prints, not in the next commit between two cards. So does the
        start of the log over: after a complete checkpoint the next commit that writes
        restarts the write-ahead log and SQLite fsyncs its new header in that commit, which
        would otherwise be the card's outcome, between two cards; a small write here makes
        it.
        """
        live = tuple(LIVE)
        marks = ",".join("?" * len(live))
        with self.store.lock:
            if self.store.db.execute(
                    "SELECT 1 FROM job_data JOIN jobs USING (job_id) "
                    f"WHERE state NOT IN ({marks}) LIMIT 1", live).fetchone() is None:
                return
            with self.store.tx() as db:
                db.execute("DELETE FROM job_data WHERE job_id IN (SELECT job_id FROM jobs "
                           f"WHERE state NOT IN ({marks}))", live)
            self.store.checkpoint("PASSIVE")
            with self.store.tx() as db:
                db.execute("INSERT INTO meta VALUES ('log_restarts', '1') ON CONFLICT(key) "
                           "DO UPDATE SET value=CAST(value AS INTEGER) + 1")
