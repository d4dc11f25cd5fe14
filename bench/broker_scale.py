"""What one station costs the broker: memory, Erlang processes and idle CPU per station.

Starts a RabbitMQ cluster of its own (tests/support/cluster.py: three nodes beside the
system broker, so no other client's queues or connections are counted; --nodes 1 for a
single node) and declares, for N stations, what the agent declares for one: its station
queue and control queue (quorum, replicated on every node, with the project's own names and
arguments from agent/broker/topology.py) and their bindings, once the shared exchanges and
queues exist. Then it opens the agent's two connections per station (the consumer: one
channel, prefetch as the agent's, consuming the station and the control queue; the
publisher: one channel in confirm mode), with the agent's heartbeat, all in one asyncio loop
rather than N agents, and lets them idle.

Measured at N = 0 (the baseline, same cluster, same run), then after declaring the queues
of N stations (queues alone), then with their connections open too; the levels grow (100,
then 400 more, ...), so per station = (figure at N - figure at 0) / N. At each level:
erlang:memory(total) and the process count of every node (`rabbitmqctl eval`), each node's
RSS and the CPU its Erlang VM used over an idle window (/proc/PID/stat), all summed over
the nodes. --control classic declares the control queues as classic queues instead, to
show what that choice saves; each variant runs on a fresh cluster.

    .venv/bin/python bench/broker_scale.py [--stations 100,500,1000] [--nodes 3]
        [--control quorum,classic] [--idle 30]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
from common import report, scratch
from footprint import cpu_seconds, rss_mb
from pika.adapters.asyncio_connection import AsyncioConnection

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support, from the repo root

from printstation.agent.broker import topology
from printstation.agent.broker.consumer import PREFETCH
from printstation.agent.config import Settings
from tests.support.cluster import Cluster, Node, missing

DECLARERS = 4  # connections declaring at once, as stations starting together would
OPENING = 32  # station connections being opened at once


@dataclass
class Sample:
    """The cluster at one level, summed over its nodes."""

    memory_mb: float  # erlang:memory(total)
    rss_mb: float
    processes: int
    cpu_pct: float  # % of one core over the idle window
    breakdown: dict[str, float]  # rabbit_vm:memory() categories, MB


# ---------------------------------------------------------------------- the broker's figures
_TERM = re.compile(r"\{'?([\w.@-]+)'?,(\d+),(\d+)\}")
_CATEGORY = re.compile(r"\{(\w+),(\d+)\}")


def memory_and_processes(cluster: Cluster) -> tuple[float, int]:
    """erlang:memory(total) in MB and the Erlang process count, summed over the nodes."""
    out = cluster.ctl(cluster.nodes[0], "eval",
                      "[{N, rpc:call(N, erlang, memory, [total]),"
                      " rpc:call(N, erlang, system_info, [process_count])}"
                      " || N <- rabbit_nodes:all_running()].")
    found = _TERM.findall(out)
    if len(found) != len(cluster.nodes):
        raise RuntimeError(f"expected {len(cluster.nodes)} nodes' figures, got: {out[-300:]}")
    return (sum(int(m) for _, m, _ in found) / 2**20, sum(int(p) for _, _, p in found))


def breakdown(cluster: Cluster) -> dict[str, float]:
    """RabbitMQ's own memory categories (rabbit_vm:memory(), as memory_breakdown shows
    them), MB summed over the nodes: which part grows with the stations."""
    total: dict[str, float] = {}
    for node in cluster.nodes:
        out = cluster.ctl(node, "eval", "rabbit_vm:memory().")
        for name, value in _CATEGORY.findall(out):
            total[name] = total.get(name, 0.0) + int(value) / 2**20
    return total


def beam_pid(node: Node) -> int:
    return int(node.pid_file.read_text().strip())


def sample(cluster: Cluster, idle: float) -> Sample:
    """CPU over `idle` seconds with nothing asked of the nodes, then memory and processes
    (the median of three readings: garbage collection makes memory jitter)."""
    pids = [beam_pid(n) for n in cluster.nodes]
    cpu0, t0 = sum(cpu_seconds(p) for p in pids), time.monotonic()
    time.sleep(idle)  # the measuring window itself, not a wait for a condition
    cpu = 100 * (sum(cpu_seconds(p) for p in pids) - cpu0) / (time.monotonic() - t0)
    rss = sum(rss_mb(p) for p in pids)
    readings = sorted(memory_and_processes(cluster) for _ in range(3))
    memory, processes = readings[1]
    return Sample(memory, rss, processes, cpu, breakdown(cluster))


# ---------------------------------------------------------------------- the stations' queues
def station_settings(base: Settings, i: int) -> Settings:
    return base.model_copy(update={"station_id": f"scale-{i:05d}"})


def own_queues(settings: Settings) -> list[topology.QueueSpec]:
    """The queues one station declares and binds for itself (not the shared ones)."""
    shared = topology.shared_queues(settings)
    return [spec for spec in topology.queues(settings) if spec not in shared]


def control_arguments(settings: Settings, control: str) -> dict[str, Any]:
    if control == "quorum":
        return topology.queue_arguments(settings)
    # A classic queue takes the dead-letter exchange and the overflow rule, not the
    # quorum-only delivery limit and at-least-once dead-lettering.
    return {"x-queue-type": "classic",
            "x-dead-letter-exchange": settings.names.dead_exchange,
            "x-overflow": "reject-publish"}


def declare(url: str, stations: list[Settings], control: str) -> None:
    """One connection declaring and binding these stations' queues."""
    conn = pika.BlockingConnection(topology.connection_parameters(url, name="scale-declare"))
    try:
        ch = conn.channel()
        for settings in stations:
            for spec in own_queues(settings):
                args = (control_arguments(settings, control)
                        if spec.name == settings.control_queue()
                        else topology.queue_arguments(settings))
                ch.queue_declare(spec.name, durable=True, arguments=args)
                ch.queue_bind(spec.name, spec.exchange, routing_key=spec.routing_key)
    finally:
        conn.close()


