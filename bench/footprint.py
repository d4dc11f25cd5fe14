"""Start-up time, idle CPU and memory of the agent.

startup  time from starting `printstation run` (real broker, simulated printer) until it
         is working: its READY=1 on a notify socket (as systemd sees it) and its
         consumers on the station queue and the control queue, as the broker sees them
         (a passive declare of each, polled every 5 ms on a connection opened before the
         agent starts). The agent sends READY=1 once its parts have started, before
         its broker connection is up, so READY alone would time a station that cannot
         take a job yet; the figure is the later of the two, READY is printed beside it.
         Baseline: the same interpreter importing the agent's modules and exiting.
         Target <= 1.5 s.
idle     CPU of that agent over --idle-seconds with nothing to do (no polling loops should
         show). Baseline: a bare pika connection with the same heartbeat, idling in
         process_data_events. Target <= 0.1% of one core.
rss      resident memory of an agent (embedded job source, print time 0) after each count
         in --jobs, and the peak over the whole run (the process's high-water mark, which
         is what must fit). Baseline: its RSS once started, before the first job. Target
         peak <= 100 MB, and flat within 5% between the last two counts.

startup and idle work in a RabbitMQ vhost of their own, deleted at the end; every folder
made is removed.

    .venv/bin/python bench/footprint.py [startup idle rss] [--idle-seconds 60]
        [--jobs 2000,10000] [--broker-url amqp://guest:guest@127.0.0.1:5672/%2F]
"""

from __future__ import annotations

import argparse
import itertools
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pika
from common import (
    DEFAULT_BROKER,
    Finals,
    child,
    iter_signed_jobs,
    make_agent,
    median,
    own_vhost,
    report,
    scratch,
)

from printstation.agent.broker.embedded import EmbeddedSource
from printstation.agent.config import Settings

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int | None = None) -> float:
    status = Path(f"/proc/{pid or 'self'}/status").read_text()
    kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return kb / 1024


def peak_rss_mb(pid: int | None = None) -> float:
    """The process's high-water mark of resident memory (VmHWM)."""
    status = Path(f"/proc/{pid or 'self'}/status").read_text()
    kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    return kb / 1024


def consuming(conn: pika.BlockingConnection, queues: list[str], since: float,
              timeout: float = 30) -> float:
    """Seconds from `since` until every one of `queues` has a consumer, as the broker sees
    it, asked on `conn` (opened before `since`, so that its own start is not timed)."""
    ch = conn.channel()
    deadline = since + timeout
    while time.monotonic() < deadline:
        try:
            if all(ch.queue_declare(q, passive=True).method.consumer_count for q in queues):
                return time.monotonic() - since
        except pika.exceptions.ChannelClosedByBroker:  # not declared yet
            ch = conn.channel()
        conn.sleep(0.005)
    raise SystemExit(f"startup: the agent was not consuming after {timeout:.0f} s")


def start_agent(broker_url: str, root: Path, station: str | None = None,
                ) -> tuple[subprocess.Popen, socket.socket, float]:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(root / "notify.sock"))
    cfg = root / "station.toml"
    station = station or f"bench-{uuid.uuid4().hex[:8]}"
    cfg.write_text(f'station_id = "{station}"\nbroker_url = "{broker_url}"\n'
                   f'printer_url = "sim://?render=0&out={root / "cards"}"\n'
                   f'state_dir = "{root / "state"}"\nverify_signatures = false\n'
                   'web_listen = "127.0.0.1:0"\nmetrics_listen = "127.0.0.1:0"\n')
    env = {**os.environ, "NOTIFY_SOCKET": str(root / "notify.sock")}
    started = time.monotonic()
    proc = child([sys.executable, "-m", "printstation.agent", "run", "--config", str(cfg)],
                 env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    notify.settimeout(30)
    while b"READY=1" not in notify.recv(4096):
        pass
    return proc, notify, started


def startup(broker_url: str, runs: int) -> None:
    mine, ready, base = [], [], []
    for _ in range(runs):
        root = scratch()
        station = f"bench-{uuid.uuid4().hex[:8]}"
        names = Settings(station_id=station, state_dir=root / "state")
        queues = [names.station_queue(), names.control_queue()]
        probe = pika.BlockingConnection(pika.URLParameters(broker_url))
        proc, notify, started = start_agent(broker_url, root, station)
        ready.append(time.monotonic() - started)
        mine.append(max(ready[-1], consuming(probe, queues, started)))
        probe.close()
        proc.terminate()
        proc.wait(30)
        notify.close()
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "import printstation.agent.station.agent, "
                        "printstation.agent.broker.consumer, printstation.agent.broker.publisher"],
                       check=True)
        base.append(time.monotonic() - started)
    report("start to READY=1 and both consumers on broker", median(mine), "s", median(base),
           "importing the agent", "<= 1.5 s", higher_is_better=False)
    print(f"  target {'met' if median(mine) <= 1.5 else 'missed'} (the figure is the later of "
          f"READY=1 and the station and control queues' consumers); runs {runs}: "
          + ", ".join(f"{x:.2f}" for x in mine) + " s; READY=1 alone, which the agent sends "
          "before any broker connection is up, so it does not show a station that can take "
          "a job: " + ", ".join(f"{x:.2f}" for x in ready) + " s")


