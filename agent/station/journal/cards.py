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
from printstation.agent.i18n import ngettext

from . import rolls, stock, tally
from .outbox import Outbox
from .store import Store


class Cards:
    def __init__(self, store: Store, outbox: Outbox):
        self.store = store
        self.outbox = outbox
        self._counted: tuple[int, dict[str, stock.Counted]] | None = None

    def record(self, db: sqlite3.Connection, job_id: str | None, outcome: str,
               reason: str | None, counter: int | None,
               use: stock.CardUse | None = None, chip_uid: str | None = None) -> int:
        """One blank left the feeder: a ledger row, its event, and the stock it used.

        A blank that went through the printer is charged to the ribbon and film rolls in it;
        one taken out unprinted (`removed`) to none."""
        at = contract.now().isoformat()
        use = use or stock.CardUse(stock=self.feeder_stock(db))
        # Numbered from a counter, not the table: pruned ledger rows must never free a
        # number for a new card (a published card_no names one physical card).
        last = db.execute("SELECT value FROM meta WHERE key='last_card_no'").fetchone()
        card_no = max(int(last[0]) if last else 0, db.execute(
            "SELECT COALESCE(MAX(card_no), 0) FROM cards").fetchone()[0]) + 1
        db.execute("INSERT INTO meta VALUES ('last_card_no', ?) ON CONFLICT(key) DO UPDATE "
                   "SET value=excluded.value", (str(card_no),))
        charged = rolls.current_ids(db) if outcome != "removed" else {}
        db.execute(
            "INSERT INTO cards (card_no, job_id, outcome, reason, counter, at, stock, sides, "
            "ribbon_use, film_use, chip_uid, ribbon_roll, film_roll) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (card_no, job_id, outcome, reason, counter, at, use.stock, use.sides, use.ribbon,
             use.film, chip_uid, charged.get("ribbon"), charged.get("film")),
        )
        stock.consume(db, use)
        self.outbox.emit(db, contract.CardFields(card_no=card_no, job_id=job_id,
                                                 outcome=outcome,  # type: ignore[arg-type]
                                                 reason=reason, chip_uid=chip_uid))
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
                use: stock.CardUse | None = None, chip_uid: str | None = None) -> int:
        """A blank left the feeder and did not become a good card (registered by its chip's
        UID when its chip was read: contract v2 4b)."""
        with self.store.tx() as db:
            return self.record(db, job_id, "spoiled", reason, counter, use, chip_uid)

    def removed(self, count: int, who: str, why: str) -> list[int]:
        """Blanks an operator took out of the feeder unprinted: one ledger row and one card
        event (`removed`, contract v2 4b) each, off the agent's count, in one transaction.
        Returns their card numbers."""
        with self.store.tx() as db:
            held = stock.counted(db).get("cards")
            if held is None or held.remaining < count:
                have = held.remaining if held else 0
                raise ValueError(ngettext(
                    "the agent counts {n} blank in the feeder, fewer than {count}; record "
                    "what was loaded with `printstation load cards` first",
                    "the agent counts {n} blanks in the feeder, fewer than {count}; record "
                    "what was loaded with `printstation load cards` first", have).format(
                        n=have, count=count))
            use = stock.CardUse(stock=held.type)
            return [self.record(db, None, "removed", why[:200], None, use)
                    for _number in range(count)]

    # ------------------------------------------------------------------------- stock

    def counted_stock(self) -> dict[str, stock.Counted]:
        """The agent's count; read several times per card, so kept until the next write."""
        with self.store.lock:
            if self._counted is None or self._counted[0] != self.store.generation:
                self._counted = (self.store.generation, stock.counted(self.store.db))
            return dict(self._counted[1])

    def load(self, *, kind: str, type_: str | None, capacity: int | None, amount: int,
             add: bool, who: str, note: str, roll: stock.RollId | None = None,
             left_read: int | None = None) -> stock.Counted:
        with self.store.tx() as db:
            return stock.load(db, kind=kind, type_=type_, capacity=capacity, amount=amount,
                              add=add, who=who, note=note, at=contract.now().isoformat(),
                              roll=roll, left_read=left_read)

    def correct(self, *, kind: str, remaining: int, who: str, why: str) -> stock.Counted:
        with self.store.tx() as db:
            return stock.correct(db, kind=kind, remaining=remaining, who=who, why=why,
                                 at=contract.now().isoformat())

    def roll_read(self, kind: str, serial: str | None, lot: str | None) -> str | None:
        """The printer read a roll's serial: "new" if it is not the roll recorded."""
        if not serial:
            return None
        with self.store.lock:
            current = rolls.current(self.store.db, kind)
        if current is None or current["serial"] == serial:
            return None  # the usual case, read every poll: no write
        with self.store.tx() as db:
            return rolls.read_identity(db, kind, serial, lot)

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

    def corrections(self, day: str | None = None) -> list[dict[str, Any]]:
        with self.store.lock:
            return stock.corrections(self.store.db, day)

    def rolls(self) -> list[dict[str, Any]]:
        """Every ribbon and film roll with what its cards used (`rolls.figures`)."""
        with self.store.lock:
            return rolls.figures(self.store.db)

    def register(self, month: str) -> list[dict[str, Any]]:
        """The spoiled-card register of a month (`stock.register`)."""
        with self.store.lock:
            return stock.register(self.store.db, month)

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

    def through_printer(self) -> int:
        """Blanks that went through the printer in the station's life: those drawn, less
        those taken out of the feeder unprinted (`removed`), which never touched its head.
        What cleaning is counted against."""
        with self.store.lock:
            removed = sum(n for (outcome, _reason), n in tally.cards(self.store.db).items()
                          if outcome == "removed")
        return self.drawn() - removed

    def drawn(self) -> int:
        """Blanks drawn in the station's life: the last card's number (never reused)."""
        with self.store.lock:
            last = self.store.db.execute(
                "SELECT value FROM meta WHERE key='last_card_no'").fetchone()
            most = self.store.db.execute("SELECT COALESCE(MAX(card_no), 0) FROM cards")
            return max(int(last[0]) if last else 0, most.fetchone()[0])