def declare_all(cluster: Cluster, stations: list[Settings], control: str) -> float:
    """Declare the stations' queues over DECLARERS connections spread over the nodes;
    seconds taken."""
    t0 = time.monotonic()
    with ThreadPoolExecutor(DECLARERS) as pool:
        list(pool.map(lambda k: declare(node_url(cluster, k), stations[k::DECLARERS], control),
                      range(DECLARERS)))
    return time.monotonic() - t0


def node_url(cluster: Cluster, i: int) -> str:
    return cluster.url(nodes=[cluster.nodes[i % len(cluster.nodes)]])


# ---------------------------------------------------------------------- idle connections
class IdleStations:
    """The agent's two connections per station, idle, in one asyncio loop on one thread:
    N full agents would not fit this machine, and the broker sees the same thing."""

    def __init__(self, heartbeat: int) -> None:
        self.heartbeat = heartbeat
        self.loop = asyncio.new_event_loop()
        self.connections: list[AsyncioConnection] = []
        self.lost: list[str] = []
        self._closing = False
        self._closed = 0
        self._all_closed = threading.Condition()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def open(self, cluster: Cluster, stations: list[tuple[int, Settings]]) -> float:
        """Open the stations' connections (station i on node i mod nodes); seconds taken."""
        t0 = time.monotonic()
        asyncio.run_coroutine_threadsafe(self._open_all(cluster, stations),
                                         self.loop).result(timeout=900)
        return time.monotonic() - t0

    async def _open_all(self, cluster: Cluster, stations: list[tuple[int, Settings]]) -> None:
        gate = asyncio.Semaphore(OPENING)

        async def one(i: int, settings: Settings) -> None:
            async with gate:
                url = node_url(cluster, i)
                await self._connect(url, f"printstation-consumer-{settings.station_id}",
                                    lambda ch, done: self._consume(ch, settings, done))
                await self._connect(url, f"printstation-publisher-{settings.station_id}",
                                    lambda ch, done: ch.confirm_delivery(
                                        lambda _frame: None,
                                        callback=lambda _ok: done.set_result(None)))

        await asyncio.gather(*(one(i, s) for i, s in stations))

    def _connect(self, url: str, name: str, ready: Any) -> asyncio.Future:
        done: asyncio.Future = self.loop.create_future()

        def failed(_conn: AsyncioConnection, exc: BaseException) -> None:
            if not done.done():
                done.set_exception(RuntimeError(f"{name}: {exc!r}"))

        def closed(_conn: AsyncioConnection, exc: BaseException) -> None:
            self._count_closed()
            if not self._closing:
                self.lost.append(f"{name}: {exc!r}")

        conn = AsyncioConnection(
            topology.node_parameters(url, heartbeat=self.heartbeat, name=name),
            on_open_callback=lambda c: c.channel(on_open_callback=lambda ch: ready(ch, done)),
            on_open_error_callback=failed, on_close_callback=closed, custom_ioloop=self.loop)
        self.connections.append(conn)
        return done

    def _consume(self, ch: Any, settings: Settings, done: asyncio.Future) -> None:
        """As the agent's consumer: prefetch, then the control and the station queue."""
        def on_message(ch: Any, method: Any, _props: Any, _body: bytes) -> None:
            ch.basic_ack(method.delivery_tag)  # none come: nothing is published

        def consumed(_frame: Any) -> None:
            ch.basic_consume(settings.station_queue(), on_message,
                             callback=lambda _f: done.set_result(None))

        ch.basic_qos(prefetch_count=PREFETCH, callback=lambda _f: ch.basic_consume(
            settings.control_queue(), on_message, callback=consumed))

    def _count_closed(self) -> None:
        with self._all_closed:
            self._closed += 1
            self._all_closed.notify_all()

    def close(self, timeout: float = 120) -> None:
        """Close every connection, waiting (with a deadline) until the broker has closed
        them, then stop the loop."""
        self._closing = True

        def close_all() -> None:
            for conn in self.connections:
                if conn.is_open:
                    conn.close()
                elif conn.is_closed:
                    self._count_closed()

        self.loop.call_soon_threadsafe(close_all)
        with self._all_closed:
            self._all_closed.wait_for(lambda: self._closed >= len(self.connections), timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


# ---------------------------------------------------------------------- one variant
def per_station(name: str, n: int, now: Sample, base: Sample) -> None:
    print(f"  {name:34} N={n:5}: memory {1024 * (now.memory_mb - base.memory_mb) / n:7.1f} KB"
          f" (RSS {1024 * (now.rss_mb - base.rss_mb) / n:7.1f} KB), "
          f"processes {(now.processes - base.processes) / n:6.2f}, "
          f"CPU {1000 * (now.cpu_pct - base.cpu_pct) / n:7.3f} milli-% of a core",
          flush=True)


def grown(now: Sample, base: Sample, top: int = 6) -> str:
    diff = {k: v - base.breakdown.get(k, 0.0) for k, v in now.breakdown.items()}
    parts = sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:top]
    return ", ".join(f"{k} {v:+.1f}" for k, v in parts)


