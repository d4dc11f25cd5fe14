"""The outbox: every event is stored with the next `seq` before it is published.

An event's content is built where it is made, as the contract's model (`StatusFields`,
`CardFields`, ...); `emit` gives it its envelope (this station, the next `seq`, the time)
inside the caller's transaction and serialises it once. The publisher reads what is on disk
(`unpublished`) and marks what the broker confirmed (`mark_published`).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from printstation.agent import contract

from . import tally
from .store import Store


class Outbox:
    def __init__(self, store: Store):
        self.store = store
        #: The highest seq handed to a publisher: it may be on the broker already, so its
        #: body is never rewritten. Everything stored before this start may have been.
        self._handed_out = self.last_seq()
        with store.lock:
            seeded = tally.seeded(store.db)
        if not seeded:
            with store.tx() as db:
                tally.seed(db)

    def emit(self, db: sqlite3.Connection, fields: Any) -> int:
        """Store one event (its content, a contract `*Fields` model) with the next `seq`.

        The publisher is woken once the transaction commits (`Store.tx`): a durable one's
        events are on disk then, a non-durable one's the publisher syncs before it sends
        them (`Store.sync_events`).
        """
        seq = int(db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()[0]) + 1
        if isinstance(fields, contract.TelemetryFields) and self._replace_unsent_telemetry(
                db, seq - 1, fields):
            return seq - 1
        db.execute("UPDATE meta SET value=? WHERE key='last_seq'", (str(seq),))
        tally.count(db, fields)  # the metrics' counters, in the event's own transaction
        event = self._envelope(fields, seq)
        db.execute(
            "INSERT INTO outbox (seq, routing_key, body, created_at) VALUES (?, ?, ?, ?)",
            (seq, contract.routing_key(event), event.model_dump_json(by_alias=True).encode(),
             event.at.isoformat()),
        )
        return seq

    def emit_now(self, fields: Any) -> int:
        """Store a telemetry or alert event for publishing, in a transaction of its own."""
        with self.store.tx() as db:
            return self.emit(db, fields)

    def _envelope(self, fields: Any, seq: int) -> Any:
        """The event: the content as it was built (validated then), in its envelope."""
        return type(fields).EVENT.model_construct(
            **dict(fields), station_id=self.store.station_id, seq=seq, at=contract.now())

    def _replace_unsent_telemetry(self, db: sqlite3.Connection, last: int,
                                  fields: contract.TelemetryFields) -> bool:
        """A telemetry event supersedes the one before it while that one waits unsent.

        Telemetry is a snapshot: during a broker outage of weeks only the newest matters,
        and storing one every 30 s would fill the disk. It takes over the waiting one's
        `seq`, so consumers see no gap; never one a publisher was handed (published, its
        confirm lost, it would go out again under the same seq with other content).
        """
        if last <= self._handed_out:
            return False
        row = db.execute("SELECT routing_key, published FROM outbox WHERE seq=?",
                         (last,)).fetchone()
        if row is None or row["published"] or not row["routing_key"].startswith("telemetry."):
            return False
        event = self._envelope(fields, last)
        db.execute("UPDATE outbox SET body=?, created_at=? WHERE seq=?",
                   (event.model_dump_json(by_alias=True).encode(), event.at.isoformat(), last))
        return True

    def status(self, db: sqlite3.Connection, job_id: str, status: contract.JobStatusName, *,
               reason: tuple[str, str] | None = None, card_no: int | None = None,
               reference: str | None = None, chip_uid: str | None = None) -> None:
        """A job's status, with its reference and attempt as the journal holds them."""
        row = db.execute("SELECT reference, attempt FROM jobs WHERE job_id=?",
                         (job_id,)).fetchone()
        self.emit(db, contract.StatusFields(
            job_id=job_id,
            reference=row["reference"] if row else reference,
            status=status,
            attempt=row["attempt"] if row else 0,
            reason=contract.Reason(code=reason[0], detail=reason[1]) if reason else None,  # type: ignore[arg-type]
            card=contract.CardRef(card_no=card_no, chip_uid=chip_uid)
            if card_no is not None else None,
        ))

    def unpublished(self, limit: int = 200) -> list[tuple[int, str, bytes]]:
        """Events on disk not yet confirmed by the broker, in `seq` order."""
        with self.store.lock:
            rows = self.store.db.execute(
                "SELECT seq, routing_key, body FROM outbox WHERE published=0 AND seq <= ? "
                "ORDER BY seq LIMIT ?", (self.store.synced_seq, limit),
            ).fetchall()
            if rows:
                self._handed_out = max(self._handed_out, rows[-1]["seq"])
        return [(r["seq"], r["routing_key"], r["body"]) for r in rows]

    def mark_published(self, seqs: list[int]) -> None:
        if not seqs:
            return
        # Not durable: a mark lost to a power cut only publishes the event again, which
        # consumers deduplicate on station_id + seq.
        with self.store.tx(durable=False) as db:
            db.executemany("UPDATE outbox SET published=1 WHERE seq=?", [(s,) for s in seqs])

    def backlog(self) -> int:
        with self.store.lock:
            return self.store.db.execute(
                "SELECT COUNT(*) FROM outbox WHERE published=0").fetchone()[0]

    def last_seq(self) -> int:
        with self.store.lock:
            return int(self.store.db.execute(
                "SELECT value FROM meta WHERE key='last_seq'").fetchone()[0])
