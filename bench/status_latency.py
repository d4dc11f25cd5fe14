"""Status latency for the citizen's SMS: from the card leaving the printer to `printed`
consumed by the central system, per card, with 1, 10 and 50 agents, and after a failover.

Each agent is a `printstation run` process on its own simulated printer (`sim://`), given
one job each print time (as an office's jobs come, not a burst), whose ledger stamps the
moment each card came out (the printer's truth, written by the "printer" in the agent's
process, on the same clock as this script). A central-side consumer, on a thread and a
connection of its own, stamps each `printed` status in its delivery callback, the moment it
arrives (not when the loop that submits jobs gets round to it). The latency of a card is
the difference; p50, p99 and the maximum over every card are printed, with how busy the
machine's cores were meanwhile. Baseline, same run: a bare pika publisher-confirm round
trip (publish with confirms on one connection, consumed on another), the least any status
could take on this broker. Every card must be reported `printed` exactly once: the same
event delivered again (the same station and seq, after a failover) is counted apart, as the
contract lets consumers drop it; two events for one card, or none, fail the run.

`--failover` starts a three-node RabbitMQ cluster of the benchmark's own
(tests/support/cluster.py, beside the system broker, which it never touches), declares the
stations' quorum queues through node a (which then leads them), gives the agents all three
nodes with a first, and kills node a with SIGKILL once a third of the jobs are out: the
node leading the station queues and the one the agents are connected to, at once. The
central consumer and submitter are on node c. It prints the latency of the cards printed
after the kill, the time until `printed` flowed again (the first one, and the last station's
first), and whether every card was reported exactly once.

Everything runs in a vhost of its own (or a cluster of its own), deleted at the end, and
every folder and process is removed. All the agents share this machine's cores here, where
each office has a PC of its own: with many agents the figure measures the machine as much
as the status path (see the cores' figure on each line).
Target: p99 under 200 ms with 10 agents.

    .venv/bin/python bench/status_latency.py [--agents 1,10,50] [--jobs 20]
        [--print-time 0.5,0.5,2.5] [--failover [--failover-agents 10]]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pika
from common import (
    DEFAULT_BROKER,
    KEY,
    KEY_ID,
    iter_signed_jobs,
    own_vhost,
    scratch,
    start_agents,
)

from printstation.agent.broker.topology import connection_parameters, declare
from printstation.agent.central.tools import Submitter
from printstation.agent.config import Names, Settings

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.support.cluster, for --failover

from tests.support.cluster import Cluster  # noqa: E402

STATUS = "printstation.status/1"
TELEMETRY = "printstation.telemetry/1"


def percentiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]
    return statistics.median(ordered), p99, ordered[-1]


def ms(values: tuple[float, float, float]) -> str:
    return f"p50 {values[0] * 1000:.1f} ms, p99 {values[1] * 1000:.1f} ms, " \
           f"max {values[2] * 1000:.1f} ms"


def bare_round_trips(pub_url: str, sub_url: str, count: int = 200) -> list[float]:
    """Publish with confirms on one connection, consume on another: seconds each."""
    pub = pika.BlockingConnection(pika.URLParameters(pub_url))
    sub = pika.BlockingConnection(pika.URLParameters(sub_url))
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


class CpuMeter:
    """How busy the machine's cores were between `start` and `stop` (/proc/stat)."""

    @staticmethod
    def _read() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    def __init__(self) -> None:
        self._begin = self._read()
        self.busy: float | None = None

    def stop(self) -> float:
        busy, total = self._read()
        self.busy = (busy - self._begin[0]) / max(1, total - self._begin[1])
        return self.busy


@dataclass
class Printed:
    """One `printed` delivery: when it arrived, from which station, with which seq."""

    at: float
    station: str
    seq: int


