"""The station's own count of ribbon, film and blanks, and the loads and cards behind it.

Printers read some levels themselves (most read the ribbon, some count blanks, none of the
public command sets reads the film), so the agent counts every one: each load an operator
records, and what each card used, in the same journal transaction as the card's ledger
row. These functions run on the journal's connection inside its transactions; the
`Journal` methods that wrap them are the only way in.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from . import rolls

KINDS = ("ribbon", "film", "cards")
UNITS = {"ribbon": "prints", "film": "panels", "cards": "cards"}


@dataclass(frozen=True)
class CardUse:
    """What one blank took from the station: its stock, sides, ribbon prints, film panels."""

    stock: str | None
    sides: int | None = None
    ribbon: int = 0
    film: int = 0


@dataclass(frozen=True)
class Counted:
    """The agent's count of one consumable since it was last loaded."""

    kind: str
    type: str | None
    capacity: int | None
    remaining: int
    unit: str
    loaded_at: str


def migrate(db: sqlite3.Connection) -> None:
    """Journals written before the ledger recorded stock and use, chips and rolls get the
    new columns (each added only where missing), and their rolls rebuilt from the loads."""
    have = {r[1] for r in db.execute("PRAGMA table_info(cards)")}
    for column in ("stock TEXT", "sides INTEGER", "ribbon_use INTEGER", "film_use INTEGER",
                   "chip_uid TEXT", "ribbon_roll INTEGER", "film_roll INTEGER"):
        if column.split()[0] not in have:
            db.execute(f"ALTER TABLE cards ADD COLUMN {column}")
    version = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if version is None or int(version[0]) >= 4 or \
            db.execute("SELECT 1 FROM rolls LIMIT 1").fetchone() is not None:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        rolls.rebuild(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def consume(db: sqlite3.Connection, use: CardUse) -> None:
    """Take one blank and what its printing used off the agent's count (never below 0)."""
    for kind, n in (("cards", 1), ("ribbon", use.ribbon), ("film", use.film)):
        if n:
            db.execute("UPDATE stock SET remaining = MAX(remaining - ?, 0) WHERE kind=?",
                       (n, kind))


def counted(db: sqlite3.Connection) -> dict[str, Counted]:
    rows = db.execute("SELECT kind, type, capacity, remaining, unit, loaded_at FROM stock")
    return {r["kind"]: Counted(r["kind"], r["type"], r["capacity"], r["remaining"], r["unit"],
                               r["loaded_at"]) for r in rows}


@dataclass(frozen=True)
class RollId:
    """A roll's serial number and production lot, read from it or typed by the operator."""

    serial: str | None = None
    lot: str | None = None


def load(db: sqlite3.Connection, *, kind: str, type_: str | None, capacity: int | None,
         amount: int, add: bool, who: str, note: str, at: str, roll: RollId | None = None,
         left_read: int | None = None) -> Counted:
    """Record a load: blanks are added to the feeder; a ribbon or film roll replaces the last.

    Every load is also a row of `loads`, which the blank ledger sums: a blank the station
    was given is accounted for from the moment it is loaded. A roll is also a row of
    `rolls`; the one it replaces keeps what was left on it (`left_read`, the printer's
    last reading, else the agent's count).
    """
    before = counted(db).get(kind)
    a_load = True
    if kind in rolls.ROLL_KINDS:
        left = left_read if left_read is not None else (before.remaining if before else None)
        roll = roll or RollId()
        own = rolls.loaded(db, rolls.NewRoll(kind, type_, capacity, amount, who, roll.serial,
                                             roll.lot), at=at, left=left)
        # The printer reporting the roll a person just recorded is that load, not another.
        a_load = own or who not in rolls.MACHINES
    remaining = amount + (before.remaining if add and before else 0)
    if capacity is None and kind == "cards":
        capacity = max(remaining, before.capacity or 0) if before else remaining
    db.execute(
        "INSERT INTO stock (kind, type, capacity, remaining, unit, loaded_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(kind) DO UPDATE SET type=excluded.type, "
        "capacity=excluded.capacity, remaining=excluded.remaining, "
        "loaded_at=excluded.loaded_at",
        (kind, type_, capacity, remaining, UNITS[kind], at))
    if a_load:
        db.execute("INSERT INTO loads (at, kind, type, amount, who, note) "
                   "VALUES (?, ?, ?, ?, ?, ?)", (at, kind, type_, amount, who, note))
    return counted(db)[kind]


def correct(db: sqlite3.Connection, *, kind: str, remaining: int, who: str, why: str,
            at: str) -> Counted:
    """An operator says how much is really left on the roll: the count is set to it, and
    the correction is a row with the count before, who and why (the roll stays the same)."""
    before = counted(db)[kind]
    db.execute("UPDATE stock SET remaining=? WHERE kind=?", (remaining, kind))
    db.execute("INSERT INTO corrections (at, kind, before, after, who, why) "
               "VALUES (?, ?, ?, ?, ?, ?)", (at, kind, before.remaining, remaining, who, why))
    return counted(db)[kind]


def corrections(db: sqlite3.Connection, day: str | None) -> list[dict[str, Any]]:
    rows = db.execute("SELECT at, kind, before, after, who, why FROM corrections "
                      "WHERE ? IS NULL OR substr(at, 1, 10)=? ORDER BY id", (day, day))
    return [dict(r) for r in rows]


def archive(db: sqlite3.Connection, before: str) -> int:
    """Fold ledger rows (cards and blank loads) older than `before` into per-day sums.

    The detailed rows are kept for the retention period; after it, what the balance and
    the daily ledger need (per day, stock and outcome: a count, ribbon and film used)
    stays in `ledger_archive`, a row a day, and the rest goes. Returns rows folded.
    """
    old = "julianday(at) < julianday(?)"
    rolls.archive(db, old, before)
    db.execute(
        "INSERT INTO ledger_archive (day, stock, outcome, n, ribbon_used, film_used) "
        "SELECT substr(at, 1, 10), COALESCE(stock, 'unknown'), outcome, COUNT(*), "
        "SUM(COALESCE(ribbon_use, 0)), SUM(COALESCE(film_use, 0)) FROM cards "
        f"WHERE {old} GROUP BY 1, 2, 3 ON CONFLICT (day, stock, outcome) DO UPDATE SET "
        "n = n + excluded.n, ribbon_used = ribbon_used + excluded.ribbon_used, "
        "film_used = film_used + excluded.film_used", (before,))
    db.execute(
        "INSERT INTO ledger_archive (day, stock, outcome, n) "
        "SELECT substr(at, 1, 10), COALESCE(type, 'unknown'), 'loaded', SUM(amount) "
        f"FROM loads WHERE kind='cards' AND {old} GROUP BY 1, 2 "
        "ON CONFLICT (day, stock, outcome) DO UPDATE SET n = n + excluded.n", (before,))
    folded = db.execute(f"DELETE FROM cards WHERE {old}", (before,)).rowcount
    return folded + db.execute(f"DELETE FROM loads WHERE {old}", (before,)).rowcount


def recent_cards(db: sqlite3.Connection, limit: int) -> list[dict[str, Any]]:
    """The latest good cards, newest first: when, sides, ribbon and film used."""
    rows = db.execute("SELECT at, sides, ribbon_use, film_use FROM cards WHERE outcome IN "
                      "('issued', 'test') ORDER BY card_no DESC LIMIT ?", (limit,))
    return [dict(r) for r in rows]


def ledger_days(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """Per day and stock: blanks loaded, issued, spoiled, test, removed; ribbon and film
    used."""
    days: dict[tuple[str, str], dict[str, Any]] = {}

    def row(day: str, stock: str | None) -> dict[str, Any]:
        key = (day, stock or "unknown")
        return days.setdefault(key, {"day": key[0], "stock": key[1], "loaded": 0, "issued": 0,
                                     "spoiled": 0, "test": 0, "removed": 0, "ribbon_used": 0,
                                     "film_used": 0})

    for r in db.execute("SELECT substr(at, 1, 10) AS day, type, SUM(amount) AS n FROM loads "
                        "WHERE kind='cards' GROUP BY day, type"):
        row(r["day"], r["type"])["loaded"] += r["n"]
    for r in db.execute("SELECT day, stock, outcome, n, ribbon_used, film_used "
                        "FROM ledger_archive"):
        entry = row(r["day"], r["stock"])
        entry[r["outcome"]] += r["n"]
        entry["ribbon_used"] += r["ribbon_used"]
        entry["film_used"] += r["film_used"]
    for r in db.execute("SELECT substr(at, 1, 10) AS day, stock, outcome, COUNT(*) AS n, "
                        "SUM(COALESCE(ribbon_use, 0)) AS ribbon, "
                        "SUM(COALESCE(film_use, 0)) AS film FROM cards "
                        "GROUP BY day, stock, outcome"):
        entry = row(r["day"], r["stock"])
        entry[r["outcome"]] += r["n"]
        entry["ribbon_used"] += r["ribbon"]
        entry["film_used"] += r["film"]
    return [days[k] for k in sorted(days)]


def spoiled_reasons(db: sqlite3.Connection, day: str) -> dict[str, int]:
    rows = db.execute("SELECT COALESCE(reason, 'unknown') AS reason, COUNT(*) AS n FROM cards "
                      "WHERE outcome='spoiled' AND substr(at, 1, 10)=? GROUP BY reason", (day,))
    return {r["reason"]: r["n"] for r in rows}


#: What the spoiled-card register lists: blanks that did not become a good card.
LOST = ("spoiled", "removed")


def register(db: sqlite3.Connection, month: str) -> list[dict[str, Any]]:
    """Every spoiled or removed blank of a month (YYYY-MM): card number, time, the job's id
    and reference (never its data), outcome, reason and the chip's UID where there is one."""
    rows = db.execute(
        "SELECT c.card_no, c.at, c.outcome, c.reason, c.job_id, j.reference, c.chip_uid, "
        "c.stock FROM cards c LEFT JOIN jobs j ON j.job_id = c.job_id "
        "WHERE c.outcome IN (?, ?) AND substr(c.at, 1, 7)=? ORDER BY c.card_no",
        (*LOST, month))
    return [dict(r) for r in rows]


def loads_on(db: sqlite3.Connection, day: str | None) -> list[dict[str, Any]]:
    rows = db.execute("SELECT at, kind, type, amount, who, note FROM loads "
                      "WHERE ? IS NULL OR substr(at, 1, 10)=? ORDER BY id", (day, day))
    return [dict(r) for r in rows]
