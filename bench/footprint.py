"""Start-up time, idle CPU and memory of the agent.

startup  time from starting `printstation run` (real broker, simulated printer) to its
         READY=1 on a notify socket, as systemd sees it. Baseline: the same interpreter
         importing the agent's modules and exiting. Target <= 1.5 s.
idle     CPU of that agent over --idle-seconds with nothing to do (no polling loops should
         show). Baseline: a bare pika connection with the same heartbeat, idling in
         process_data_events. Target <= 0.1% of one core.
rss      resident memory of an agent (embedded job source, print time 0) after each count
         in --jobs. Baseline: its RSS once started, before the first job. Target <= 100 MB
         and flat within 5% between the last two counts.

    .venv/bin/python bench/footprint.py [startup idle rss] [--idle-seconds 60]
        [--jobs 2000,10000] [--broker-url amqp://guest:guest@127.0.0.1:5672/%2F]
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import Finals, iter_signed_jobs, make_agent, median, report

from printstation.agent.broker.embedded import EmbeddedSource

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int | None = None) -> float:
    status = Path(f"/proc/{pid or 'self'}/status").read_text()
    kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return kb / 1024


def start_agent(broker_url: str, root: Path) -> tuple[subprocess.Popen, socket.socket, float]:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(root / "notify.sock"))
    cfg = root / "station.toml"
    cfg.write_text(f'station_id = "bench-{uuid.uuid4().hex[:8]}"\nbroker_url = "{broker_url}"\n'
                   f'printer_url = "sim://?render=0&out={root / "cards"}"\n'
                   f'state_dir = "{root / "state"}"\nverify_signatures = false\n'
                   'web_listen = "127.0.0.1:0"\nmetrics_listen = "127.0.0.1:0"\n')
    env = {**os.environ, "NOTIFY_SOCKET": str(root / "notify.sock")}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "printstation.agent", "run", "--config",
                             str(cfg)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    notify.settimeout(30)
    while b"READY=1" not in notify.recv(4096):
        pass
    return proc, notify, time.monotonic() - started


def startup(broker_url: str, runs: int) -> None:
    mine, base = [], []
    for _ in range(runs):
        root = Path(tempfile.mkdtemp(prefix="printstation-bench-"))
        proc, notify, took = start_agent(broker_url, root)
        mine.append(took)
        proc.terminate()
        proc.wait(30)
        notify.close()
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", "import printstation.agent.station.agent, "
                        "printstation.agent.broker.consumer, printstation.agent.broker.publisher"],
                       check=True)
        base.append(time.monotonic() - started)
    report("start to READY=1", median(mine), "s", median(base), "importing the agent",
           "<= 1.5 s", higher_is_better=False)


BARE_IDLE = """
import sys, pika
params = pika.URLParameters(sys.argv[1]); params.heartbeat = 30
conn = pika.BlockingConnection(params)
while True:
    conn.process_data_events(time_limit=3600)
"""


def idle(broker_url: str, seconds: float) -> None:
    root = Path(tempfile.mkdtemp(prefix="printstation-bench-"))
    proc, notify, _ = start_agent(broker_url, root)
    bare = subprocess.Popen([sys.executable, "-c", BARE_IDLE, broker_url])
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
    if len(figures) > 1:
        growth = 100 * (figures[-1] - figures[-2]) / figures[-2]
        print(f"  growth between the last two counts: {growth:+.1f}% (target within 5%); "
              f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", nargs="*", default=["startup", "idle", "rss"])
    p.add_argument("--broker-url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    p.add_argument("--idle-seconds", type=float, default=60)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--jobs", default="2000,10000")
    args = p.parse_args()
    if "startup" in args.what:
        startup(args.broker_url, args.runs)
    if "idle" in args.what:
        idle(args.broker_url, args.idle_seconds)
    if "rss" in args.what:
        rss([int(n) for n in args.jobs.split(",")])


if __name__ == "__main__":
    main()
