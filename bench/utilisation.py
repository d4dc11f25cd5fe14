"""Printer utilisation: is the printer ever waiting for the PC?

The simulator prints at `--print-time` seconds per card; `--jobs` two-sided jobs are queued
before the agent starts. Utilisation is the time a card was in the printer over the wall
time from the first card in to the last card out. Baseline, same run: the same simulated
printer fed the same cards, already prepared, back to back by a bare loop (the most any
host could get out of it). Target: at least 99.5%.

    .venv/bin/python bench/utilisation.py [--jobs 200] [--print-time 0.5] [--runs 1]
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


def utilisation(log: list[tuple[float, float]]) -> float:
    busy = sum(end - start for start, end in log)
    return busy / (log[-1][1] - log[0][0])


def agent_run(jobs: int, print_time: float) -> float:
    agent = make_agent(f"print_time={print_time}&cards={jobs + 10}&ribbon={2 * jobs + 10}"
                       f"&film={2 * jobs + 10}")
    source = EmbeddedSource(agent.station.intake)
    for job_id, body, headers in signed_jobs(jobs, "UTIL", to=agent.settings.station_id):
        source.submit(body, headers, message_id=job_id)
    finals = Finals()
    agent.start(embedded_sink=finals)
    ok = finals.wait(jobs, timeout=jobs * print_time * 3 + 60)
    log = list(agent.driver.printer.busy_log)  # type: ignore[attr-defined]
    agent.stop()
    if not ok or len(log) != jobs:
        sys.exit(f"utilisation: only {len(finals.done)} of {jobs} jobs ended")
    return utilisation(log)


def bare_run(jobs: int, print_time: float) -> float:
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
    return utilisation(printer.busy_log)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=200)
    p.add_argument("--print-time", type=float, default=0.5)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    started = time.monotonic()
    mine = [agent_run(args.jobs, args.print_time) for _ in range(args.runs)]
    bare = [bare_run(args.jobs, args.print_time) for _ in range(args.runs)]
    result = report(f"printer utilisation, {args.jobs} two-sided jobs", 100 * median(mine), "%",
                    100 * median(bare), "printer fed back to back", ">= 99.5 %")
    print(f"  runs {args.runs}, wall {time.monotonic() - started:.0f} s; agent runs "
          + ", ".join(f"{100 * u:.2f}%" for u in mine))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
