"""The journal: every job, every card and every outbound event, durably, in one SQLite file.

A job is taken by storing it here and only then acknowledging its delivery, and an event
is stored here before it is published (the outbox), so a crash at any moment loses
neither. Each change of a job and the events it causes are one transaction, so the
journal never says a card was printed without the status that reports it.

One object owns the connection; every thread goes through its methods, which hold its
lock. The file lives in a 0700 directory, is created 0600, and uses `secure_delete` so a
job's images, dropped once the job is terminal, are overwritten rather than left in free
pages.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from printstation.agent import contract
from printstation.agent.contract import TERMINAL_STATUSES, routing_key
from printstation.agent.signing import signature_headers
from printstation.agent.station import stockbook

SCHEMA_VERSION = 3
LOCK_NAME = "agent.lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    reference TEXT,
    card_stock TEXT,
    source TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    sides INTEGER,
    created_at TEXT,
    expires_at TEXT,
    accepted_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    reason_code TEXT,
    reason_detail TEXT,
    card_no INTEGER,
    counter_before INTEGER,
    chip_profile TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
-- A live job's message, apart from its state: a state change then rewrites a small row,
-- not the ~200 KB of images (SQLite rewrites a whole row on UPDATE).
CREATE TABLE IF NOT EXISTS job_data (
    job_id TEXT PRIMARY KEY,
    body BLOB NOT NULL,
    headers TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    routing_key TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at TEXT NOT NULL,
    published INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (published, seq);
CREATE TABLE IF NOT EXISTS cards (
    card_no INTEGER PRIMARY KEY,
    job_id TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    counter INTEGER,
    at TEXT NOT NULL,
    stock TEXT,
    sides INTEGER,
    ribbon_use INTEGER,
    film_use INTEGER
);
CREATE TABLE IF NOT EXISTS stock (
    kind TEXT PRIMARY KEY,
    type TEXT,
    capacity INTEGER,
    remaining INTEGER NOT NULL,
    unit TEXT NOT NULL,
    loaded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS loads (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    type TEXT,
    amount INTEGER NOT NULL,
    who TEXT NOT NULL,
    note TEXT
);
CREATE TABLE IF NOT EXISTS handback (
    job_id TEXT PRIMARY KEY,
    routing_key TEXT NOT NULL,
    body BLOB NOT NULL,
    headers TEXT NOT NULL,
    why TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    why TEXT
);
-- A cancel for a job this station has not taken (yet): the job ends cancelled on arrival.
-- `reported`: its `cancelled` was published when the cancel came (then it ends quietly).
CREATE TABLE IF NOT EXISTS cancels (
    job_id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    code TEXT NOT NULL,
    detail TEXT NOT NULL,
    reported INTEGER NOT NULL DEFAULT 1
);
-- Control commands acted on, by command_id: a replay is a duplicate.
CREATE TABLE IF NOT EXISTS commands (
    command_id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    command TEXT NOT NULL,
    result TEXT
);
-- Written and deleted to learn whether the journal takes a message of some size again.
CREATE TABLE IF NOT EXISTS space_probe (id INTEGER PRIMARY KEY, data BLOB NOT NULL);
-- Ledger rows older than the retention period, summed per day, stock and outcome
-- ('loaded' for loads), so the blank balance still holds after they are pruned.
CREATE TABLE IF NOT EXISTS ledger_archive (
    day TEXT NOT NULL,
    stock TEXT NOT NULL,
    outcome TEXT NOT NULL,
    n INTEGER NOT NULL,
    ribbon_used INTEGER NOT NULL DEFAULT 0,
    film_used INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, stock, outcome)
);
"""

JOB_COLUMNS = ("job_id", "reference", "card_stock", "source", "state", "attempt", "sides",
               "created_at", "expires_at", "accepted_at", "updated_at",
               "reason_code", "reason_detail", "card_no", "counter_before", "chip_profile")

_JOB_SELECT = "SELECT " + ", ".join(f"jobs.{c}" for c in JOB_COLUMNS)
#: A job with its message (body and headers, None once erased). The columns are named:
#: a journal migrated on an old SQLite still has empty `body`/`headers` columns in jobs.
_JOB_WITH_DATA = (f"{_JOB_SELECT}, job_data.body, job_data.headers FROM jobs "
                  "LEFT JOIN job_data USING (job_id)")

#: Job states that are not terminal and still hold the job's data.
#: `handing_back`: a pool job waiting to be published back to its pool; `handback_sending`:
#: its publication was attempted, so it must never be attempted again (a second copy in the
#: pool could be printed by two stations).
LIVE_STATES = ("claiming", "queued", "printing", "needs_check", "handing_back",
               "handback_sending")
#: States whose row only keeps the job's id and outcome: pruned after the retention period.
ENDED_STATES = (*sorted(TERMINAL_STATUSES), "released")


class Taken(StrEnum):
    """What `Journal.take` made of a job."""

    ACCEPTED = "accepted"
    CLAIMING = "claiming"
    DUPLICATE = "duplicate"
    CANCELLED = "cancelled"  # a cancel had arrived before the job
    TOO_OLD = "too_old"  # created before the retention period: a replay could not be told


class Signal(threading.Event):
    """An event that also calls its wakers when set.

    The publisher waits for new events inside pika's I/O loop (which must keep servicing
    heartbeats); a waker posts a thread-safe callback into that loop, so it wakes at once
    instead of polling.
    """

    def __init__(self) -> None:
        super().__init__()
        self._wakers: tuple[Callable[[], None], ...] = ()

    def add_waker(self, waker: Callable[[], None]) -> None:
        self._wakers = (*self._wakers, waker)

    def remove_waker(self, waker: Callable[[], None]) -> None:
        self._wakers = tuple(w for w in self._wakers if w is not waker)

    def set(self) -> None:
        super().set()
        for waker in self._wakers:
            waker()


