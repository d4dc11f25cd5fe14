"""Many stations on one broker: every job completes, and what the fleet costs the broker.

Starts --agents `printstation run` processes (simulated printers at --print-time s/card)
against the broker, gives each --jobs signed two-sided jobs on its station queue, and
measures until every job is printed: events per second by kind (status, card, telemetry,
alert) seen on the event exchange, and the broker's CPU (its beam.smp, by the pid the
node itself gives, not the first Erlang VM running). Baseline, same run: the broker's CPU
with as many bare pika connections idling for the same time.

"Every job completes" means every one of this run's job ids was reported `printed` by its
own station: the run works in a RabbitMQ vhost of its own (deleted at the end), and only
events from its own station ids are counted, so another fleet on the broker cannot make
it pass. Every folder it made is removed.

    .venv/bin/python bench/fleet.py [--agents 50] [--jobs 4] [--print-time 0.5]
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import time
import uuid

import pika
from common import (
    DEFAULT_BROKER,
    KEY,
    KEY_ID,
    iter_signed_jobs,
    own_vhost,
    report,
    scratch,
    start_agents,
    wait_telemetry,
)
from footprint import cpu_seconds

from printstation.agent.central.tools import EventTap, Submitter


def broker_pid() -> int:
    """The OS pid of the local broker node (other Erlang VMs may be running beside it)."""
    out = subprocess.run(["rabbitmqctl", "eval", "os:getpid()."], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    return int(out.strip().strip('"'))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--jobs", type=int, default=4)
    p.add_argument("--print-time", type=float, default=0.5)
    p.add_argument("--broker-url", default=DEFAULT_BROKER)
    args = p.parse_args()
    with own_vhost(args.broker_url) as broker_url:
        if not run(args, broker_url):
            sys.exit("fleet: not every job was printed")


def run(args: argparse.Namespace, broker_url: str) -> bool:
    """The fleet on `broker_url`; True when every job was printed."""
    root = scratch("printstation-fleet-")
    tag = uuid.uuid4().hex[:6]
    stations = [f"fleet-{tag}-{i:03d}" for i in range(args.agents)]
    ours = set(stations)
    expected: set[str] = set()
    beam = broker_pid()
    with EventTap(broker_url, binding=["status.#", "card.#", "telemetry.#",
                                            "alert.#"]) as tap:
        procs = start_agents(root, stations, broker_url, args.print_time)
        counts: collections.Counter[str] = collections.Counter()
        wait_telemetry(tap.events, stations)
        started = time.monotonic()
        cpu0 = cpu_seconds(beam)
        with Submitter(broker_url, key=KEY, key_id=KEY_ID) as sub:
            for station in stations:
                for job_id, body, headers in iter_signed_jobs(args.jobs, f"F{station}",
                                                                to=station):
                    expected.add(job_id)
                    sub.publish_raw("printstation.jobs", f"station.{station}", body,
                                    headers=headers, message_id=job_id)
        printed: set[str] = set()
        total = args.agents * args.jobs
        while len(printed) < total and time.monotonic() < started + 600:
            for e in tap.events(5.0):
                if e.get("station_id") not in ours:
                    continue  # not this run's: counted neither as load nor as done
                kind = e["schema"].split("/")[0].removeprefix("printstation.")
                counts[kind] += 1
                if kind == "status" and e["status"] == "printed" and e["job_id"] in expected:
                    printed.add(e["job_id"])
                if len(printed) == total:
                    break
        took = time.monotonic() - started
        cpu1 = cpu_seconds(beam)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(60)
    conns = [pika.BlockingConnection(pika.URLParameters(broker_url))
             for _ in range(args.agents)]
    base0 = cpu_seconds(beam)
    time.sleep(took)  # the same length of time, idle connections only
    base1 = cpu_seconds(beam)
    for c in conns:
        c.close()
    print(f"fleet: {args.agents} agents, {len(printed)} of {total} jobs printed in "
          f"{took:.1f} s")
    for kind, n in sorted(counts.items()):
        print(f"  {kind:10} {n:6} events, {n / took:7.1f} /s")
    report(f"broker CPU with {args.agents} agents printing", 100 * (cpu1 - cpu0) / took,
           "% of a core", 100 * (base1 - base0) / took, f"{args.agents} idle connections")
    return printed == expected


if __name__ == "__main__":
    main()
