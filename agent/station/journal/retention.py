"""Bounded retention (contract 7.7, v2): what the station keeps, and for how long.

Ended jobs (their id and outcome), remembered cancels and command ids are kept `job_days`,
so a replay within it is a duplicate (and `Jobs.take` refuses older jobs as `too_old`);
published events are kept `event_days`; ledger rows older than `job_days` are summed per day
into `ledger_archive` first, so the blank balance still holds. Unpublished events are never
deleted: a status waits for the broker however long. Freed pages are reused, so the file
stops growing once the periods are full.

What replay protection rests on is measured in the central system's time, never the PC's
clock: a job by its signed `created_at`, a cancel or command by its signed `issued_at`,
against the newest `created_at` seen, exactly as `take` judges `too_old`. A PC that booted
in the year 2000 and is corrected later prunes nothing early, and one whose clock runs
ahead refuses nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from printstation.agent import contract

from . import stock
from .jobstate import ENDED
from .store import Store, ids_kept_since, newest_created


class Retention:
    def __init__(self, store: Store):
        self.store = store

    def prune(self, *, job_days: float, event_days: float,
              now: datetime | None = None) -> dict[str, int]:
        """Delete what the retention periods no longer need; returns what went, by kind."""
        return _prune(self.store, job_days, event_days, now or contract.now())


def _prune(store: Store, job_days: float, event_days: float, now: datetime) -> dict[str, int]:
    events_before = (now - timedelta(days=event_days)).isoformat()
    ended = tuple(ENDED)
    marks = ",".join("?" * len(ended))
    old = "julianday({}) < julianday(?)"
    counts = {}
    with store.tx() as db:
        kept_since = ids_kept_since(newest_created(db), job_days)
        central_before = kept_since.isoformat() if kept_since is not None else None
        counts["events"] = db.execute(
            f"DELETE FROM outbox WHERE published=1 AND {old.format('created_at')}",
            (events_before,)).rowcount
        counts["jobs"] = db.execute(
            f"DELETE FROM jobs WHERE state IN ({marks}) AND "
            f"{old.format('COALESCE(created_at, updated_at)')}",
            (*ended, central_before)).rowcount if central_before else 0
        db.execute("DELETE FROM job_data WHERE job_id NOT IN (SELECT job_id FROM jobs)")
        for table in ("cancels", "commands"):
            counts[table] = db.execute(
                f"DELETE FROM {table} WHERE {old.format('at')}",
                (central_before,)).rowcount if central_before else 0
        records_before = (now - timedelta(days=job_days)).isoformat()
        counts["actions"] = db.execute(f"DELETE FROM actions WHERE {old.format('at')}",
                                       (records_before,)).rowcount
        counts["ledger"] = stock.archive(db, records_before)
    if any(counts.values()):
        store.checkpoint("TRUNCATE")
    return counts