def tcp_buffers(cluster: Cluster, size: int) -> None:
    """The networking guide's tuning for many connections: the nodes' AMQP sockets with
    send and receive buffers of `size` bytes (advanced.config, which the cluster's nodes
    read and do not write themselves)."""
    for node in cluster.nodes:
        node.base.mkdir(parents=True, exist_ok=True)
        (node.base / "advanced.config").write_text(
            "[{rabbit, [{tcp_listen_options, [{backlog, 128}, {nodelay, true}, "
            "{linger, {true, 0}}, {exit_on_close, false}, "
            f"{{sndbuf, {size}}}, {{recbuf, {size}}}]}}]}}].\n")


def run_variant(levels: list[int], nodes: int, control: str, idle: float,
                heartbeat: int, tcp_buffer: int | None) -> None:
    buffers = f", TCP buffers {tcp_buffer} B" if tcp_buffer else ""
    print(f"\n== {nodes} node(s), station queues quorum, control queues {control}"
          f"{buffers}, {idle:.0f} s idle windows ==", flush=True)
    cluster = Cluster(scratch("printstation-scale-") / "cluster", size=nodes)
    if tcp_buffer:
        tcp_buffers(cluster, tcp_buffer)
    idle_stations: IdleStations | None = None
    try:
        t0 = time.monotonic()
        cluster.start()
        print(f"cluster started in {time.monotonic() - t0:.1f} s", flush=True)
        base_settings = Settings(station_id="scale-00000", broker_url=cluster.url(),
                                 web_listen="", metrics_listen="")
        conn = pika.BlockingConnection(topology.connection_parameters(cluster.url()))
        topology.declare_shared(conn, base_settings)
        conn.close()

        base = sample(cluster, idle)
        print(f"N=0: memory {base.memory_mb:.1f} MB, RSS {base.rss_mb:.1f} MB, processes "
              f"{base.processes}, CPU {base.cpu_pct:.2f}% of a core", flush=True)
        stations = [station_settings(base_settings, i) for i in range(levels[-1])]

        queues_at: dict[int, Sample] = {}
        done = 0
        for n in levels:
            took = declare_all(cluster, stations[done:n], control)
            print(f"declared stations {done}..{n - 1} in {took:.1f} s "
                  f"({1000 * took / (n - done):.1f} ms a station, {DECLARERS} connections)",
                  flush=True)
            done = n
            queues_at[n] = now = sample(cluster, idle)
            report(f"broker memory, queues of {n} stations", now.memory_mb, "MB",
                   base.memory_mb, "no station")
            per_station("queues alone", n, now, base)
        print(f"  memory grown, MB: {grown(queues_at[levels[-1]], base)}", flush=True)

        idle_stations = IdleStations(heartbeat)
        done = 0
        last = queues_at[levels[-1]]
        for n in levels:
            took = idle_stations.open(cluster, list(enumerate(stations))[done:n])
            print(f"opened {2 * (n - done)} connections in {took:.1f} s", flush=True)
            done = n
            now = sample(cluster, idle)
            if idle_stations.lost:
                raise RuntimeError(f"{len(idle_stations.lost)} connections lost, e.g. "
                                   f"{idle_stations.lost[0]}")
            report(f"broker memory, {levels[-1]} stations' queues, {n}'s connections",
                   now.memory_mb, "MB", base.memory_mb, "no station")
            report(f"broker CPU, {levels[-1]} stations' queues, {n}'s connections",
                   now.cpu_pct, "% core", base.cpu_pct, "no station")
            per_station("connections alone", n, now, last)
        per_station("queues + connections", n, now, base)
        print(f"  memory grown, MB: {grown(now, base)}", flush=True)
    finally:
        if idle_stations is not None:
            idle_stations.close()
        cluster.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stations", default="100,500,1000",
                   help="levels, growing, comma-separated (default 100,500,1000)")
    p.add_argument("--nodes", type=int, choices=(1, 3), default=3)
    p.add_argument("--control", default="quorum,classic",
                   help="control queue types to compare, each on a fresh cluster")
    p.add_argument("--idle", type=float, default=30.0,
                   help="seconds of each idle CPU window (>= the heartbeat: 30 s)")
    p.add_argument("--heartbeat", type=int, default=Settings.model_fields["heartbeat"].default)
    p.add_argument("--tcp-buffer", type=int, default=None,
                   help="bytes of the nodes' AMQP socket buffers (default: the OS's)")
    args = p.parse_args()
    levels = sorted({int(x) for x in args.stations.split(",") if x.strip()})
    if (why := missing()) is not None:
        sys.exit(why)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * levels[-1] + 1024
    if soft < need:  # the nodes inherit it too
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    for control in args.control.split(","):
        run_variant(levels, args.nodes, control.strip(), args.idle, args.heartbeat,
                    args.tcp_buffer)


if __name__ == "__main__":
    main()
