"""Every ribbon and film roll the station used, and what each one really gave.

Offices dispute suppliers' rolls rated 200 cards that gave 125; this is their evidence. A
roll is a row from the moment it is loaded (recorded by an operator, first read from the
printer, or reported new by it) until the next one replaces it, with its serial and lot
where the printer reads them or the operator typed them. Each card is charged to the rolls
loaded when it was made (`cards.ribbon_roll`, `cards.film_roll`), in the card's own
transaction, so a roll's figures are the sums of its cards. These functions run on the
journal's connection inside its transactions.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

ROLL_KINDS = ("ribbon", "film")
#: Who records a roll the printer told the agent of, rather than a person.
MACHINES = ("agent", "printer")
GOOD = "('issued', 'test')"


@dataclass(frozen=True)
class NewRoll:
    """A roll going into the printer, as recorded."""

    kind: str
    type: str | None
    capacity: int | None
    started_with: int
    who: str
    serial: str | None = None
    lot: str | None = None


def current(db: sqlite3.Connection, kind: str) -> sqlite3.Row | None:
    return db.execute("SELECT * FROM rolls WHERE kind=? AND replaced_at IS NULL "
                      "ORDER BY id DESC LIMIT 1", (kind,)).fetchone()


def current_ids(db: sqlite3.Connection) -> dict[str, int | None]:
    """The roll of each kind a card made now is charged to."""
    found: dict[str, int | None] = {}
    for kind in ROLL_KINDS:
        row = current(db, kind)
        found[kind] = row["id"] if row else None
    return found


def _charged(db: sqlite3.Connection, roll: sqlite3.Row) -> bool:
    if roll["archived_good"] or roll["archived_spoiled"]:
        return True
    column = f"{roll['kind']}_roll"
    return db.execute(f"SELECT 1 FROM cards WHERE {column}=? LIMIT 1",
                      (roll["id"],)).fetchone() is not None


def loaded(db: sqlite3.Connection, new: NewRoll, *, at: str, left: int | None) -> bool:
    """Record a roll going in; the one before is replaced (with what was `left` on it).
    Returns whether it is a roll of its own (False: it completed the current roll's record).

    A roll no card was charged to yet is the same roll when a person records what the
    printer reported a moment ago, or the printer reports what a person just recorded: it
    is completed, not replaced, and a serial or lot the printer read wins over one typed.
    Two records by people are two rolls (a roll that gave nothing is evidence too).
    """
    before = current(db, new.kind)
    if before is not None and not _charged(db, before) and \
            (before["who"] in MACHINES) != (new.who in MACHINES):
        if new.who in MACHINES:  # the printer confirms a person's record
            db.execute("UPDATE rolls SET type=COALESCE(type, ?), capacity=COALESCE(capacity, ?),"
                       " serial=COALESCE(?, serial), lot=COALESCE(?, lot), "
                       "started_with=MAX(COALESCE(started_with, 0), ?) WHERE id=?",
                       (new.type, new.capacity, new.serial, new.lot, new.started_with,
                        before["id"]))
        else:  # a person records the roll the printer reported
            db.execute("UPDATE rolls SET type=?, capacity=?, started_with=?, who=?, "
                       "serial=COALESCE(serial, ?), lot=COALESCE(lot, ?) WHERE id=?",
                       (new.type, new.capacity, new.started_with, new.who, new.serial,
                        new.lot, before["id"]))
        return False
    if before is not None:
        db.execute("UPDATE rolls SET replaced_at=?, left_at_replace=? WHERE id=?",
                   (at, left, before["id"]))
    db.execute(
        "INSERT INTO rolls (kind, type, serial, lot, capacity, started_with, loaded_at, who) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (new.kind, new.type, new.serial, new.lot, new.capacity, new.started_with, at, new.who))
    return True


def read_identity(db: sqlite3.Connection, kind: str, serial: str | None,
                  lot: str | None) -> str | None:
    """The printer read a roll's serial: fill it in, or say the roll changed.

    Returns "new" when the printer reports a serial other than the current roll's (a roll
    changed without `printstation load`), else None. The serial of the roll before is that
    roll still in the printer (read before the new one went in), never a new one.
    """
    roll = current(db, kind)
    if not serial or roll is None or roll["serial"] == serial:
        return None
    previous = db.execute("SELECT serial FROM rolls WHERE kind=? AND id<? ORDER BY id DESC "
                          "LIMIT 1", (kind, roll["id"])).fetchone()
    if previous is not None and previous["serial"] == serial:
        return None
    if roll["serial"] is None:
        db.execute("UPDATE rolls SET serial=?, lot=COALESCE(lot, ?) WHERE id=?",
                   (serial, lot, roll["id"]))
        return None
    return "new"


def figures(db: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every roll, oldest first, with what its cards used: good cards and spoiled apart."""
    found: list[dict[str, Any]] = []
    for kind in ROLL_KINDS:
        rows = db.execute(
            f"SELECT r.*, "
            f"r.archived_good + COALESCE(SUM(c.outcome IN {GOOD}), 0) AS good_cards, "
            f"r.archived_good_use + COALESCE(SUM(CASE WHEN c.outcome IN {GOOD} "
            f"THEN c.{kind}_use END), 0) AS good_use, "
            f"r.archived_spoiled + COALESCE(SUM(c.outcome = 'spoiled'), 0) AS spoiled_cards, "
            f"r.archived_spoiled_use + COALESCE(SUM(CASE WHEN c.outcome = 'spoiled' "
            f"THEN c.{kind}_use END), 0) AS spoiled_use "
            f"FROM rolls r LEFT JOIN cards c ON c.{kind}_roll = r.id "
            f"WHERE r.kind=? GROUP BY r.id", (kind,))
        found += [{k: v for k, v in dict(r).items() if not k.startswith("archived_")}
                  for r in rows]
    return sorted(found, key=lambda r: (r["loaded_at"], r["id"]))


