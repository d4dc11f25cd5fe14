"""The journal's tables, and bringing a journal written by an older agent up to date.

The schema version is in `meta`; a journal of a newer agent is refused unchanged, one of an
older agent is migrated in place, each step in a transaction of its own.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from . import stock
from .errors import JournalError

SCHEMA_VERSION = 6

TABLES = """
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
    chip_profile TEXT,
    check_report TEXT,
    chip_uid TEXT,
    printer_ref TEXT
);
-- jobs.check_report: what the printer said when the job went needs_check (JSON), shown to
-- the operator deciding it. jobs.chip_uid: the UID of the chip written for the card in the
-- printer, so an operator's `resolve` of it reports the card with its chip. jobs.printer_ref:
-- the spooler's reference for the card (an IPP job id), journaled before the card is sent, so
-- that start-up asks the spooler what became of it.
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
-- `chip_uid`: the chip's UID once an encoder writes chips (contract v2 4b), spoiled chip
-- cards being registered by it; `ribbon_roll`, `film_roll`: the rolls (rolls.id) the card
-- was charged to, for each roll's yield.
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
    film_use INTEGER,
    chip_uid TEXT,
    ribbon_roll INTEGER,
    film_roll INTEGER
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
-- Every ribbon and film roll, from its load until the next replaced it (see rolls.py);
-- `archived_*`: what its cards folded into per-day sums (retention) had used.
CREATE TABLE IF NOT EXISTS rolls (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    type TEXT,
    serial TEXT,
    lot TEXT,
    capacity INTEGER,
    started_with INTEGER,
    loaded_at TEXT NOT NULL,
    who TEXT NOT NULL,
    replaced_at TEXT,
    left_at_replace INTEGER,
    archived_good INTEGER NOT NULL DEFAULT 0,
    archived_good_use INTEGER NOT NULL DEFAULT 0,
    archived_spoiled INTEGER NOT NULL DEFAULT 0,
    archived_spoiled_use INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS rolls_current ON rolls (kind, replaced_at);
-- An operator's correction of the agent's count of a ribbon or film roll, with who and why.
CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    before INTEGER,
    after INTEGER NOT NULL,
    who TEXT NOT NULL,
    why TEXT NOT NULL
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


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Create what is missing and bring an older journal to SCHEMA_VERSION."""
    _refuse_newer_schema(db, path)
    db.executescript(TABLES)
    _move_job_data(db)
    stock.migrate(db)
    _add_columns(db)


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
        # Schema 2 is what this step makes; the later steps (the rolls built from the
        # loads, new columns) still read the version to know they are due.
        db.execute("UPDATE meta SET value='2' WHERE key='schema_version' "
                   "AND CAST(value AS INTEGER) < 2")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _add_columns(db: sqlite3.Connection) -> None:
    """Journals of schema 2 lack the jobs table's `chip_profile` (contract v2's chip), of
    schema 3 its `check_report` (what the printer said when a job went needs_check), and of
    schema 4 its `chip_uid` (the chip written for the card in the printer), and of schema 5
    its `printer_ref` (a spooler's reference for the card, such as an IPP job id)."""
    columns = {r[1] for r in db.execute("PRAGMA table_info(jobs)")}
    if "chip_profile" not in columns:
        db.execute("ALTER TABLE jobs ADD COLUMN chip_profile TEXT")
    if "check_report" not in columns:
        db.execute("ALTER TABLE jobs ADD COLUMN check_report TEXT")
    if "chip_uid" not in columns:
        db.execute("ALTER TABLE jobs ADD COLUMN chip_uid TEXT")
    if "printer_ref" not in columns:
        db.execute("ALTER TABLE jobs ADD COLUMN printer_ref TEXT")
    db.execute("UPDATE meta SET value=? WHERE key='schema_version' AND CAST(value AS INTEGER) < ?",
               (str(SCHEMA_VERSION), SCHEMA_VERSION))
