"""Journal size over a station's life, with the retention of contract 7.7 and without it.

A busy station on a simulated clock: telemetry every 30 s, and cards at a steady rate, each
published at once; the agent's hourly prune runs with the default retention (ended jobs and
the ledger's rows 400 days, published events 14 days) against the same journal that is never
pruned, the baseline. The figure is the size of the journal's files after the last day.

    .venv/bin/python bench/retention.py --days 60 --cards-per-day 480
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from common import report, scratch

from printstation.agent import contract
from printstation.agent.station.journal import Journal
from printstation.agent.station.journal.stock import CardUse

TELEMETRY = contract.TelemetryFields(
    agent_version="bench", state="ready", taking_jobs=True, signatures_verified=True,
    printer=contract.PrinterInfo(driver="sim", model="SIM", serial="SIM-0001",
                                 firmware="1.0", state="ready", faults=[]),
    consumables=[], cards_left=400, first_to_run_out="ribbon",
    counters=contract.Counters(printed_today=0, spoiled_today=0, printed_total=0,
                               spoiled_total=0), queued_jobs=0)


def size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6


def run(days: int, cards_per_day: int, prune: bool) -> list[float]:
    """Journal size (MB) at the end of each day."""
    folder = scratch("printstation-retention-")
    journal = Journal(folder, "bench")
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    clock = [start]
    real_now, contract.now = contract.now, lambda: clock[0]  # type: ignore[assignment]
    sizes = []
    try:
        for day in range(days):
            for hour in range(24):
                clock[0] = start + datetime.timedelta(days=day, hours=hour)
                for _ in range(120):  # telemetry every 30 s, published at once
                    journal.outbox.emit_now(TELEMETRY)
                    journal.outbox.mark_published([s for s, _, _ in journal.outbox.unpublished(10)])
                for _ in range(cards_per_day // 24):
                    journal.cards.test(None, CardUse(stock="ektp", sides=2, ribbon=1, film=2),
                                      "bench")
                journal.outbox.mark_published([s for s, _, _ in journal.outbox.unpublished(1000)])
                if prune:
                    journal.retention.prune(job_days=400, event_days=14)
            sizes.append(size_mb(folder))
    finally:
        contract.now = real_now  # type: ignore[assignment]
        journal.close()
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--cards-per-day", type=int, default=480)
    args = parser.parse_args()
    kept = run(args.days, args.cards_per_day, prune=True)
    never = run(args.days, args.cards_per_day, prune=False)
    half = args.days // 2
    report(f"journal after {args.days} days, retention", kept[-1], "MB", never[-1],
           "never pruned", "flat once 14 days of events are kept",
           higher_is_better=False)
    report(f"growth over the last {args.days - half} days, retention", kept[-1] - kept[half - 1],
           "MB", never[-1] - never[half - 1], "never pruned", higher_is_better=False)
    print("  by day 10/20/30/..: retention "
          + ", ".join(f"{s:.1f}" for s in kept[9::10])
          + "; never pruned " + ", ".join(f"{s:.1f}" for s in never[9::10]))


if __name__ == "__main__":
    main()
