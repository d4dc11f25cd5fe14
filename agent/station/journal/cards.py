"""Every blank that leaves the feeder, and the stock it came from.

A blank is a ledger row and a `printstation.card/1` event, and what it used (a blank, ribbon
prints, film panels) comes off the agent's count, all in the transaction of the job's own
change (`record`, called by `Jobs`), so the books never disagree with the statuses. Loads,
the count, and the ledger's reports are read from here.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from printstation.agent import contract

from . import stock, tally
from .outbox import Outbox
from .store import Store


class Cards:
    def __init__(self, store: Store, outbox: Outbox):
        self.store = store
        self.outbox = outbox
        self._counted: tuple[int, dict[str, stock.Counted]] | None = None

    def record(self, db: sqlite3.Connection, job_id: str | None, outcome: str,
               reason: str | None, counter: int | None,
               use: stock.CardUse | None = None) -> int:
        """One blank left the feeder: a ledger row, its event, and the stock it used."""
        at = contract.now().isoformat()
        use = use or stock.CardUse(stock=self.feeder_stock(db))
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
        stock.consume(db, use)
        self.outbox.emit(db, contract.CardFields(card_no=card_no, job_id=job_id,
                                                 outcome=outcome,  # type: ignore[arg-type]
                                                 reason=reason))
        return card_no

    @staticmethod
    def feeder_stock(db: sqlite3.Connection) -> str | None:
        row = db.execute("SELECT type FROM stock WHERE kind='cards'").fetchone()
        return row["type"] if row else None

    def test(self, counter: int | None, use: stock.CardUse, who: str) -> int:
        """An operator's test card came out (no job; counted in the ledger as `test`)."""
        with self.store.tx() as db:
            return self.record(db, None, "test", f"test card by {who}"[:200], counter, use)

    def spoiled(self, job_id: str | None, counter: int | None, reason: str,
                use: stock.CardUse | None = None) -> int:
        """A blank left the feeder and did not become a good card."""
        with self.store.tx() as db:
            return self.record(db, job_id, "spoiled", reason, counter, use)

    # ------------------------------------------------------------------------- stock

    def counted_stock(self) -> dict[str, stock.Counted]:
        """The agent's count; read several times per card, so kept until the next write."""
        with self.store.lock:
            if self._counted is None or self._counted[0] != self.store.generation:
                self._counted = (self.store.generation, stock.counted(self.store.db))
            return dict(self._counted[1])

    def load(self, *, kind: str, type_: str | None, capacity: int | None, amount: int,
             add: bool, who: str, note: str) -> stock.Counted:
        with self.store.tx() as db:
            return stock.load(db, kind=kind, type_=type_, capacity=capacity, amount=amount,
                              add=add, who=who, note=note, at=contract.now().isoformat())

    # ---------------------------------------------------------------------- the ledger

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.store.lock:
            return stock.recent_cards(self.store.db, limit)

    def ledger_days(self) -> list[dict[str, Any]]:
        with self.store.lock:
            return stock.ledger_days(self.store.db)

    def spoiled_reasons(self, day: str) -> dict[str, int]:
        with self.store.lock:
            return stock.spoiled_reasons(self.store.db, day)

    def loads(self, day: str | None = None) -> list[dict[str, Any]]:
        with self.store.lock:
            return stock.loads_on(self.store.db, day)

    def outcomes(self) -> dict[tuple[str, str], int]:
        """Blanks since the journal began, by outcome and reason code, for the metrics
        (counts that never go down: `tally`)."""
        with self.store.lock:
            return tally.cards(self.store.db)

    def counts(self) -> dict[str, int]:
        """Printed and spoiled, today and in all, for telemetry."""
        today = contract.now().date().isoformat()
        with self.store.lock:
            rows = self.store.db.execute(
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

    def drawn(self) -> int:
        """Blanks drawn in the station's life: the last card's number (never reused)."""
        with self.store.lock:
            last = self.store.db.execute(
                "SELECT value FROM meta WHERE key='last_card_no'").fetchone()
            most = self.store.db.execute("SELECT COALESCE(MAX(card_no), 0) FROM cards")
            return max(int(last[0]) if last else 0, most.fetchone()[0])