BARE_IDLE = """
import sys, pika
params = pika.URLParameters(sys.argv[1]); params.heartbeat = 30
conn = pika.BlockingConnection(params)
while True:
    conn.process_data_events(time_limit=3600)
"""


def idle(broker_url: str, seconds: float) -> None:
    root = scratch()
    proc, notify, _ = start_agent(broker_url, root)
    bare = child([sys.executable, "-c", BARE_IDLE, broker_url])
    time.sleep(5)  # let both settle after start-up (a measurement window, not a sync)
    a0, b0 = cpu_seconds(proc.pid), cpu_seconds(bare.pid)
    time.sleep(seconds)
    a1, b1 = cpu_seconds(proc.pid), cpu_seconds(bare.pid)
    rss = rss_mb(proc.pid)
    for p in (proc, bare):
        p.terminate()
        p.wait(30)
    notify.close()
    report(f"idle CPU over {seconds:.0f} s", 100 * (a1 - a0) / seconds, "% of a core",
           100 * (b1 - b0) / seconds, "bare pika connection", "<= 0.1 %",
           higher_is_better=False)
    report("idle RSS", rss, "MB")


def rss(counts: list[int]) -> None:
    agent = make_agent(f"print_time=0&cards={max(counts) + 10}&ribbon={2 * max(counts) + 10}"
                       f"&film={2 * max(counts) + 10}")
    finals = Finals()
    agent.start(embedded_sink=finals)
    source = EmbeddedSource(agent.station.intake)
    baseline = rss_mb()
    figures = []
    jobs = iter_signed_jobs(max(counts), "RSS", to=agent.settings.station_id)
    done = 0
    for count in counts:
        for job_id, body, headers in itertools.islice(jobs, count - done):
            source.submit(body, headers, message_id=job_id)
            if not finals.wait(done + 1 - 20, timeout=60):  # keep at most 20 in flight
                sys.exit("rss: the agent stopped printing")
            done += 1
        if not finals.wait(count, timeout=120):
            sys.exit(f"rss: only {len(finals.done)} of {count} jobs ended")
        figures.append(rss_mb())
        report(f"RSS after {count} jobs", figures[-1], "MB", baseline, "started, no job",
               "<= 100 MB", higher_is_better=False)
    agent.stop()
    peak = peak_rss_mb()
    report(f"peak RSS over {max(counts)} jobs", peak, "MB", baseline, "started, no job",
           "<= 100 MB", higher_is_better=False)
    print(f"  peak target {'met' if peak <= 100 else 'missed'}")
    if len(figures) > 1:
        growth = 100 * (figures[-1] - figures[-2]) / figures[-2]
        print(f"  growth between the last two counts: {growth:+.1f}% (target within 5%: "
              f"{'met' if abs(growth) <= 5 else 'missed'})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", nargs="*", default=["startup", "idle", "rss"])
    p.add_argument("--broker-url", default=DEFAULT_BROKER)
    p.add_argument("--idle-seconds", type=float, default=60)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--jobs", default="2000,10000")
    args = p.parse_args()
    if "startup" in args.what or "idle" in args.what:
        with own_vhost(args.broker_url) as broker_url:
            if "startup" in args.what:
                startup(broker_url, args.runs)
            if "idle" in args.what:
                idle(broker_url, args.idle_seconds)
    if "rss" in args.what:
        rss([int(n) for n in args.jobs.split(",")])


if __name__ == "__main__":
    main()