def archive(db: sqlite3.Connection, old: str, before: str) -> None:
    """Cards about to be folded into per-day sums leave their rolls' figures in the rolls.

    `old` is the SQL condition on `at` that the cards going are selected by.
    """
    for kind in ROLL_KINDS:
        db.execute(
            f"UPDATE rolls SET "
            f"archived_good = archived_good + (SELECT COUNT(*) FROM cards c WHERE "
            f"c.{kind}_roll = rolls.id AND c.outcome IN {GOOD} AND {old}), "
            f"archived_good_use = archived_good_use + (SELECT COALESCE(SUM(c.{kind}_use), 0) "
            f"FROM cards c WHERE c.{kind}_roll = rolls.id AND c.outcome IN {GOOD} AND {old}), "
            f"archived_spoiled = archived_spoiled + (SELECT COUNT(*) FROM cards c WHERE "
            f"c.{kind}_roll = rolls.id AND c.outcome = 'spoiled' AND {old}), "
            f"archived_spoiled_use = archived_spoiled_use + (SELECT "
            f"COALESCE(SUM(c.{kind}_use), 0) FROM cards c WHERE c.{kind}_roll = rolls.id AND "
            f"c.outcome = 'spoiled' AND {old}) WHERE kind=?",
            (before, before, before, before, kind))
    # A roll replaced before the retention period, whose cards are all folded, goes too.
    db.execute(f"DELETE FROM rolls WHERE replaced_at IS NOT NULL AND "
               f"julianday(replaced_at) < julianday(?) AND NOT EXISTS (SELECT 1 FROM cards c "
               f"WHERE (c.ribbon_roll = rolls.id OR c.film_roll = rolls.id) AND NOT "
               f"({old}))", (before, before))


def rebuild(db: sqlite3.Connection) -> None:
    """Journals written before rolls were recorded: each ribbon or film load becomes a roll
    (replaced by the next one), and each card is charged to the rolls loaded at its time.

    Loads did not keep a roll's capacity, so only the roll in the printer now has one (from
    the agent's count); the others show their figures without a rating.
    """
    for kind in ROLL_KINDS:
        loads = db.execute("SELECT at, type, amount, who FROM loads WHERE kind=? ORDER BY id",
                           (kind,)).fetchall()
        for i, load in enumerate(loads):
            replaced = loads[i + 1]["at"] if i + 1 < len(loads) else None
            db.execute("INSERT INTO rolls (kind, type, capacity, started_with, loaded_at, who, "
                       "replaced_at) VALUES (?, ?, NULL, ?, ?, ?, ?)",
                       (kind, load["type"], load["amount"], load["at"], load["who"], replaced))
        db.execute("UPDATE rolls SET capacity=(SELECT capacity FROM stock WHERE kind=?) "
                   "WHERE kind=? AND replaced_at IS NULL", (kind, kind))
        db.execute(f"UPDATE cards SET {kind}_roll=(SELECT r.id FROM rolls r WHERE r.kind=? AND "
                   f"julianday(r.loaded_at) <= julianday(cards.at) ORDER BY "
                   f"julianday(r.loaded_at) DESC, r.id DESC LIMIT 1) WHERE outcome != 'removed'",
                   (kind,))
