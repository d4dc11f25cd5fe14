"""Status latency for the citizen's SMS: from the card leaving the printer to `printed`
consumed by the central system, per card, with 1, 10 and 50 agents.

Each agent is a `printstation run` process on its own simulated printer (`sim://`), given
one job each print time (as an office's jobs come, not a burst), whose
ledger stamps the moment each card came out (the printer's truth, written by the "printer"
in the agent's process, on the same clock as this script). A central-side consumer (an
`EventTap` on its own connection) stamps the moment each `printed` status arrives. The
latency of a card is the difference; p50, p99 and the maximum over every card are printed.
Baseline, same run: a bare pika publisher-confirm round trip (publish with confirms on one
connection, consumed on another), the least any status could take on this broker.

Everything runs in a vhost of its own, deleted at the end, and every folder is removed. All
the agents share this machine's cores here, where each office has a PC of its own: with
many agents the figure measures the machine as much as the status path.
Target: p99 under 200 ms with 10 agents.

    .venv/bin/python bench/status_latency.py [--agents 1,10,50] [--jobs 10] [--print-time 0.2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from datetime import datetime

import pika
from common import (
    DEFAULT_BROKER,
    KEY,
    KEY_ID,
    iter_signed_jobs,
    own_vhost,
    scratch,
    start_agents,
    wait_telemetry,
)

from printstation.agent.central.tools import EventTap, Submitter


def percentiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]
    return statistics.median(ordered), p99, ordered[-1]


def bare_round_trips(broker_url: str, count: int = 200) -> list[float]:
    """Publish with confirms on one connection, consume on another: seconds each."""
    params = pika.URLParameters(broker_url)
    pub, sub = pika.BlockingConnection(params), pika.BlockingConnection(params)
    try:
        out, inp = pub.channel(), sub.channel()
        out.confirm_delivery()
        queue = inp.queue_declare("", exclusive=True).method.queue
        times = []
        for _ in range(count):
            start = time.perf_counter()
            out.basic_publish("", queue, b"x", pika.BasicProperties(delivery_mode=2))
            while True:
                method, _, _ = inp.basic_get(queue, auto_ack=True)
                if method is not None:
                    break
            times.append(time.perf_counter() - start)
        return times
    finally:
        pub.close()
        sub.close()


def run_agents(broker_url: str, agents: int, jobs: int, print_time: float) -> list[float]:
    """Latency of every card printed by `agents` agents with `jobs` jobs each."""
    root = scratch("printstation-latency-")
    tag = uuid.uuid4().hex[:6]
    stations = [f"lat-{tag}-{i:03d}" for i in range(agents)]
    ours = set(stations)
    arrived: dict[str, float] = {}
    with EventTap(broker_url, binding=["status.#", "telemetry.#"]) as tap:
        procs = start_agents(root, stations, broker_url, print_time)
        wait_telemetry(tap.events, stations)
        expected = set()
        signed = {station: list(iter_signed_jobs(jobs, f"L{station}", to=station))
                  for station in stations}
        with Submitter(broker_url, key=KEY, key_id=KEY_ID) as submitter:
            # Jobs come as an office's do, one per station each print time, not all at
            # once: a burst of 500 jobs would measure their intake, not the status path.
            for round_ in range(jobs):
                sent = time.monotonic()
                for station in stations:
                    job_id, body, headers = signed[station][round_]
                    expected.add(job_id)
                    submitter.publish_raw("printstation.jobs", f"station.{station}", body,
                                          headers=headers, message_id=job_id)
                for e in tap.events(max(0.01, print_time - (time.monotonic() - sent))):
                    if e.get("station_id") in ours and e["schema"] == "printstation.status/1" \
                            and e["status"] == "printed" and e["job_id"] in expected:
                        arrived.setdefault(e["job_id"], time.time())
                    if time.monotonic() - sent >= print_time:
                        break
        deadline = time.monotonic() + 600
        while len(arrived) < len(expected) and time.monotonic() < deadline:
            for e in tap.events(1.0):
                if e.get("station_id") in ours and e["schema"] == "printstation.status/1" \
                        and e["status"] == "printed" and e["job_id"] in expected:
                    arrived.setdefault(e["job_id"], time.time())
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(60)
    latencies = []
    for station in stations:
        ledger = root / station / "cards" / "ledger.jsonl"
        for line in ledger.read_text().splitlines():
            card = json.loads(line)
            if card["outcome"] == "issued" and card["job_id"] in arrived:
                out = datetime.fromisoformat(card["at"]).timestamp()
                latencies.append(arrived[card["job_id"]] - out)
    if len(latencies) != len(expected):
        sys.exit(f"status_latency: {len(latencies)} of {len(expected)} cards reported printed")
    return latencies


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", default="1,10,50")
    p.add_argument("--jobs", type=int, default=10)
    p.add_argument("--print-time", type=float, default=0.2)
    p.add_argument("--broker-url", default=DEFAULT_BROKER)
    args = p.parse_args()
    with own_vhost(args.broker_url) as broker_url:
        base = percentiles(bare_round_trips(broker_url))
        print(f"bare pika publisher-confirm round trip (baseline, same run): p50 "
              f"{base[0] * 1000:.1f} ms, p99 {base[1] * 1000:.1f} ms, max {base[2] * 1000:.1f} ms")
        for agents in (int(n) for n in args.agents.split(",")):
            p50, p99, most = percentiles(run_agents(broker_url, agents, args.jobs,
                                                    args.print_time))
            target = " (target p99 < 200 ms: " + ("met" if p99 < 0.2 else "missed") + ")" \
                if agents == 10 else ""
            print(f"card out -> printed consumed, {agents} agents x {args.jobs} cards at "
                  f"{args.print_time:g} s/card: p50 {p50 * 1000:.1f} ms, p99 "
                  f"{p99 * 1000:.1f} ms, max {most * 1000:.1f} ms{target}")


if __name__ == "__main__":
    main()