@dataclass
class Arrivals:
    """The central side's consumer, on a thread and a connection of its own: every
    delivery is stamped first thing in pika's callback."""

    url: str
    stations: set[str]
    names: Names = field(default_factory=Names)
    printed: dict[str, list[Printed]] = field(default_factory=dict)
    telemetry: set[str] = field(default_factory=set)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="central-consumer", daemon=True)
        self._thread.start()
        if not self._ready.wait(60) or self.error is not None:
            raise RuntimeError(f"the central consumer did not start: {self.error!r}")

    def _on_message(self, _ch: object, method: object, _props: object, body: bytes) -> None:
        at = time.time()
        event = json.loads(body)
        if event.get("station_id") not in self.stations:
            return
        with self._cond:
            if event["schema"] == TELEMETRY:
                self.telemetry.add(event["station_id"])
            elif event["schema"] == STATUS and event["status"] == "printed":
                self.printed.setdefault(event["job_id"], []).append(
                    Printed(at, event["station_id"], event["seq"]))
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            conn = pika.BlockingConnection(connection_parameters(self.url, name="latency-tap"))
            try:
                ch = conn.channel()
                ch.exchange_declare(self.names.event_exchange, "topic", durable=True)
                queue = ch.queue_declare("", exclusive=True).method.queue
                for key in ("status.#", "telemetry.#"):
                    ch.queue_bind(queue, self.names.event_exchange, routing_key=key)
                ch.basic_consume(queue, self._on_message, auto_ack=True)
                self._ready.set()
                while not self._stop.is_set():
                    conn.process_data_events(time_limit=0.2)
            finally:
                if conn.is_open:
                    conn.close()
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()
            with self._cond:
                self._cond.notify_all()

    def wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: done() or self.error is not None, timeout):
                sys.exit(f"status_latency: timed out waiting for {what}")
        if self.error is not None:
            sys.exit(f"status_latency: the central consumer failed: {self.error!r}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def stop_agents(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(60)


@dataclass
class Fleet:
    """A run's outcome: each card's time out of the printer, and what the consumer saw."""

    cards: dict[str, float]  # job_id -> ledger time of its issued card
    printed: dict[str, list[Printed]]
    busy: float  # the cores' busy share while the jobs were sent and printed
    kill: float | None = None

    def check_once(self) -> int:
        """Every card reported `printed` by exactly one event; returns the deliveries of an
        event seen before (the same station and seq), which consumers drop."""
        again = 0
        for job_id in self.cards:
            events = {(p.station, p.seq) for p in self.printed.get(job_id, [])}
            if len(events) != 1:
                sys.exit(f"status_latency: card {job_id} reported by {len(events)} `printed` "
                         "events, not one")
            again += len(self.printed[job_id]) - 1
        return again

    def latency(self, job_id: str) -> float:
        return min(p.at for p in self.printed[job_id]) - self.cards[job_id]


def run_fleet(submit_url: str, tap_url: str, agents_url: str, stations: list[str],
              jobs: int, print_time: float, root: Path, *, extra: str = "",
              kill_after: int | None = None,
              kill: Callable[[], None] | None = None) -> Fleet:
    """Start one agent per station, send each `jobs` jobs one per print time, and wait for
    every `printed`; `kill` is called once `kill_after` rounds are out."""
    tap = Arrivals(tap_url, set(stations))
    procs: list[subprocess.Popen] = []
    killed: float | None = None
    try:
        procs = start_agents(root, stations, agents_url, print_time, extra)
        tap.wait(lambda: tap.telemetry >= set(stations), 600, "every agent's telemetry")
        signed = {s: list(iter_signed_jobs(jobs, f"L{s}", to=s)) for s in stations}
        expected: list[str] = []
        cpu = CpuMeter()
        with Submitter(submit_url, key=KEY, key_id=KEY_ID) as submitter:
            # Jobs come as an office's do, one per station each print time, not all at
            # once: a burst would measure their intake, not the status path.
            start = time.monotonic()
            for round_ in range(jobs):
                if round_ == kill_after and kill is not None:
                    killed = time.time()
                    kill()
                for station in stations:
                    job_id, body, headers = signed[station][round_]
                    expected.append(job_id)
                    submitter.publish_raw("printstation.jobs", f"station.{station}", body,
                                          headers=headers, message_id=job_id)
                pause = start + (round_ + 1) * print_time - time.monotonic()
                if pause > 0:
                    time.sleep(pause)  # the central system's pace, not a synchronisation
        tap.wait(lambda: all(j in tap.printed for j in expected), 600,
                 "every card's `printed`")
        busy = cpu.stop()
        # A moment for a second delivery of the last events to show (a duplicate check).
        time.sleep(0.5)
    finally:
        tap.close()
        stop_agents(procs)
    cards: dict[str, float] = {}
    for station in stations:
        ledger = root / station / "cards" / "ledger.jsonl"
        for line in ledger.read_text().splitlines():
            card = json.loads(line)
            if card["outcome"] == "issued":
                if card["job_id"] in cards:
                    sys.exit(f"status_latency: {card['job_id']} printed twice")
                cards[card["job_id"]] = datetime.fromisoformat(card["at"]).timestamp()
    if sorted(cards) != sorted(expected):
        sys.exit(f"status_latency: {len(cards)} cards printed of {len(expected)} jobs sent")
    return Fleet(cards, dict(tap.printed), busy, killed)


def run_agents(broker_url: str, agents: int, jobs: int, print_time: float) -> None:
    tag = uuid.uuid4().hex[:6]
    stations = [f"lat-{tag}-{i:03d}" for i in range(agents)]
    fleet = run_fleet(broker_url, broker_url, broker_url, stations, jobs, print_time,
                      scratch("printstation-latency-"))
    again = fleet.check_once()
    figures = percentiles([fleet.latency(j) for j in fleet.cards])
    target = " (target p99 < 200 ms: " + ("met" if figures[1] < 0.2 else "missed") + ")" \
        if agents == 10 else ""
    print(f"card out -> printed consumed, {agents} agents x {jobs} cards at {print_time:g} "
          f"s/card: {ms(figures)}{target}; cores {fleet.busy:.0%} busy; every card "
          f"reported once ({again} repeated deliveries)", flush=True)


@contextmanager
def own_cluster() -> Iterator[Cluster]:
    """A three-node cluster of this run's own, stopped and removed at the end."""
    cluster = Cluster(scratch("printstation-latency-cluster-") / "rabbitmq")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def run_failover(agents: int, jobs: int, print_time: float) -> None:
    with own_cluster() as cluster:
        a, b, c = cluster.nodes
        base = percentiles(bare_round_trips(cluster.url(nodes=[b]), cluster.url(nodes=[c])))
        print(f"bare pika publisher-confirm round trip on the cluster (node b to node c, "
              f"baseline, same run): {ms(base)}", flush=True)
        tag = uuid.uuid4().hex[:6]
        stations = [f"fo-{tag}-{i:03d}" for i in range(agents)]
        conn = pika.BlockingConnection(connection_parameters(cluster.url(nodes=[a])))
        try:  # declared through a, so a leads the station queues
            for sid in stations:
                declare(conn, Settings(station_id=sid, broker_url=cluster.url(),
                                       quorum_group_size=3))
        finally:
            conn.close()
        leaders = {cluster.leader(f"printstation.station.{sid}").name for sid in stations}
        if leaders != {a.name}:
            sys.exit(f"status_latency: the station queues are led by {leaders}, not {a.name}")
        central = cluster.url(nodes=[c])
        fleet = run_fleet(central, central, cluster.url(nodes=[a, b, c]), stations, jobs,
                          print_time, scratch("printstation-latency-"),
                          extra="quorum_group_size = 3\n", kill_after=jobs // 3,
                          kill=lambda: cluster.kill(a))
    assert fleet.kill is not None
    again = fleet.check_once()
    before = [j for j, out in fleet.cards.items() if out <= fleet.kill]
    after = [j for j, out in fleet.cards.items() if out > fleet.kill]
    figures = percentiles([fleet.latency(j) for j in after])
    print(f"before the kill, on the cluster (same run): the {len(before)} cards printed: "
          f"{ms(percentiles([fleet.latency(j) for j in before]))}", flush=True)
    firsts: dict[str, float] = {}
    for job_id in fleet.printed:
        for p in fleet.printed[job_id]:
            if p.at > fleet.kill:
                firsts[p.station] = min(firsts.get(p.station, p.at), p.at)
    first, every = min(firsts.values()) - fleet.kill, max(firsts.values()) - fleet.kill
    print(f"after killing node a (leading the station queues, the agents on it), {agents} "
          f"agents x {jobs} cards at {print_time:g} s/card, the {len(after)} cards printed "
          f"after the kill: {ms(figures)}; `printed` flowing again {first:.2f} s after the "
          f"kill (every station: {every:.2f} s); "
          f"every card reported once ({again} repeated deliveries); cores {fleet.busy:.0%} "
          "busy", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", default="1,10,50")
    p.add_argument("--jobs", type=int, default=20)
    p.add_argument("--print-time", default=None,
                   help="seconds per card, one for each --agents entry or one for all; by "
                        "default 0.5 s, and for more than 10 agents 0.05 s per agent, so "
                        "that this machine prints at most 20 cards/s (50 agents: 2.5 s)")
    p.add_argument("--broker-url", default=DEFAULT_BROKER)
    p.add_argument("--failover", action="store_true",
                   help="instead: a cluster of three nodes, one killed mid-run")
    p.add_argument("--failover-agents", type=int, default=10)
    p.add_argument("--failover-jobs", type=int, default=30)
    p.add_argument("--failover-print-time", type=float, default=0.5)
    args = p.parse_args()
    if args.failover:
        run_failover(args.failover_agents, args.failover_jobs, args.failover_print_time)
        return
    counts = [int(n) for n in args.agents.split(",")]
    times = [float(t) for t in args.print_time.split(",")] if args.print_time else \
        [max(0.5, n * 0.05) for n in counts]
    if len(times) == 1:
        times *= len(counts)
    if len(times) != len(counts):
        sys.exit("status_latency: give one --print-time, or one for each --agents entry")
    with own_vhost(args.broker_url) as broker_url:
        base = percentiles(bare_round_trips(broker_url, broker_url))
        print(f"bare pika publisher-confirm round trip (baseline, same run): {ms(base)}",
              flush=True)
        for agents, print_time in zip(counts, times, strict=True):
            run_agents(broker_url, agents, args.jobs, print_time)


if __name__ == "__main__":
    main()