class JournalError(Exception):
    """The journal file cannot be used; the message says how to recover."""


class JournalLocked(JournalError):
    """Another agent holds this state folder (contract 7.8: one agent per journal)."""


def _lock_state_dir(state_dir: Path) -> int:
    """Hold an exclusive lock on the state folder for as long as this process runs.

    `flock` is released by the kernel when the holder dies, however it dies, so a lock
    file left behind by a killed agent never blocks the next one. The holder's pid is
    written into the file, for the message the second agent gives.
    """
    path = state_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        finally:
            os.close(fd)
        raise JournalLocked(
            f"another agent (pid {holder}) is running on the state folder {state_dir}; "
            "stop it first (systemctl stop printstation), or give this one its own "
            "--state-dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


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

    @property
    def expires(self) -> datetime | None:
        return datetime.fromisoformat(self.expires_at) if self.expires_at else None


class Journal:
    def __init__(self, state_dir: Path, station_id: str):
        self.station_id = station_id
        self.state_dir = state_dir
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(state_dir, 0o700)
        self.path = state_dir / "journal.sqlite3"
        self._lock_fd = _lock_state_dir(state_dir)
        #: Why the last write failed (disk full, I/O error), None once one succeeds.
        self.write_error: str | None = None
        old_umask = os.umask(0o077)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.execute("PRAGMA foreign_keys=ON")
            check = self._db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise JournalError(
                    f"journal {self.path} is corrupt ({check}); stop the agent, move the "
                    "file aside for inspection, and restore the last backup"
                )
            _refuse_newer_schema(self._db, self.path)
            self._db.executescript(_SCHEMA)
            _move_job_data(self._db)
            stockbook.migrate(self._db)
            _add_columns(self._db)
        except sqlite3.DatabaseError as exc:
            os.close(self._lock_fd)
            raise JournalError(
                f"journal {self.path} cannot be opened ({exc}); if it is corrupt, move it "
                "aside for inspection and restore the last backup"
            ) from None
        except BaseException:
            os.close(self._lock_fd)
            raise
        finally:
            os.umask(old_umask)
        for suffix in ("", "-wal", "-shm"):
            p = Path(f"{self.path}{suffix}")
            if p.exists():
                os.chmod(p, 0o600)
        self._lock = threading.RLock()
        self._stock_cache: dict[str, stockbook.Counted] | None = None
        #: Events up to this seq are on disk and may be published; see `_tx(durable=False)`.
        self._synced_seq = 0
        # A killed predecessor's last commits may still be in the page cache only.
        self._unsynced = True
        self.outbox_event = Signal()
        self.job_event = threading.Event()
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                       (str(SCHEMA_VERSION),))
            db.execute("INSERT OR IGNORE INTO meta VALUES ('last_seq', '0')")
        self.outbox_event.set()
        self.job_event.set()

    def close(self) -> None:
        with self._lock:
            try:
                with contextlib.suppress(sqlite3.Error):
                    self.sync()
                self._db.close()
            finally:
                os.close(self._lock_fd)

    @contextmanager
    def _tx(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction.

        A durable one is on disk when it returns: SQLite fsyncs the write-ahead log, which
        also makes every earlier commit durable. A non-durable one skips that fsync (it
        survives the agent being killed, not the machine losing power) until the next
        durable commit or `sync()`; the events it stores are not published before then, so
        nobody hears of what a power cut could still undo.
        """
        with self._lock:
            self._stock_cache = None  # any write may change the stock: read it again
            try:
                if not durable:
                    self._db.execute("PRAGMA synchronous=NORMAL")
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    try:
                        yield self._db
                        self._db.execute("COMMIT")
                    except BaseException:
                        # SQLite may already have rolled back (a full disk, an I/O error).
                        if self._db.in_transaction:
                            with contextlib.suppress(sqlite3.Error):
                                self._db.execute("ROLLBACK")
                        raise
                    finally:
                        self._stock_cache = None
                finally:
                    if not durable:
                        self._db.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error as exc:
                if _station_fault(exc):
                    self.write_error = str(exc)[:200]
                raise
            self.write_error = None
            if not durable:
                self._unsynced = True
            elif self._unsynced:
                # SQLite skips the fsync of a commit that wrote nothing: sync explicitly.
                self.sync()
            else:
                self._now_synced()  # every commit so far had its own fsync

    def sync(self) -> None:
        """Make every commit durable (and its events publishable) now."""
        with self._lock:
            if not self._unsynced:
                return
            # Commits live in the write-ahead log until a checkpoint, which syncs the log
            # before copying it; syncing the log therefore covers every commit so far.
            for name in (f"{self.path}-wal", str(self.path)):
                try:
                    fd = os.open(name, os.O_RDONLY)
                except FileNotFoundError:
                    continue
                try:
                    os.fsync(fd)
                except OSError as exc:
                    self.write_error = f"journal cannot be synced: {exc.strerror}"
                    raise sqlite3.OperationalError(self.write_error) from None
                finally:
                    os.close(fd)
            self._now_synced()

    def _now_synced(self) -> None:
        self._unsynced = False
        seq = self.last_seq()
        if seq > self._synced_seq:
            self._synced_seq = seq
            self.outbox_event.set()

    # ----------------------------------------------------------------------- the outbox

    def _emit(self, db: sqlite3.Connection, event: dict[str, Any]) -> int:
        """Store one event with the next `seq`, validated against its contract model."""
        seq = int(db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()[0]) + 1
        db.execute("UPDATE meta SET value=? WHERE key='last_seq'", (str(seq),))
        event = {"schema": event.pop("schema"), "station_id": self.station_id, "seq": seq,
                 "at": contract.now().isoformat(), **event}
        contract.EVENT_MODELS[event["schema"]].model_validate(event)
        if event["schema"] == contract.TELEMETRY_SCHEMA and self._replace_unsent_telemetry(
                db, seq - 1, event):
            db.execute("UPDATE meta SET value=? WHERE key='last_seq'", (str(seq - 1),))
            return seq - 1
        db.execute(
            "INSERT INTO outbox (seq, routing_key, body, created_at) VALUES (?, ?, ?, ?)",
            (seq, routing_key(event), json.dumps(event).encode(), event["at"]),
        )
        # The publisher is woken once the event is on disk (`_now_synced`), not before:
        # woken now it would only find nothing to send, and take the lock to find it.
        return seq

    @staticmethod
    def _replace_unsent_telemetry(db: sqlite3.Connection, last: int, event: dict) -> bool:
        """A telemetry event supersedes the one before it while that one waits unsent.

        Telemetry is a snapshot: during a broker outage of weeks only the newest matters,
        and storing one every 30 s would fill the disk. It takes over the waiting one's
        `seq`, so consumers see no gap.
        """
        row = db.execute("SELECT routing_key, published FROM outbox WHERE seq=?",
                         (last,)).fetchone()
        if row is None or row["published"] or not row["routing_key"].startswith("telemetry."):
            return False
        event["seq"] = last
        db.execute("UPDATE outbox SET body=?, created_at=? WHERE seq=?",
                   (json.dumps(event).encode(), event["at"], last))
        return True

    def _status(self, db: sqlite3.Connection, job_id: str, status: str, *,
                reason: tuple[str, str] | None = None, card_no: int | None = None,
                reference: str | None = None) -> None:
        row = db.execute("SELECT reference, attempt FROM jobs WHERE job_id=?",
                         (job_id,)).fetchone()
        self._emit(db, {
            "schema": contract.STATUS_SCHEMA,
            "job_id": job_id,
            "reference": row["reference"] if row else reference,
            "status": status,
            "attempt": row["attempt"] if row else 0,
            "reason": {"code": reason[0], "detail": reason[1]} if reason else None,
            "card": {"card_no": card_no} if card_no is not None else None,
        })

    def emit(self, event: dict[str, Any]) -> int:
        """Store a telemetry or alert event for publishing."""
        with self._tx() as db:
            return self._emit(db, dict(event))

    def unpublished(self, limit: int = 200) -> list[tuple[int, str, bytes]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, routing_key, body FROM outbox WHERE published=0 AND seq <= ? "
                "ORDER BY seq LIMIT ?", (self._synced_seq, limit),
            ).fetchall()
        return [(r["seq"], r["routing_key"], r["body"]) for r in rows]

    def mark_published(self, seqs: list[int]) -> None:
        if not seqs:
            return
        # Not durable: a mark lost to a power cut only publishes the event again, which
        # consumers deduplicate on station_id + seq.
        with self._tx(durable=False) as db:
            db.executemany("UPDATE outbox SET published=1 WHERE seq=?", [(s,) for s in seqs])

    def backlog(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox WHERE published=0").fetchone()[0]

    def last_seq(self) -> int:
        with self._lock:
            return int(self._db.execute(
                "SELECT value FROM meta WHERE key='last_seq'").fetchone()[0])

    # --------------------------------------------------------------------- taking jobs

    def known(self, job_id: str) -> str | None:
        """The job's state if this station has ever seen it."""
        with self._lock:
            row = self._db.execute("SELECT state FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        return row["state"] if row else None

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
        with self._tx() as db:
            newest = _newest_created(db)
            too_old = retention_days is not None and newest is not None and \
                job.created_at < newest - timedelta(days=retention_days)
            # A job dated in the future (a central host's wrong clock, a typo) must not
            # make every later job look too old: the mark moves at most to a day past this
            # PC's clock. Wrong that way, the PC only keeps job ids longer.
            mark = min(job.created_at, contract.now() + timedelta(days=1))
            if newest is None or mark > newest:
                db.execute("INSERT INTO meta VALUES ('newest_created_at', ?) ON CONFLICT(key) "
                           "DO UPDATE SET value=excluded.value", (mark.isoformat(),))
            row = db.execute("SELECT state FROM jobs WHERE job_id=?", (job.job_id,)).fetchone()
            if row is not None and row["state"] != "released":
                return Taken.DUPLICATE
            # A job this station released is the central system's again: a new copy of it
            # (re-sent, or handed back to the pool and come round here) is a new job here.
            db.execute("DELETE FROM jobs WHERE job_id=? AND state='released'", (job.job_id,))
            cancel = db.execute("SELECT code, detail, reported FROM cancels WHERE job_id=?",
                                (job.job_id,)).fetchone()
            reason: tuple[str, str] | None = None
            if cancel is not None:
                state, outcome = "cancelled", Taken.CANCELLED
                reason = (cancel["code"], f"{cancel['detail']} (the cancel came before the job)")
            elif too_old:
                state, outcome = "failed", Taken.TOO_OLD
                reason = ("too_old", f"created {job.created_at.isoformat()}, more than "
                                     f"{retention_days:g} days before the newest job this "
                                     "station has seen: a replay could not be told apart")
            else:
                state = "claiming" if claiming else "queued"
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
                    self._status(db, job.job_id, state, reason=reason)
                return outcome
            db.execute("INSERT OR REPLACE INTO job_data VALUES (?, ?, ?)",
                       (job.job_id, body, json.dumps(signature_headers(headers))))
            if not claiming:
                self._status(db, job.job_id, "accepted")
        if not claiming:
            self.job_event.set()
        return outcome

    def confirm_claim(self, job_id: str) -> None:
        """The broker committed the claim: the job is this station's now (or, if a cancel
        came meanwhile, it ends cancelled)."""
        with self._tx() as db:
            cancel = db.execute("SELECT code, detail, reported FROM cancels WHERE job_id=?",
                                (job_id,)).fetchone()
            state = "cancelled" if cancel is not None else "queued"
            cur = db.execute("UPDATE jobs SET state=?, updated_at=? WHERE job_id=? "
                             "AND state='claiming'", (state, contract.now().isoformat(), job_id))
            if cur.rowcount == 0:
                return  # ended meanwhile (an operator's cancel): that status stands
            if cancel is None:
                self._status(db, job_id, "accepted")
            else:
                db.execute("DELETE FROM cancels WHERE job_id=?", (job_id,))
                db.execute("UPDATE jobs SET reason_code=?, reason_detail=? WHERE job_id=?",
                           (cancel["code"], cancel["detail"], job_id))
                _erase_data(db, job_id)
                if not cancel["reported"]:
                    self._status(db, job_id, "cancelled",
                                 reason=(cancel["code"], cancel["detail"]))
        self.job_event.set()

    def release(self, job_id: str, code: str, detail: str) -> bool:
        """A claim that did not complete: the job is the central system's again, its data
        dropped. False (and nothing published) when it was no longer a claim."""
        with self._tx() as db:
            cur = db.execute("UPDATE jobs SET state='released', reason_code=?, "
                             "reason_detail=?, updated_at=? WHERE job_id=? AND state IN "
                             "('claiming', 'queued')",
                             (code, detail, contract.now().isoformat(), job_id))
            if cur.rowcount == 0:
                return False
            _erase_data(db, job_id)
            self._status(db, job_id, "released", reason=(code, detail))
        return True

    def note_released_unknown(self, job_id: str, code: str, detail: str) -> None:
        """Report `released` for a pool delivery this station never held (not stored)."""
        with self._tx() as db:
            self._status(db, job_id, "released", reason=(code, detail))

    def reject(self, job_id: str | None, reference: str | None, code: str, detail: str) -> bool:
        """Report an unusable message; False when nothing could be reported.

        Nothing is stored under its job_id: an unsigned, forged or misdirected message must
        never take a job_id away from the genuine job (contract 6), and a bad copy of a job
        this station holds keeps that job's own status.
        """
        if job_id is None:
            return False
        with self._tx() as db:
            if db.execute("SELECT 1 FROM jobs WHERE job_id=?", (job_id,)).fetchone():
                return False
            self._status(db, job_id, "rejected", reason=(code, detail), reference=reference)
        return True

    # ------------------------------------------------------------------------ printing

    def next_job(self, *, with_body: bool = True) -> JobRow | None:
        """The oldest job waiting to print (without its images, which are large, if asked)."""
        select = _JOB_WITH_DATA if with_body else \
            f"{_JOB_SELECT}, NULL AS body, NULL AS headers FROM jobs"
        with self._lock:
            row = self._db.execute(
                f"{select} WHERE state='queued' ORDER BY jobs.rowid LIMIT 1").fetchone()
        return _job_row(row) if row else None

    def any_queued(self) -> bool:
        with self._lock:
            return self._db.execute(
                "SELECT 1 FROM jobs WHERE state='queued' LIMIT 1").fetchone() is not None

    def get(self, job_id: str) -> JobRow | None:
        with self._lock:
            row = self._db.execute(f"{_JOB_WITH_DATA} WHERE job_id=?", (job_id,)).fetchone()
        return _job_row(row) if row else None

    def jobs_in(self, *states: str) -> list[JobRow]:
        marks = ",".join("?" * len(states))
        with self._lock:
            rows = self._db.execute(
                f"{_JOB_WITH_DATA} WHERE state IN ({marks}) ORDER BY jobs.rowid",
                states,
            ).fetchall()
        return [_job_row(r) for r in rows]

    def start_printing(self, job_id: str, counter_before: int | None, *,
                       announce: bool = True) -> int | None:
        """Mark the blank as about to enter the printer; returns the attempt number, or
        None when the job is no longer queued (cancelled or handed back a moment ago):
        then no blank may be drawn for it. Without `announce`, no `printing` status (the
        same attempt, tried again after the printer refused it)."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE jobs SET state='printing', attempt=attempt+1, counter_before=?, "
                "updated_at=? WHERE job_id=? AND state='queued'",
                (counter_before, contract.now().isoformat(), job_id),
            )
            if cur.rowcount == 0:
                return None
            if announce:
                self._status(db, job_id, "printing")
            return db.execute("SELECT attempt FROM jobs WHERE job_id=?",
                              (job_id,)).fetchone()[0]

    def _card(self, db: sqlite3.Connection, job_id: str | None, outcome: str,
              reason: str | None, counter: int | None,
              use: stockbook.CardUse | None = None) -> int:
        """One blank left the feeder: a ledger row, its event, and the stock it used."""
        at = contract.now().isoformat()
        use = use or stockbook.CardUse(stock=self._feeder_stock(db))
        # Numbered from a counter, not the table: pruned ledger rows must never free a
        # number for a new card (a published card_no names one physical card).
        last = db.execute("SELECT value FROM meta WHERE key='last_card_no'").fetchone()
        card_no = max(int(last[0]) if last else 0, db.execute(
            "SELECT COALESCE(MAX(card_no), 0) FROM cards").fetchone()[0]) + 1
        db.execute("INSERT INTO meta VALUES ('last_card_no', ?) ON CONFLICT(key) DO UPDATE "
                   "SET value=excluded.value", (str(card_no),))
        db.execute(
            "INSERT INTO cards (card_no, job_id, outcome, reason, counter, at, stock, sides, "
            "ribbon_use, film_use) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (card_no, job_id, outcome, reason, counter, at, use.stock, use.sides, use.ribbon,
             use.film),
        )
        stockbook.consume(db, use)
        self._emit(db, {"schema": contract.CARD_SCHEMA, "card_no": card_no, "job_id": job_id,
                        "outcome": outcome, "reason": reason})
        return card_no

    def _feeder_stock(self, db: sqlite3.Connection) -> str | None:
        row = db.execute("SELECT type FROM stock WHERE kind='cards'").fetchone()
        return row["type"] if row else None

    def card_printed(self, job_id: str, counter: int | None,
                     use: stockbook.CardUse | None = None, *, between_cards: bool = False) -> int:
        """A good card came out.

        `between_cards` is the printer thread's quick form, which holds the next card up
        least: no fsync of its own (the next card's start carries it; lost to a power cut,
        the job is `printing` again, which recovery turns into needs_check, never a
        reprint), and the images are left for `erase_finished_images`, as zeroing them
        (`secure_delete`) writes every page they filled.
        """
        with self._tx(durable=not between_cards) as db:
            card_no = self._card(db, job_id, "issued", None, counter, use)
            cur = db.execute("UPDATE jobs SET state='printed', card_no=?, updated_at=? "
                             "WHERE job_id=? AND state='printing'",
                             (card_no, contract.now().isoformat(), job_id))
            if not between_cards:
                _erase_data(db, job_id)
            if cur.rowcount:
                self._status(db, job_id, "printed", card_no=card_no)
        return card_no

    def card_test(self, counter: int | None, use: stockbook.CardUse, who: str) -> int:
        """An operator's test card came out (no job; counted in the ledger as `test`)."""
        with self._tx() as db:
            return self._card(db, None, "test", f"test card by {who}"[:200], counter, use)

    def card_spoiled(self, job_id: str | None, counter: int | None, reason: str,
                     use: stockbook.CardUse | None = None) -> int:
        """A blank left the feeder and did not become a good card."""
        with self._tx() as db:
            return self._card(db, job_id, "spoiled", reason, counter, use)

    def not_started(self, job_id: str) -> None:
        """The printer refused the card before drawing a blank: it waits, and the attempt
        does not count (no blank was used)."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET state='queued', attempt=MAX(attempt - 1, 0), "
                       "updated_at=? WHERE job_id=? AND state='printing'",
                       (contract.now().isoformat(), job_id))
        self.job_event.set()

    def back_to_queue(self, job_id: str) -> None:
        """The card did not print (a fault held it); it waits to be printed once, later."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET state='queued', updated_at=? WHERE job_id=? "
                       "AND state='printing'", (contract.now().isoformat(), job_id))
        self.job_event.set()

    def finish(self, job_id: str, status: str, code: str | None = None,
               detail: str | None = None) -> bool:
        """End a live job in a terminal status; False if it was already terminal, or is on
        its way back to the central system (a hand-back an operator started meanwhile)."""
        assert status in TERMINAL_STATUSES
        states = ("claiming", "queued", "printing", "needs_check")
        marks = ",".join("?" * len(states))
        with self._tx() as db:
            cur = db.execute(
                f"UPDATE jobs SET state=?, reason_code=?, "
                f"reason_detail=?, updated_at=? WHERE job_id=? AND state IN ({marks})",
                (status, code, detail, contract.now().isoformat(), job_id, *states),
            )
            if cur.rowcount == 0:
                return False
            _erase_data(db, job_id)
            self._status(db, job_id, status,
                         reason=(code, detail or "") if code else None)
        return True

    def cancel(self, job_id: str, code: str, detail: str, *, central: bool = False,
               issued_at: datetime | None = None) -> str:
        """Cancel a job that has not started printing; returns what became of it.

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
        with self._tx() as db:
            row = db.execute("SELECT state, reason_code, reason_detail, card_no FROM jobs "
                             "WHERE job_id=?", (job_id,)).fetchone()
            remembered_at = (issued_at or contract.now()).isoformat()
            state = row["state"] if row else None
            if state in (None, "released", "claiming", "handback_sending"):
                if not central:
                    return "not held by this station" if state is None else state
                known = db.execute("SELECT reported FROM cancels WHERE job_id=?",
                                   (job_id,)).fetchone()
                report = state in (None, "released") and not (known and known["reported"])
                db.execute("INSERT OR REPLACE INTO cancels VALUES (?, ?, ?, ?, ?)",
                           (job_id, remembered_at, code, detail[:500],
                            1 if report or (known and known["reported"]) else 0))
                if report:
                    self._status(db, job_id, "cancelled", reason=(
                        "cancel_unknown", "this station has not taken the job; it ends "
                        "cancelled if it arrives"))
                return "not received yet: it will be cancelled when it arrives"
            if state in ("queued", "handing_back"):
                db.execute("UPDATE jobs SET state='cancelled', reason_code=?, reason_detail=?, "
                           "updated_at=? WHERE job_id=?", (code, detail, now, job_id))
                db.execute("DELETE FROM handback WHERE job_id=?", (job_id,))
                _erase_data(db, job_id)
                self._status(db, job_id, "cancelled", reason=(code, detail))
                return "cancelled"
            if central and state in ("printing", "needs_check"):
                reason = (row["reason_code"], row["reason_detail"] or "") \
                    if row["reason_code"] else None
                self._status(db, job_id, state, reason=reason, card_no=row["card_no"])
        return "already cancelled" if state == "cancelled" else str(state)

    def mark_needs_check(self, job_id: str, detail: str) -> None:
        with self._tx() as db:
            cur = db.execute("UPDATE jobs SET state='needs_check', reason_code='printer_fault', "
                             "reason_detail=?, updated_at=? WHERE job_id=? AND state='printing'",
                             (detail, contract.now().isoformat(), job_id))
            if cur.rowcount:
                self._status(db, job_id, "needs_check", reason=("printer_fault", detail))

    # ------------------------------------------------------------------ pool hand-back

    def hand_back(self, job_id: str, why: str) -> bool:
        """Queue a pool job that has not started to go back to its pool; False if it can't."""
        with self._tx() as db:
            row = db.execute(f"{_JOB_WITH_DATA} WHERE job_id=?", (job_id,)).fetchone()
            if row is None or row["state"] != "queued" or not row["source"].startswith("pool:"):
                return False
            pool = row["source"].removeprefix("pool:")
            db.execute("INSERT INTO handback VALUES (?, ?, ?, ?, ?)",
                       (job_id, f"pool.{pool}", row["body"], row["headers"] or "{}", why))
            db.execute("UPDATE jobs SET state='handing_back', updated_at=? WHERE job_id=?",
                       (contract.now().isoformat(), job_id))
        self.outbox_event.set()
        return True

    def pending_handbacks(self) -> list[tuple[str, str, bytes, dict]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT h.job_id, h.routing_key, h.body, h.headers FROM handback h "
                "JOIN jobs j ON j.job_id = h.job_id WHERE j.state='handing_back' "
                "ORDER BY j.rowid").fetchall()
        return [(r["job_id"], r["routing_key"], r["body"], json.loads(r["headers"]))
                for r in rows]

    def handback_sending(self, job_id: str) -> bool:
        """About to publish: from now on this hand-back is never attempted again. False
        when the job is no longer waiting to go back (an operator cancelled it)."""
        with self._tx() as db:
            cur = db.execute("UPDATE jobs SET state='handback_sending', updated_at=? "
                             "WHERE job_id=? AND state='handing_back'",
                             (contract.now().isoformat(), job_id))
            return cur.rowcount == 1

    def handback_done(self, job_id: str, *, confirmed: bool) -> None:
        """Report `released`; unconfirmed, the central system re-sends it (contract 7.1)."""
        with self._tx() as db:
            row = db.execute("SELECT why FROM handback WHERE job_id=?", (job_id,)).fetchone()
            why = row["why"] if row else "handed back"
            if not confirmed:
                why += "; the copy for the pool was not confirmed, the central system re-sends"
            db.execute("DELETE FROM handback WHERE job_id=?", (job_id,))
            cur = db.execute("UPDATE jobs SET state='released', reason_code='handed_back', "
                             "reason_detail=?, updated_at=? WHERE job_id=? AND state IN "
                             "('handing_back', 'handback_sending')",
                             (why, contract.now().isoformat(), job_id))
            _erase_data(db, job_id)
            if cur.rowcount:
                self._status(db, job_id, "released", reason=("handed_back", why))

    # ---------------------------------------------------------------- operator resolution

    def resolve(self, job_id: str, *, printed: bool, who: str, why: str) -> str:
        """An operator says whether the card of a `needs_check` job came out."""
        with self._tx() as db:
            row = db.execute("SELECT state FROM jobs WHERE job_id=?", (job_id,)).fetchone()
            if row is None:
                raise LookupError(f"job {job_id} is not known to this station")
            if row["state"] != "needs_check":
                raise ValueError(f"job {job_id} is {row['state']}, not needs_check")
            detail = f"resolved by {who}: {why}"[:500]
            now = contract.now().isoformat()
            if printed:
                card_no = self._card(db, job_id, "issued", "operator_resolved", None)
                db.execute("UPDATE jobs SET state='printed', card_no=?, "
                           "reason_code='operator_resolved', reason_detail=?, updated_at=? "
                           "WHERE job_id=?", (card_no, detail, now, job_id))
                self._status(db, job_id, "printed", card_no=card_no,
                             reason=("operator_resolved", detail))
            else:
                self._card(db, job_id, "spoiled", "operator_resolved", None)
                db.execute("UPDATE jobs SET state='failed', "
                           "reason_code='operator_resolved', reason_detail=?, updated_at=? "
                           "WHERE job_id=?", (detail, now, job_id))
                self._status(db, job_id, "failed", reason=("operator_resolved", detail))
            _erase_data(db, job_id)
            db.execute("INSERT INTO actions (at, who, action, target, why) VALUES (?, ?, ?, ?, ?)",
                       (now, who, "resolve-printed" if printed else "resolve-not-printed",
                        job_id, why))
        return "printed" if printed else "failed"

    def erase_finished_images(self) -> None:
        """Erase the message of every job that is no longer live: the printed ones that
        `card_printed(between_cards=True)` left, and any other left by an older agent.

        Durable, and followed by a passive checkpoint: zeroing the images writes some
        200 KB, whose fsync and copy into the database belong here, on the preparing
        thread while a card prints, not in the next commit between two cards.
        """
        marks = ",".join("?" * len(LIVE_STATES))
        with self._lock:
            if self._db.execute(
                    "SELECT 1 FROM job_data JOIN jobs USING (job_id) "
                    f"WHERE state NOT IN ({marks}) LIMIT 1", LIVE_STATES).fetchone() is None:
                return
            with self._tx() as db:
                db.execute("DELETE FROM job_data WHERE job_id IN (SELECT job_id FROM jobs "
                           f"WHERE state NOT IN ({marks}))", LIVE_STATES)
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def scrub(self) -> None:
        """Fold the write-ahead log into the database and empty it.

        Deleted rows are zeroed in the database (`secure_delete`), but their old pages can
        linger in the WAL until a checkpoint: the printer thread calls this when it runs
        out of work, so a terminal job's images do not outlive it anywhere on disk.
        """
        with self._lock:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def recent_jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        """Recent jobs for operators: ids, reference, status, times; never their images."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, reference, card_stock, source, state, attempt, accepted_at, "
                "updated_at, reason_code, reason_detail, card_no FROM jobs "
                "ORDER BY rowid DESC LIMIT ?", (limit,)).fetchall()
        return [dict(r) for r in rows]

    # ---------------------------------------------------------------- settings and counts

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row["value"] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                       "value=excluded.value", (key, value))

    def record_action(self, who: str, action: str, target: str | None, why: str | None) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO actions (at, who, action, target, why) VALUES (?, ?, ?, ?, ?)",
                       (contract.now().isoformat(), who, action, target, why))

    def card_counts(self) -> dict[str, int]:
        today = contract.now().date().isoformat()
        with self._lock:
            rows = self._db.execute(
                "SELECT outcome, substr(at, 1, 10) = ? AS today, COUNT(*) AS n FROM cards "
                "GROUP BY outcome, today", (today,),
            ).fetchall()
        counts = {"printed_today": 0, "spoiled_today": 0, "printed_total": 0, "spoiled_total": 0}
        for r in rows:
            name = {"issued": "printed", "spoiled": "spoiled"}.get(r["outcome"])
            if name is None:
                continue
            counts[f"{name}_total"] += r["n"]
            if r["today"]:
                counts[f"{name}_today"] += r["n"]
        return counts

    # ---------------------------------------------------------------- control commands

    def newest_created(self) -> datetime | None:
        """The central system's time as far as this station knows it (see `prune`)."""
        with self._lock:
            return _newest_created(self._db)

    def command_seen(self, command_id: str) -> bool:
        """Whether a control command with this id was acted on (a replay, contract 5)."""
        with self._lock:
            return self._db.execute("SELECT 1 FROM commands WHERE command_id=?",
                                    (command_id,)).fetchone() is not None

    def record_command(self, command_id: str, command: str, result: str,
                       issued_at: datetime | None = None) -> None:
        """Recorded after the command acted: every command is idempotent, so a crash in
        between acts on its redelivery again, which is harmless; recorded first, the
        command would be lost. Kept by its signed `issued_at` (see `prune`)."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO commands VALUES (?, ?, ?, ?)",
                       (command_id, (issued_at or contract.now()).isoformat(), command,
                        result[:200]))

    # ----------------------------------------------------------------------- retention

    def prune(self, *, job_days: float, event_days: float,
              now: datetime | None = None) -> dict[str, int]:
        """Delete what the retention periods no longer need (contract 7.7); returns counts.

        Ended jobs (their id and outcome), cancels and command ids are kept `job_days`, so a
        replay within it is a duplicate (and `take` refuses older jobs as `too_old`);
        published events are kept `event_days`; ledger rows older than `job_days` are
        summed per day into `ledger_archive` first, so the blank balance still holds.
        Unpublished events are never deleted: a status waits for the broker however long.
        Freed pages are reused, so the file stops growing once the periods are full.

        What replay protection rests on is measured in the central system's time, never
        the PC's clock: a job by its signed `created_at`, a cancel or command by its signed
        `issued_at`, against the newest `created_at` seen, exactly as `take` judges
        `too_old`. A PC that booted in the year 2000 and is corrected later prunes nothing
        early, and one whose clock runs ahead refuses nothing.
        """
        now = now or contract.now()
        events_before = (now - timedelta(days=event_days)).isoformat()
        ended = ",".join("?" * len(ENDED_STATES))
        old = "julianday({}) < julianday(?)"
        counts = {}
        with self._tx() as db:
            newest = _newest_created(db)
            central_before = (newest - timedelta(days=job_days)).isoformat() \
                if newest is not None else None
            counts["events"] = db.execute(
                f"DELETE FROM outbox WHERE published=1 AND {old.format('created_at')}",
                (events_before,)).rowcount
            counts["jobs"] = db.execute(
                f"DELETE FROM jobs WHERE state IN ({ended}) AND "
                f"{old.format('COALESCE(created_at, updated_at)')}",
                (*ENDED_STATES, central_before)).rowcount if central_before else 0
            db.execute("DELETE FROM job_data WHERE job_id NOT IN (SELECT job_id FROM jobs)")
            for table in ("cancels", "commands"):
                counts[table] = db.execute(
                    f"DELETE FROM {table} WHERE {old.format('at')}",
                    (central_before,)).rowcount if central_before else 0
            records_before = (now - timedelta(days=job_days)).isoformat()
            counts["actions"] = db.execute(f"DELETE FROM actions WHERE {old.format('at')}",
                                           (records_before,)).rowcount
            counts["ledger"] = stockbook.archive(db, records_before)
        if any(counts.values()):
            with self._lock:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return counts

    def can_store(self, size: int) -> bool:
        """Whether the journal takes a message of `size` bytes now, tried for real.

        After a full disk, a small write may succeed long before a job's 300 KB would; a
        station that took jobs again on such a probe would return each one to the queue,
        and every return counts against the queue's delivery limit. So twice the size is
        written into the journal itself, committed and deleted: a journal that fails for
        another reason (an I/O error, damage) fails this too.
        """
        try:
            with self._tx() as db:
                db.execute("INSERT INTO space_probe (data) VALUES (zeroblob(?))",
                           (2 * size + 65536,))
            with self._tx() as db:
                db.execute("DELETE FROM space_probe")
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error), self._lock:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            return False
        return True

    # ------------------------------------------------------------ stock and the ledger

    def counted_stock(self) -> dict[str, stockbook.Counted]:
        """The agent's count; read several times per card, so kept until the next write."""
        with self._lock:
            if self._stock_cache is None:
                self._stock_cache = stockbook.counted(self._db)
            return dict(self._stock_cache)

    def load_stock(self, *, kind: str, type_: str | None, capacity: int | None, amount: int,
                   add: bool, who: str, note: str) -> stockbook.Counted:
        with self._tx() as db:
            return stockbook.load(db, kind=kind, type_=type_, capacity=capacity, amount=amount,
                                  add=add, who=who, note=note, at=contract.now().isoformat())

    def recent_cards(self, limit: int = 50) -> list[dict[str, Any]]:
        with self._lock:
            return stockbook.recent_cards(self._db, limit)

    def ledger_days(self) -> list[dict[str, Any]]:
        with self._lock:
            return stockbook.ledger_days(self._db)

    def spoiled_reasons(self, day: str) -> dict[str, int]:
        with self._lock:
            return stockbook.spoiled_reasons(self._db, day)

    def loads(self, day: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return stockbook.loads_on(self._db, day)

    def card_outcomes(self) -> list[tuple[str, str | None, int]]:
        with self._lock:
            rows = self._db.execute("SELECT outcome, reason, COUNT(*) FROM cards "
                                    "GROUP BY outcome, reason").fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def job_states(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {r[0]: r[1] for r in rows}

    def cards_drawn(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM cards").fetchone()[0]

    def queued_count(self) -> int:
        with self._lock:
            return self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'printing')").fetchone()[0]


def _newest_created(db: sqlite3.Connection) -> datetime | None:
    """The newest `created_at` of any job taken: the central system's clock, as signed."""
    row = db.execute("SELECT value FROM meta WHERE key='newest_created_at'").fetchone()
    return datetime.fromisoformat(row[0]) if row else None


def _station_fault(exc: sqlite3.Error) -> bool:
    """A failure of the station's own storage (full disk, I/O error, read-only), not a bug."""
    return isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError) and not \
        isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError)


def _add_columns(db: sqlite3.Connection) -> None:
    """Journals of schema 2 lack the jobs table's `chip_profile` (contract v2's chip)."""
    if "chip_profile" not in {r[1] for r in db.execute("PRAGMA table_info(jobs)")}:
        db.execute("ALTER TABLE jobs ADD COLUMN chip_profile TEXT")
    db.execute("UPDATE meta SET value=? WHERE key='schema_version' AND CAST(value AS INTEGER) < ?",
               (str(SCHEMA_VERSION), SCHEMA_VERSION))


def _erase_data(db: sqlite3.Connection, job_id: str) -> None:
    """The job is over: its message (the citizen's images) goes; `secure_delete` zeroes it."""
    db.execute("DELETE FROM job_data WHERE job_id=?", (job_id,))


def _refuse_newer_schema(db: sqlite3.Connection, path: Path) -> None:
    """A journal written by a newer agent must not be read (or changed) by an older one."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone() is None:
        return
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is not None and int(row[0]) > SCHEMA_VERSION:
        raise JournalError(
            f"journal {path} was written by a newer agent (schema {row[0]}; this one knows "
            f"{SCHEMA_VERSION}); install that version again, the journal is unchanged")


def _move_job_data(db: sqlite3.Connection) -> None:
    """Journals of schema 1 kept the message in the jobs row: move it to job_data.

    The old columns are dropped where SQLite can (3.35 and later); elsewhere they stay,
    emptied (and zeroed, `secure_delete`), and no query reads them.
    """
    if "body" not in {r[1] for r in db.execute("PRAGMA table_info(jobs)")}:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("INSERT OR REPLACE INTO job_data SELECT job_id, body, "
                   "COALESCE(headers, '{}') FROM jobs WHERE body IS NOT NULL")
        if sqlite3.sqlite_version_info >= (3, 35):
            db.execute("ALTER TABLE jobs DROP COLUMN body")
            db.execute("ALTER TABLE jobs DROP COLUMN headers")
        else:
            db.execute("UPDATE jobs SET body=NULL, headers=NULL")
        db.execute("UPDATE meta SET value=? WHERE key='schema_version'",
                   (str(SCHEMA_VERSION),))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _job_row(row: sqlite3.Row) -> JobRow:
    return JobRow(
        job_id=row["job_id"], reference=row["reference"], card_stock=row["card_stock"],
        source=row["source"], state=row["state"], attempt=row["attempt"], sides=row["sides"],
        expires_at=row["expires_at"], body=row["body"], headers=row["headers"],
        card_no=row["card_no"], counter_before=row["counter_before"],
        chip_profile=row["chip_profile"],
    )
