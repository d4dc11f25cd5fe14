"""Lifetime counts behind the metrics' counters, which must never go down.

Counting rows would not do: ended jobs are pruned after the retention period, a released
job's row goes when the job comes back, and old ledger rows are folded into daily sums
without their reason. A Prometheus counter that falls is read as a restart and its next
rise as a burst. So every event that ends a job or records a blank adds one to a count in
`meta`, in the transaction that stores the event (`Outbox.emit`): the counts survive
restarts with the journal. A journal written before they existed starts them once from
what it still holds (`seed`).

A count is keyed by codes only, never by free text: a card's reason may name an operator
("test card by ...") or be what they typed, and a metric label must never carry either.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from printstation.agent import contract
from printstation.drivers.base import FaultCode

#: The statuses that end a job at this station (`released`: it went back to the central
#: system, which may send it again).
ENDED_STATUSES = ("printed", "failed", "rejected", "cancelled", "expired", "released")
#: A card's reason is shown in a label only when it is one of these codes.
KNOWN_REASONS = frozenset(FaultCode) | frozenset(contract.ReasonCode.__args__)  # type: ignore[attr-defined]
CARD_OUTCOMES = ("issued", "spoiled", "test", "removed")

_JOBS = "tally.jobs_ended."
_CARDS = "tally.cards."
_SEEDED = "tally.since"


def reason_label(reason: str | None) -> str:
    """A card's reason as a metric may show it: a fault or reason code, else empty."""
    if reason is None:
        return ""
    code = reason.removeprefix("test card: ")
    return code if code in KNOWN_REASONS else ""


def count(db: sqlite3.Connection, fields: Any) -> None:
    """Add the event about to be stored to the counts (called in its transaction)."""
    if isinstance(fields, contract.StatusFields) and fields.status in ENDED_STATUSES:
        _add(db, _JOBS + fields.status, 1)
    elif isinstance(fields, contract.CardFields):
        _add(db, f"{_CARDS}{fields.outcome}.{reason_label(fields.reason)}", 1)


def _add(db: sqlite3.Connection, key: str, n: int) -> None:
    db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
               "value = CAST(value AS INTEGER) + ?", (key, str(n), n))


def _prefixed(db: sqlite3.Connection, prefix: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in db.execute(
        "SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))]


def seeded(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM meta WHERE key=?", (_SEEDED,)).fetchone() is not None


def seed(db: sqlite3.Connection) -> None:
    """Start the counts of a journal that has none from the jobs and ledger it holds."""
    if seeded(db):
        return
    marks = ",".join("?" * len(ENDED_STATUSES))
    for state, n in db.execute(f"SELECT state, COUNT(*) FROM jobs WHERE state IN ({marks}) "
                               "GROUP BY state", ENDED_STATUSES):
        _add(db, _JOBS + state, n)
    for outcome, reason, n in db.execute("SELECT outcome, reason, COUNT(*) FROM cards "
                                         "GROUP BY outcome, reason"):
        _add(db, f"{_CARDS}{outcome}.{reason_label(reason)}", n)
    for outcome, n in db.execute("SELECT outcome, SUM(n) FROM ledger_archive WHERE "
                                 "outcome != 'loaded' GROUP BY outcome"):
        _add(db, f"{_CARDS}{outcome}.", n)
    db.execute("INSERT INTO meta VALUES (?, ?)", (_SEEDED, contract.now().isoformat()))


def jobs_ended(db: sqlite3.Connection) -> dict[str, int]:
    """Jobs ended here since the journal began, by status (every status, 0 included)."""
    counts = dict.fromkeys(ENDED_STATUSES, 0)
    for key, value in _prefixed(db, _JOBS):
        counts[key.removeprefix(_JOBS)] = int(value)
    return counts


def cards(db: sqlite3.Connection) -> dict[tuple[str, str], int]:
    """Blanks recorded since the journal began, by outcome and reason code."""
    counts = {(outcome, ""): 0 for outcome in CARD_OUTCOMES}
    for key, value in _prefixed(db, _CARDS):
        outcome, _, reason = key.removeprefix(_CARDS).partition(".")
        counts[(outcome, reason)] = int(value)
    return counts
