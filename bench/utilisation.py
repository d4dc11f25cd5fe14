"""Printer utilisation: is the printer ever waiting for the PC?

The simulator prints at `--print-time` seconds per card; `--jobs` two-sided jobs are queued
before the agent starts. Utilisation is the printer's busy time over the wall time from the
first card in to the last card out.

Busy time is the pure print time: `--print-time` for each card printed, nothing else. The
simulated printer runs in the agent's process, and the interval it logs for a card (from
`draw_blank` taking the blank to the end of `print_drawn`) also holds the late wake-up of
its print timer when another thread holds the interpreter lock, and its ledger line: the
agent's own contention, which counts as idle here. (The old figure, the logged intervals
summed, is printed beside it for comparison with earlier runs.) The simulator's own work
for a card is kept out of the card's cycle as a printer's controller keeps it out of the
mechanics' (the card's fingerprint is taken while it prints, each side ends at its time
from the card's start, the ledger line is written without an fsync); what is left of it
uncontended is in the baseline as well, which is why the baseline is the ceiling on the
machine it ran on, just below 100% (on a machine busy with other work, lower).

The simulated printer prints a fed card by itself (`overlaps_cards`), so the agent feeds
the next card the moment one is out and records the outcome while the next prints: what is
left between two cards is the printer thread's return from one card and its feed of the
next, and the interpreter it shares with the agent's other threads.

Baseline, same run: the same simulated printer fed the same cards, already prepared, back
to back by a bare loop, measured the same way (the most any host could get out of it).
Target: at least 99.8% at 0.5 s/card.

`--chip` gives every job a chip section (an e-KTP) and the agent the in-process encoder:
a chip card is parked and encoded before it prints, so it is not fed while another prints,
and the figure shows what that costs beside the same baseline.

    .venv/bin/python bench/utilisation.py [--jobs 200] [--print-time 0.5] [--runs 1] [--chip]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from common import Finals, make_agent, median, report, signed_jobs

from printstation.agent.broker.embedded import EmbeddedSource
from printstation.agent.station.journal import JobRow
from printstation.agent.station.printing import build_card


def utilisation(log: list[tuple[float, float]], print_time: float) -> tuple[float, float]:
    """(pure print time, logged in-printer time) over the wall time from the first card in
    to the last card out."""
    wall = log[-1][1] - log[0][0]
    return len(log) * print_time / wall, sum(end - start for start, end in log) / wall


def agent_run(jobs: int, print_time: float, chip: bool = False) -> tuple[float, float]:
    agent = make_agent(f"print_time={print_time}&cards={jobs + 10}&ribbon={2 * jobs + 10}"
                       f"&film={2 * jobs + 10}", encoder_url="sim://" if chip else None)
    source = EmbeddedSource(agent.station.intake)
    for job_id, body, headers in signed_jobs(jobs, "UTIL", to=agent.settings.station_id,
                                             chip=chip):
        source.submit(body, headers, message_id=job_id)
    finals = Finals()
    agent.start(embedded_sink=finals)
    ok = finals.wait(jobs, timeout=jobs * print_time * 3 + 60)
    log = list(agent.driver.printer.busy_log)  # type: ignore[attr-defined]
    agent.stop()
    if not ok or len(log) != jobs:
        sys.exit(f"utilisation: only {len(finals.done)} of {jobs} jobs ended")
    return utilisation(log, print_time)


def bare_run(jobs: int, print_time: float) -> tuple[float, float]:
    """The printer alone: pre-built cards handed over back to back."""
    agent = make_agent(f"print_time={print_time}&cards={jobs + 10}")
    printer = agent.driver.printer  # type: ignore[attr-defined]
    cards = []
    for job_id, body, _ in signed_jobs(min(jobs, 8), "BARE", to=agent.settings.station_id):
        row = JobRow(job_id, None, "ektp", "station", "queued", 0, 2, None, body, None, None,
                     None)
        cards.append(build_card(row, (1016, 648)))
    for i in range(jobs):
        printer.print_card(cards[i % len(cards)])
    agent.journal.close()
    return utilisation(list(printer.busy_log), print_time)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=200)
    p.add_argument("--print-time", type=float, default=0.5)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--chip", action="store_true", help="jobs with a chip section")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    started = time.monotonic()
    mine = [agent_run(args.jobs, args.print_time, args.chip) for _ in range(args.runs)]
    bare = [bare_run(args.jobs, args.print_time) for _ in range(args.runs)]
    pure, logged = [m[0] for m in mine], [m[1] for m in mine]
    base = median([b[0] for b in bare])
    kind = "two-sided chip" if args.chip else "two-sided"
    result = report(f"printer busy, {args.jobs} {kind} jobs, {args.print_time} s/card",
                    100 * median(pure), "%", 100 * base, "printer fed back to back",
                    ">= 99.8 %")
    met = 100 * median(pure) >= 99.8
    print(f"  target {'met' if met else 'missed'}; runs {args.runs}, wall "
          f"{time.monotonic() - started:.0f} s; agent runs "
          + ", ".join(f"{100 * u:.2f}%" for u in pure)
          + "; counting the logged in-printer time as busy (the old figure): "
          + ", ".join(f"{100 * u:.2f}%" for u in logged)
          + f", fed back to back {100 * median([b[1] for b in bare]):.3f}%")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
